// kcoro: an embedded Kafka cluster for tests, with fault injection.
//
// librdkafka's mock cluster runs in-process on loopback ports: no broker, no Java.
// It speaks enough of the protocol for producing, consuming, consumer groups and
// idempotence (it writes no transaction markers). Topics are created on first use with
// 4 partitions, or explicitly with create_topic().
//
//     kcoro::mock_cluster cluster(3);
//     cluster.create_topic("orders", 6);
//     kcoro::producer p(io, {{"bootstrap.servers", cluster.bootstrap_servers()}});
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kcoro {

class mock_cluster {
public:
    /// Starts `brokers` brokers (ids 1..brokers). Throws kcoro::error on failure.
    explicit mock_cluster(int brokers = 1);
    mock_cluster(mock_cluster&&) noexcept;
    mock_cluster& operator=(mock_cluster&&) noexcept;
    ~mock_cluster();

    /// "host:port,host:port,...", for bootstrap.servers.
    std::string bootstrap_servers() const;

    /// Creates a topic. Throws kcoro::error if it cannot.
    void create_topic(std::string_view name, int partitions, int replication_factor = 1);

    /// Takes a broker down (its connections drop and it refuses new ones) or back up.
    void broker_down(std::int32_t broker_id);
    void broker_up(std::int32_t broker_id);

    /// Adds `rtt` of latency to every response of a broker.
    void set_round_trip_time(std::int32_t broker_id, std::chrono::milliseconds rtt);

    /// Makes the next requests of Kafka API `api_key` (e.g. 0 for Produce) fail, one
    /// error per request, in order: Kafka error codes (kcoro::errc broker values).
    void push_request_errors(std::int16_t api_key, const std::vector<int>& errors);

    /// Moves the leader of a partition to another broker.
    void set_partition_leader(std::string_view topic, std::int32_t partition, std::int32_t broker_id);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace kcoro
