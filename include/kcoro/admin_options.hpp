// kcoro: options of the admin client that are not librdkafka properties.
#pragma once

#include <kcoro/client_events.hpp>

#include <chrono>
#include <functional>

namespace kcoro {

struct admin_options {
    /// How long to wait for the cluster to answer a request (then errc::timed_out).
    std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};

    /// How long the controller may take to carry out topic and partition creation and
    /// deletion on all brokers before it answers (errc::request_timed_out after that;
    /// the change then still completes in the background). 0: answer at once.
    std::chrono::milliseconds operation_timeout{std::chrono::seconds(30)};

    /// librdkafka's log lines. Unset: errors (level 3 and worse) go to stderr, and every
    /// line when the `debug` property is set.
    std::function<void(const log_entry&)> on_log{};

    /// Client-level error events (e.g. all brokers down). Unset: printed to stderr.
    std::function<void(const client_error&)> on_error{};
};

} // namespace kcoro
