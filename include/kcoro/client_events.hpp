// kcoro: what every client (producer, consumer, admin) reports besides its operations'
// results: librdkafka's log lines and its client-level error events. Each client's options
// take an on_log and an on_error callback, run on the client's executor.
#pragma once

#include <kcoro/error.hpp>

#include <kcoro/detail/fmt.hpp>

#include <string_view>

namespace kcoro {

/// A librdkafka log line. `level` is syslog's: 0 emergency ... 3 error, 4 warning,
/// 6 info, 7 debug. Which lines librdkafka emits is set by the `log_level` and `debug`
/// properties.
struct log_entry {
    int level = 0;
    std::string_view facility; ///< e.g. "FAIL", "BROKER"; valid during the call only
    std::string_view message;  ///< valid during the call only
};

/// A client-level error event from librdkafka (all brokers down, authentication failed,
/// a fatal idempotence error ...). Most are transient and librdkafka keeps retrying;
/// `fatal` ones make the client unusable.
struct client_error {
    error_code code;
    std::string_view reason; ///< librdkafka's text; valid during the call only
    bool fatal = false;
};

} // namespace kcoro

/// Formats as "[level] FACILITY: message".
template <>
struct fmt::formatter<kcoro::log_entry> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }

    template <class FormatContext>
    auto format(const kcoro::log_entry& e, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "[{}] {}: {}", e.level, e.facility, e.message);
    }
};

/// Formats as "fatal error: reason (code message)" or "error: ...".
template <>
struct fmt::formatter<kcoro::client_error> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }

    template <class FormatContext>
    auto format(const kcoro::client_error& e, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}: {} ({})", e.fatal ? "fatal error" : "error", e.reason,
                              e.code.message());
    }
};
