// kcoro: a consumer group member's identity (group id, generation, member id), as a
// transactional producer needs it to commit consumed offsets within a transaction.
#pragma once

#include <memory>

struct rd_kafka_consumer_group_metadata_s;

namespace kcoro {

class group_metadata {
public:
    group_metadata() noexcept = default;
    /// Takes ownership of librdkafka's object (kcoro's core uses it).
    explicit group_metadata(rd_kafka_consumer_group_metadata_s* native) noexcept : native_(native) {}

    explicit operator bool() const noexcept { return native_ != nullptr; }

    /// librdkafka's object, owned by this one (for rd_kafka_send_offsets_to_transaction).
    rd_kafka_consumer_group_metadata_s* native_handle() const noexcept { return native_.get(); }

private:
    struct deleter {
        void operator()(rd_kafka_consumer_group_metadata_s* p) const noexcept;
    };
    std::unique_ptr<rd_kafka_consumer_group_metadata_s, deleter> native_;
};

} // namespace kcoro
