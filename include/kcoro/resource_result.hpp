// kcoro: the outcome of an admin operation for one topic or group of a batch.
#pragma once

#include <kcoro/error.hpp>

#include <kcoro/detail/fmt.hpp>

#include <string>

namespace kcoro {

/// One entry of a batch admin result (create/delete topics, delete groups): the name,
/// and what went wrong with it, if anything.
struct resource_result {
    std::string name{};
    error_code error{};    ///< empty on success
    std::string message{}; ///< the broker's (or librdkafka's) explanation; empty on success

    explicit operator bool() const noexcept { return !error; } ///< true on success
};

} // namespace kcoro

/// Formats as "'name': ok" or "'name': <error> (<message>)".
template <>
struct fmt::formatter<kcoro::resource_result> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::resource_result& r, FormatContext& ctx) const {
        if (!r.error) return fmt::format_to(ctx.out(), "'{}': ok", r.name);
        if (r.message.empty()) return fmt::format_to(ctx.out(), "'{}': {}", r.name, r.error.message());
        return fmt::format_to(ctx.out(), "'{}': {} ({})", r.name, r.error.message(), r.message);
    }
};
