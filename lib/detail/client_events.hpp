// Where a client's log lines and error events go: its on_log / on_error callbacks, or
// stderr. Shared by the producer, the consumer and the admin client.
#pragma once

#include <kcoro/client_events.hpp>
#include <kcoro/config.hpp>

#include <librdkafka/rdkafka.h>

#include <functional>
#include <string_view>

namespace kcoro::detail {

/// Whether librdkafka's `debug` property is set: its lines are then printed even
/// without an on_log callback (they were asked for).
bool debugging(const config& properties);

/// Hands a RD_KAFKA_EVENT_LOG event to `on_log`; without one prints it to stderr, prefixed
/// with `client`, when it is an error or worse, or when `debug` is set.
void report_log(rd_kafka_event_t* event, const std::function<void(const log_entry&)>& on_log, bool debug,
                std::string_view client);

/// Hands an error to `on_error`; without one prints it to stderr, prefixed with `client`.
void report_error(const client_error& e, const std::function<void(const client_error&)>& on_error,
                  std::string_view client);

} // namespace kcoro::detail
