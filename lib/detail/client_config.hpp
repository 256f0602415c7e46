// Turning a kcoro::config into a librdkafka client, with errors that name the key.
#pragma once

#include "rdkafka_ptr.hpp"

#include <kcoro/config.hpp>

#include <string_view>

namespace kcoro::detail {

/// Builds a librdkafka configuration from `properties`. Throws kcoro::error with
/// errc::unknown_config_key or errc::invalid_config_value naming the key (never
/// echoing a secret value).
conf_ptr make_conf(const config& properties);

/// Creates the client; `conf` is consumed. Throws kcoro::error when librdkafka rejects
/// the combination of settings (its message names them).
kafka_ptr make_client(rd_kafka_type_t type, conf_ptr conf);

} // namespace kcoro::detail
