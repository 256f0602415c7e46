// kcoro: partitions and offsets, as consumers name them.
#pragma once

#include <kcoro/detail/fmt.hpp>

#include <cstdint>
#include <string>

namespace kcoro {

/// Logical offsets, for assign() and seek(). Values match librdkafka's.
namespace offsets {
inline constexpr std::int64_t beginning = -2; ///< the oldest retained record
inline constexpr std::int64_t end = -1;       ///< the next record to be written
inline constexpr std::int64_t stored = -1000; ///< the group's committed offset (auto.offset.reset if none)
inline constexpr std::int64_t invalid = -1001; ///< no offset (nothing committed, nothing consumed)
} // namespace offsets

/// One partition of a topic.
struct topic_partition {
    std::string topic{};
    std::int32_t partition = 0;

    friend bool operator==(const topic_partition&, const topic_partition&) = default;
    friend auto operator<=>(const topic_partition&, const topic_partition&) = default;
};

/// A partition and an offset in it: a start offset (assign), a position, a commit.
/// A committed offset is the offset of the *next* record to read (last processed + 1).
struct partition_offset {
    std::string topic{};
    std::int32_t partition = 0;
    std::int64_t offset = offsets::invalid;

    friend bool operator==(const partition_offset&, const partition_offset&) = default;
};

/// The low (oldest retained) and high (next to be written) offsets of a partition.
struct watermarks {
    std::int64_t low = offsets::invalid;
    std::int64_t high = offsets::invalid;

    friend bool operator==(const watermarks&, const watermarks&) = default;
};

} // namespace kcoro

/// Formats as "topic/partition", the form Kafka tools print.
template <>
struct fmt::formatter<kcoro::topic_partition> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::topic_partition& tp, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}/{}", tp.topic, tp.partition);
    }
};

/// Formats as "topic/partition@offset".
template <>
struct fmt::formatter<kcoro::partition_offset> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::partition_offset& po, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}/{}@{}", po.topic, po.partition, po.offset);
    }
};
