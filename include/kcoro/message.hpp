// kcoro: a consumed message.
//
// A message owns the record librdkafka fetched, without copying it: key, value and
// headers are views into librdkafka's buffer, valid as long as the message lives.
// Messages are move-only and cheap to move (two pointers).
//
// A message may outlive its consumer: it keeps librdkafka's client alive (not the group
// membership) until the last message of it is destroyed.
#pragma once

#include <kcoro/record.hpp>
#include <kcoro/record_metadata.hpp>
#include <kcoro/topic_partition.hpp>

#include <kcoro/detail/fmt.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

// librdkafka's type, declared so that this header need not include rdkafka.h.
struct rd_kafka_message_s;

namespace kcoro {
namespace detail {
class message_owner;
}

class message {
public:
    message() noexcept = default;
    message(message&& other) noexcept
        : msg_(std::exchange(other.msg_, nullptr)), owner_(std::exchange(other.owner_, nullptr)) {}
    message& operator=(message&& other) noexcept {
        if (this != &other) {
            reset();
            msg_ = std::exchange(other.msg_, nullptr);
            owner_ = std::exchange(other.owner_, nullptr);
        }
        return *this;
    }
    message(const message&) = delete;
    message& operator=(const message&) = delete;
    ~message() { reset(); }

    /// False for a default-constructed or moved-from message (whose accessors must not be used).
    explicit operator bool() const noexcept { return msg_ != nullptr; }

    std::string_view topic() const noexcept;
    std::int32_t partition() const noexcept;
    std::int64_t offset() const noexcept;
    kcoro::timestamp timestamp() const noexcept;
    kcoro::timestamp_type timestamp_type() const noexcept;

    /// The key, or nullopt for a null key (distinct from an empty one).
    std::optional<std::string_view> key() const noexcept;
    /// The value, or nullopt for a null value (a tombstone).
    std::optional<std::string_view> value() const noexcept;
    /// The value's bytes (empty for a null value).
    std::span<const std::byte> value_bytes() const noexcept;

    /// Headers, in order (keys may repeat). Each call walks librdkafka's header list.
    std::vector<header_view> headers() const;
    /// The value of the last header named `key`: nullopt if there is none, an empty
    /// optional inside for a null value.
    std::optional<std::optional<std::string_view>> last_header(std::string_view key) const;

    /// The partition and the offset to commit once this message is processed (offset + 1).
    partition_offset next_offset() const;
    kcoro::topic_partition topic_partition() const;

    /// librdkafka's message, for what kcoro does not wrap. Owned by this object.
    const rd_kafka_message_s* native_handle() const noexcept { return msg_; }

    /// Takes ownership of a message librdkafka handed out, and of one of `owner`'s counts
    /// (added beforehand): for kcoro's core.
    message(rd_kafka_message_s* msg, detail::message_owner* owner) noexcept : msg_(msg), owner_(owner) {}

private:
    // Inline: most moves and destructions find nothing to release (a moved-from message).
    void reset() noexcept {
        if (msg_) release();
    }
    void release() noexcept;

    // Owned: rd_kafka_message_destroy() frees it with the fetch buffer's reference it holds.
    rd_kafka_message_s* msg_ = nullptr;
    // librdkafka's client, destroyed only when its last message is: it waits for them.
    detail::message_owner* owner_ = nullptr;
};

} // namespace kcoro

/// Formats as "topic/partition@offset" (never the bytes, which may be large or confidential).
template <>
struct fmt::formatter<kcoro::message> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::message& m, FormatContext& ctx) const {
        if (!m) return fmt::format_to(ctx.out(), "message{{}}");
        return fmt::format_to(ctx.out(), "{}/{}@{}", m.topic(), m.partition(), m.offset());
    }
};
