#include "client_events.hpp"

#include <fmt/format.h>

namespace kcoro::detail {

bool debugging(const config& properties) {
    const auto debug = properties.get("debug");
    return debug && !debug->empty();
}

void report_log(rd_kafka_event_t* event, const std::function<void(const log_entry&)>& on_log, bool debug,
                std::string_view client) {
    const char* facility = nullptr;
    const char* message = nullptr;
    int level = 0;
    if (rd_kafka_event_log(event, &facility, &message, &level) != 0) return;
    const log_entry entry{level, facility ? facility : "", message ? message : ""};
    if (on_log)
        on_log(entry);
    else if (level <= 3 || debug) // errors and worse; the rest only when asked for
        fmt::print(stderr, "kcoro {} {}\n", client, entry);
}

void report_error(const client_error& e, const std::function<void(const client_error&)>& on_error,
                  std::string_view client) {
    if (on_error)
        on_error(e);
    else
        fmt::print(stderr, "kcoro {} {}\n", client, e);
}

} // namespace kcoro::detail
