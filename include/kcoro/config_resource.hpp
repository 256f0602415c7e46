// kcoro: broker-side configuration of topics and brokers, as the admin client reads and
// changes it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace kcoro {

/// A thing that has a configuration on the cluster.
struct config_resource {
    enum class kind : std::uint8_t { topic, broker };
    kind type = kind::topic;
    std::string name{}; ///< the topic's name, or the broker's id ("1")

    static config_resource topic(std::string name) { return {kind::topic, std::move(name)}; }
    static config_resource broker(std::int32_t id) { return {kind::broker, std::to_string(id)}; }
};

/// Where a configuration value comes from (Kafka's ConfigSource).
enum class config_source : std::uint8_t {
    unknown,
    dynamic_topic,          ///< set on this topic
    dynamic_broker,         ///< set dynamically on this broker
    dynamic_default_broker, ///< set dynamically for all brokers
    static_broker,          ///< the broker's server.properties
    default_value           ///< Kafka's default
};

/// One configuration value of a resource.
struct config_entry {
    std::string name{};
    std::optional<std::string> value{}; ///< empty for sensitive values (never sent) and unset ones
    config_source source = config_source::unknown;
    bool is_default = false;
    bool read_only = false;
    bool sensitive = false;
};

/// One change for admin::alter_configs(): set `name` to `value`, or, without a value,
/// remove the resource's own setting so that the default applies again.
struct config_alteration {
    std::string name{};
    std::optional<std::string> value{};
};

} // namespace kcoro
