// kcoro: records to produce.
//
// `record` owns its bytes; `record_view` refers to bytes the caller keeps alive.
// Kafka distinguishes a null key or value from an empty one (a null value is a
// tombstone for compacted topics), hence the optionals.
//
// Sending a `record` copies its bytes into librdkafka when it is enqueued. Sending a
// `record_view` does not copy the value: the caller must keep the value's bytes alive
// until the delivery is reported (even if the operation is cancelled, since librdkafka
// cannot recall an enqueued record). Keys and headers are always copied.
#pragma once

#include <kcoro/detail/fmt.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kcoro {

/// Milliseconds since the Unix epoch, Kafka's timestamp unit.
using timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

/// A record header. Keys may repeat; a value may be null.
struct header {
    std::string key{};
    std::optional<std::string> value{};

    friend bool operator==(const header&, const header&) = default;
};

/// A header referring to bytes the caller keeps alive.
struct header_view {
    std::string_view key{};
    std::optional<std::string_view> value{};
};

/// An owning record to produce.
struct record {
    std::string topic{};
    /// Unset: the partitioner chooses from the key.
    std::optional<std::int32_t> partition{};
    std::optional<std::string> key{};
    std::optional<std::string> value{};
    std::vector<header> headers{};
    /// Unset: the time the record is enqueued (or the broker's, for LogAppendTime topics).
    std::optional<kcoro::timestamp> timestamp{};

    friend bool operator==(const record&, const record&) = default;
};

/// A non-owning record. Its header list is a view too: a span over the caller's storage.
/// (Not an aggregate, so that `producer.send({.topic = ..., .value = ...})` means a record.)
struct record_view {
    record_view() = default;
    record_view(std::string_view topic_, std::optional<std::string_view> value_,
                std::optional<std::string_view> key_ = std::nullopt)
        : topic(topic_), key(key_), value(value_) {}

    std::string_view topic{};
    std::optional<std::int32_t> partition{};
    std::optional<std::string_view> key{};
    std::optional<std::string_view> value{};
    std::span<const header_view> headers{};
    std::optional<kcoro::timestamp> timestamp{};
};

} // namespace kcoro

template <>
struct fmt::formatter<kcoro::record> : fmt::formatter<std::string_view> {
    // Prints topic, partition, sizes and header keys: never the bytes themselves,
    // which may be large, binary or confidential.
    template <class FormatContext>
    auto format(const kcoro::record& r, FormatContext& ctx) const {
        auto out = fmt::format_to(ctx.out(), "record{{topic={}", r.topic);
        if (r.partition) out = fmt::format_to(out, ", partition={}", *r.partition);
        if (r.key) out = fmt::format_to(out, ", key={}B", r.key->size());
        else out = fmt::format_to(out, ", key=null");
        if (r.value) out = fmt::format_to(out, ", value={}B", r.value->size());
        else out = fmt::format_to(out, ", value=null");
        if (!r.headers.empty()) {
            out = fmt::format_to(out, ", headers=[");
            for (std::size_t i = 0; i < r.headers.size(); ++i)
                out = fmt::format_to(out, "{}{}", i ? "," : "", r.headers[i].key);
            out = fmt::format_to(out, "]");
        }
        return fmt::format_to(out, "}}");
    }
};

template <>
struct fmt::formatter<kcoro::record_view> : fmt::formatter<std::string_view> {
    // As for record: never the bytes themselves.
    template <class FormatContext>
    auto format(const kcoro::record_view& r, FormatContext& ctx) const {
        auto out = fmt::format_to(ctx.out(), "record{{topic={}", r.topic);
        if (r.partition) out = fmt::format_to(out, ", partition={}", *r.partition);
        if (r.key) out = fmt::format_to(out, ", key={}B", r.key->size());
        else out = fmt::format_to(out, ", key=null");
        if (r.value) out = fmt::format_to(out, ", value={}B", r.value->size());
        else out = fmt::format_to(out, ", value=null");
        if (!r.headers.empty()) {
            out = fmt::format_to(out, ", headers=[");
            for (std::size_t i = 0; i < r.headers.size(); ++i)
                out = fmt::format_to(out, "{}{}", i ? "," : "", r.headers[i].key);
            out = fmt::format_to(out, "]");
        }
        return fmt::format_to(out, "}}");
    }
};
