// kcoro: the outcome of one record's delivery, as send_batch() reports it.
#pragma once

#include <kcoro/error.hpp>
#include <kcoro/record_metadata.hpp>

#include <kcoro/detail/fmt.hpp>

namespace kcoro {

/// What became of one record: `error` is empty when it was written, and `metadata`
/// says where (on failure: the topic and the partition it was aimed at, offset -1).
struct delivery_report {
    error_code error{};
    record_metadata metadata{};

    explicit operator bool() const noexcept { return !error; }
};

} // namespace kcoro

/// Formats as "topic/partition@offset" or "topic/partition: error message".
template <>
struct fmt::formatter<kcoro::delivery_report> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }

    template <class FormatContext>
    auto format(const kcoro::delivery_report& r, FormatContext& ctx) const {
        if (r.error) return fmt::format_to(ctx.out(), "{}/{}: {}", r.metadata.topic, r.metadata.partition, r.error.message());
        return fmt::format_to(ctx.out(), "{}", r.metadata);
    }
};
