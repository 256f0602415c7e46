#include "client_config.hpp"

#include <kcoro/error.hpp>

#include <fmt/format.h>

#include <array>

namespace kcoro::detail {

conf_ptr make_conf(const config& properties) {
    conf_ptr conf(rd_kafka_conf_new());
    std::array<char, 512> errstr{};
    for (const auto& [key, value] : properties.entries()) {
        switch (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), errstr.data(), errstr.size())) {
        case RD_KAFKA_CONF_OK:
            break;
        case RD_KAFKA_CONF_UNKNOWN:
            throw error(errc::unknown_config_key, fmt::format("config key '{}'", key));
        case RD_KAFKA_CONF_INVALID:
            // librdkafka's message quotes the value: keep it out for secrets.
            if (config::is_secret(key))
                throw error(errc::invalid_config_value, fmt::format("config key '{}': value rejected", key));
            throw error(errc::invalid_config_value, fmt::format("config key '{}': {}", key, errstr.data()));
        }
    }
    return conf;
}

kafka_ptr make_client(rd_kafka_type_t type, conf_ptr conf) {
    std::array<char, 512> errstr{};
    rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr.data(), errstr.size());
    if (!rk) throw error(errc::invalid_config_value, fmt::format("creating the client: {}", errstr.data()));
    (void)conf.release(); // rd_kafka_new took ownership
    return kafka_ptr(rk);
}

} // namespace kcoro::detail
