#include <kcoro/config.hpp>

#include <algorithm>
#include <array>

namespace kcoro {

config::config(std::initializer_list<entry> entries) {
    for (const auto& [k, v] : entries) set(k, v);
}

config& config::set(std::string key, std::string value) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.first == key; });
    if (it != entries_.end())
        it->second = std::move(value);
    else
        entries_.emplace_back(std::move(key), std::move(value));
    return *this;
}

std::optional<std::string_view> config::get(std::string_view key) const {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.first == key; });
    if (it == entries_.end()) return std::nullopt;
    return std::string_view(it->second);
}

bool config::erase(std::string_view key) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.first == key; });
    if (it == entries_.end()) return false;
    entries_.erase(it);
    return true;
}

bool config::is_secret(std::string_view key) noexcept {
    // librdkafka's secret-bearing properties: passwords, private keys (inline PEM or
    // their passphrases), OAuth settings that embed client secrets, JAAS-like configs.
    static constexpr std::array<std::string_view, 6> fragments = {
        "password", "secret", "ssl.key.pem", "sasl.oauthbearer.config", "ssl_key", "private"};
    return std::any_of(fragments.begin(), fragments.end(),
                       [&](std::string_view f) { return key.find(f) != std::string_view::npos; });
}

std::string config::describe() const {
    std::string out;
    for (const auto& [k, v] : entries_) {
        if (!out.empty()) out += ", ";
        out += k;
        out += '=';
        out += is_secret(k) ? "[redacted]" : v;
    }
    return out;
}

} // namespace kcoro
