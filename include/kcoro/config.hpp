// kcoro: client configuration.
//
// A config is an ordered list of librdkafka properties, taken by their librdkafka
// names exactly as they are documented (CONFIGURATION.md): "bootstrap.servers",
// "linger.ms", "sasl.password", ... Values are strings, as librdkafka takes them.
// Keys and values are checked when a client is built: an unknown key or a rejected
// value throws kcoro::error (errc::unknown_config_key / errc::invalid_config_value)
// whose message names the key.
//
// Secrets (passwords, private keys, tokens) never leave a config through kcoro: the
// fmt formatter and describe() print them as "[redacted]".
#pragma once

#include <kcoro/detail/fmt.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kcoro {

class config {
public:
    using entry = std::pair<std::string, std::string>;

    config() = default;
    config(std::initializer_list<entry> entries);

    /// Sets (or replaces) a property. Returns *this so calls can be chained.
    config& set(std::string key, std::string value);

    /// The value of a property, if set.
    std::optional<std::string_view> get(std::string_view key) const;

    bool contains(std::string_view key) const { return get(key).has_value(); }
    bool erase(std::string_view key);

    const std::vector<entry>& entries() const noexcept { return entries_; }

    /// True for property names whose values are secrets (never printed).
    static bool is_secret(std::string_view key) noexcept;

    /// "key=value, ..." with secrets redacted: safe for logs.
    std::string describe() const;

private:
    std::vector<entry> entries_;
};

} // namespace kcoro

template <>
struct fmt::formatter<kcoro::config> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::config& c, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(c.describe(), ctx);
    }
};
