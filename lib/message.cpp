#include <kcoro/group_metadata.hpp>
#include <kcoro/message.hpp>
#include "detail/message_owner.hpp"

#include <librdkafka/rdkafka.h>

namespace kcoro {

void message::release() noexcept {
    rd_kafka_message_destroy(msg_);
    msg_ = nullptr;
    std::exchange(owner_, nullptr)->release(); // after the message: the client must outlive it
}

std::string_view message::topic() const noexcept { return rd_kafka_topic_name(msg_->rkt); }
std::int32_t message::partition() const noexcept { return msg_->partition; }
std::int64_t message::offset() const noexcept { return msg_->offset; }

kcoro::timestamp message::timestamp() const noexcept {
    const std::int64_t ts = rd_kafka_message_timestamp(msg_, nullptr);
    return kcoro::timestamp(std::chrono::milliseconds(ts < 0 ? 0 : ts));
}

kcoro::timestamp_type message::timestamp_type() const noexcept {
    rd_kafka_timestamp_type_t type;
    (void)rd_kafka_message_timestamp(msg_, &type);
    switch (type) {
    case RD_KAFKA_TIMESTAMP_CREATE_TIME: return timestamp_type::create_time;
    case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME: return timestamp_type::log_append_time;
    default: return timestamp_type::not_available;
    }
}

std::optional<std::string_view> message::key() const noexcept {
    if (!msg_->key) return std::nullopt;
    return std::string_view(static_cast<const char*>(msg_->key), msg_->key_len);
}

std::optional<std::string_view> message::value() const noexcept {
    if (!msg_->payload) return std::nullopt;
    return std::string_view(static_cast<const char*>(msg_->payload), msg_->len);
}

std::span<const std::byte> message::value_bytes() const noexcept {
    if (!msg_->payload) return {};
    return {static_cast<const std::byte*>(msg_->payload), msg_->len};
}

namespace {
// rd_kafka_message_headers() parses lazily and caches in the message; it takes a
// non-const message, though reading headers changes nothing the application sees.
rd_kafka_headers_t* headers_of(const rd_kafka_message_t* m) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(const_cast<rd_kafka_message_t*>(m), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return nullptr;
    return hdrs;
}
} // namespace

std::vector<header_view> message::headers() const {
    std::vector<header_view> out;
    rd_kafka_headers_t* hdrs = headers_of(msg_);
    if (!hdrs) return out;
    out.reserve(rd_kafka_header_cnt(hdrs));
    const char* name;
    const void* val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
        header_view h{name, std::nullopt};
        if (val) h.value.emplace(static_cast<const char*>(val), size);
        out.push_back(h);
    }
    return out;
}

std::optional<std::optional<std::string_view>> message::last_header(std::string_view key) const {
    rd_kafka_headers_t* hdrs = headers_of(msg_);
    if (!hdrs) return std::nullopt;
    std::optional<std::optional<std::string_view>> found;
    const char* name;
    const void* val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
        if (key != name) continue;
        found.emplace();
        if (val) found->emplace(static_cast<const char*>(val), size);
    }
    return found;
}

partition_offset message::next_offset() const { return {std::string(topic()), partition(), offset() + 1}; }

kcoro::topic_partition message::topic_partition() const { return {std::string(topic()), partition()}; }

void group_metadata::deleter::operator()(rd_kafka_consumer_group_metadata_s* p) const noexcept {
    rd_kafka_consumer_group_metadata_destroy(p);
}

} // namespace kcoro
