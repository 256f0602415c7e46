// kcoro: what the cluster reports for a produced record.
#pragma once

#include <kcoro/record.hpp>

#include <kcoro/detail/fmt.hpp>

#include <cstdint>
#include <string_view>

namespace kcoro {

/// How a record's timestamp was set.
enum class timestamp_type : std::uint8_t {
    not_available, ///< no timestamp (old message format)
    create_time,   ///< set by the producer (or by the client when the record had none)
    log_append_time ///< set by the broker when it appended the record
};

/// Where a record was written. On failure the topic and partition still say what the
/// record was aimed at (partition -1 when no partition was chosen yet) and the offset is -1.
///
/// A written record's offset is -1 too when the broker's reply gave none: with `acks=0`;
/// when an idempotent producer's retry was answered "duplicate" (written before); or when
/// librdkafka inferred the write from a later request's success after an earlier one failed
/// in an uncertain way, such as a timeout (librdkafka's "implicit ack").
struct record_metadata {
    /// The topic's name. Topic names are interned by kcoro: the view stays valid for
    /// the life of the program, so metadata can be kept and copied freely.
    std::string_view topic;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    kcoro::timestamp timestamp{};
    kcoro::timestamp_type timestamp_type = timestamp_type::not_available;

    friend bool operator==(const record_metadata&, const record_metadata&) = default;
};

} // namespace kcoro

/// Formats as "topic/partition@offset", the form Kafka tools print.
template <>
struct fmt::formatter<kcoro::record_metadata> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::record_metadata& m, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}/{}@{}", m.topic, m.partition, m.offset);
    }
};
