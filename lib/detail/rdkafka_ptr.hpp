// RAII owners for librdkafka handles.
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>

namespace kcoro::detail {

struct rd_kafka_conf_deleter {
    void operator()(rd_kafka_conf_t* p) const noexcept { rd_kafka_conf_destroy(p); }
};
struct rd_kafka_deleter {
    void operator()(rd_kafka_t* p) const noexcept { rd_kafka_destroy(p); }
};
struct rd_kafka_queue_deleter {
    void operator()(rd_kafka_queue_t* p) const noexcept { rd_kafka_queue_destroy(p); }
};
struct rd_kafka_event_deleter {
    void operator()(rd_kafka_event_t* p) const noexcept { rd_kafka_event_destroy(p); }
};
struct rd_kafka_topic_deleter {
    void operator()(rd_kafka_topic_t* p) const noexcept { rd_kafka_topic_destroy(p); }
};
struct rd_kafka_error_deleter {
    void operator()(rd_kafka_error_t* p) const noexcept { rd_kafka_error_destroy(p); }
};
struct rd_kafka_headers_deleter {
    void operator()(rd_kafka_headers_t* p) const noexcept { rd_kafka_headers_destroy(p); }
};

using conf_ptr = std::unique_ptr<rd_kafka_conf_t, rd_kafka_conf_deleter>;
using kafka_ptr = std::unique_ptr<rd_kafka_t, rd_kafka_deleter>;
using queue_ptr = std::unique_ptr<rd_kafka_queue_t, rd_kafka_queue_deleter>;
using event_ptr = std::unique_ptr<rd_kafka_event_t, rd_kafka_event_deleter>;
using topic_ptr = std::unique_ptr<rd_kafka_topic_t, rd_kafka_topic_deleter>;
using error_ptr = std::unique_ptr<rd_kafka_error_t, rd_kafka_error_deleter>;
using headers_ptr = std::unique_ptr<rd_kafka_headers_t, rd_kafka_headers_deleter>;

} // namespace kcoro::detail
