#include "topic_names.hpp"

#include <mutex>
#include <string>
#include <unordered_set>

namespace kcoro::detail {

std::string_view intern_topic_name(std::string_view name) {
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    // Leaked on purpose: views into it may be used during static destruction.
    static auto* names = new std::unordered_set<std::string, hash, std::equal_to<>>();
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    auto it = names->find(name);
    if (it == names->end()) it = names->emplace(name).first;
    return *it;
}

} // namespace kcoro::detail
