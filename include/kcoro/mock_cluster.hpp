// kcoro: an embedded Kafka cluster for tests, with fault injection.
//
// librdkafka's mock cluster runs in-process on loopback ports: no broker, no Java, no
// network. Point any kcoro client (or any other Kafka client) at bootstrap_servers().
// It speaks enough of the protocol for producing (idempotent and transactional),
// consuming, consumer groups with offset commits, and metadata (kcoro::admin's
// describe_cluster, describe_topics, list_topics). It writes no transaction markers and
// stamps records with LogAppendTime. Topics are created on first use with 4 partitions,
// or explicitly with create_topic().
//
// It has no admin APIs beyond metadata. With kcoro::admin: list_consumer_groups and
// delete_records fail at once with errc::unsupported_feature; the requests that go
// to the controller (create/delete topics, create partitions, describe/alter configs)
// time out (errc::timed_out after admin_options::request_timeout), since the mock names
// no controller; and describe_consumer_groups / delete_consumer_groups must not be used
// against it: librdkafka 2.0.2 mishandles a group coordinator that lacks those APIs (it
// aborts on an assertion, or the client's destruction hangs).
//
// Faults: take a broker down and up, slow a broker down, make the next requests of a
// Kafka API fail with chosen errors (on the whole cluster or one broker), move partition
// leaders. Clients see them exactly as they would from a real cluster: retriable errors
// are retried by librdkafka, the others reach the application as kcoro::error.
//
//     kcoro::mock_cluster cluster(3);
//     cluster.create_topic("orders", 6);
//     kcoro::producer p(io, {{"bootstrap.servers", cluster.bootstrap_servers()}});
//     cluster.push_request_errors(kcoro::kafka_api::produce,
//                                 {kcoro::errc::not_leader_for_partition, kcoro::errc::request_timed_out});
//     // the next two Produce requests fail; the producer retries and the send succeeds
//
// test/unit/mock_cluster_test.cpp is a worked example: a service tested against a broker
// going down and coming back, and against injected produce errors.
//
// librdkafka marks this API experimental (not covered by its ABI guarantees); kcoro
// keeps this wrapper stable over it. The mock calls are thread-safe; a mock_cluster must
// outlive the clients connected to it (they would otherwise see all brokers down).
#pragma once

#include <kcoro/error.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kcoro {

/// Kafka protocol request types (API keys), for error injection. Values are Kafka's own,
/// so any key not named here can be passed as static_cast<kafka_api>(n).
enum class kafka_api : std::int16_t {
    produce = 0,
    fetch = 1,
    list_offsets = 2,
    metadata = 3,
    offset_commit = 8,
    offset_fetch = 9,
    find_coordinator = 10,
    join_group = 11,
    heartbeat = 12,
    leave_group = 13,
    sync_group = 14,
    describe_groups = 15,
    list_groups = 16,
    sasl_handshake = 17,
    api_versions = 18,
    create_topics = 19,
    delete_topics = 20,
    delete_records = 21,
    init_producer_id = 22,
    offset_for_leader_epoch = 23,
    add_partitions_to_txn = 24,
    add_offsets_to_txn = 25,
    end_txn = 26,
    txn_offset_commit = 28,
    describe_configs = 32,
    alter_configs = 33,
    create_partitions = 37,
    delete_groups = 42,
};

class mock_cluster {
public:
    /// Addresses every broker in broker_down(), broker_up() and set_round_trip_time().
    static constexpr std::int32_t all_brokers = -1;

    /// Starts `brokers` brokers (ids 1..brokers). Throws kcoro::error on failure
    /// (errc::invalid_argument for fewer than one broker).
    explicit mock_cluster(int brokers = 1);
    mock_cluster(mock_cluster&&) noexcept;
    mock_cluster& operator=(mock_cluster&&) noexcept;
    /// Stops the brokers; connected clients then see them as down.
    ~mock_cluster();

    /// "host:port,host:port,...", for bootstrap.servers.
    std::string bootstrap_servers() const;

    /// The number of brokers (their ids are 1..broker_count()).
    int broker_count() const noexcept;

    // ---- topics ---------------------------------------------------------------------

    /// Creates a topic. Throws kcoro::error naming the topic if it cannot (e.g.
    /// errc::invalid_argument for fewer than one partition, or a replication factor
    /// above the broker count).
    void create_topic(std::string_view name, int partitions, int replication_factor = 1);

    /// Moves the leader of a partition to another broker (creating the topic if needed),
    /// or makes the partition leaderless with broker_id -1. Clients learn it from their
    /// next metadata refresh, as after a real leader election.
    void set_partition_leader(std::string_view topic, std::int32_t partition, std::int32_t broker_id);

    /// Makes Metadata responses report `error` for the topic (e.g.
    /// errc::leader_not_available, errc::topic_authorization_failed); an empty error_code
    /// (or errc{}) clears it.
    void set_topic_error(std::string_view topic, error_code error);

    // ---- brokers --------------------------------------------------------------------

    /// Takes a broker down: its connections drop and it refuses new ones. Its partitions
    /// keep it as leader (the mock elects no new leader; see set_partition_leader()).
    void broker_down(std::int32_t broker_id);

    /// Makes a broker accept connections again.
    void broker_up(std::int32_t broker_id);

    /// Delays every response of a broker by `rtt` (0 removes the delay).
    void set_round_trip_time(std::int32_t broker_id, std::chrono::milliseconds rtt);

    /// Sets the rack a broker reports in Metadata (for rack-aware consumers).
    /// librdkafka 2.0.2 never frees the copy it keeps: LeakSanitizer reports a few bytes
    /// per broker given a rack.
    void set_rack(std::int32_t broker_id, std::string_view rack);

    /// Makes `broker_id` the coordinator of a consumer group (`group_id`) or of a
    /// transactional producer (set_transaction_coordinator), instead of the hashed one.
    void set_group_coordinator(std::string_view group_id, std::int32_t broker_id);
    void set_transaction_coordinator(std::string_view transactional_id, std::int32_t broker_id);

    // ---- injected request errors ------------------------------------------------------

    /// Makes the next requests of `api`, to any broker, fail: the first with errors[0],
    /// the next with errors[1], ... then requests succeed again. errc::transport makes the
    /// broker drop the connection instead of answering. Errors pushed by several calls
    /// queue up in order.
    void push_request_errors(kafka_api api, const std::vector<errc>& errors);

    /// The same with raw Kafka error codes and API keys (e.g. 0 for Produce, 45 for
    /// OUT_OF_ORDER_SEQUENCE_NUMBER), for values errc does not name.
    void push_request_errors(std::int16_t api_key, const std::vector<int>& errors);

    /// One injected response of a single broker: an error (errc{} for none) and how long
    /// the broker waits before sending it.
    struct broker_response {
        errc error{};
        std::chrono::milliseconds delay{0};
    };

    /// Makes the next requests of `api` to broker `broker_id` answer as listed, in order.
    /// They take precedence over the cluster-wide errors of push_request_errors().
    void push_broker_responses(std::int32_t broker_id, kafka_api api, const std::vector<broker_response>& responses);

    /// How many injected responses of broker `broker_id` for `api` are still waiting.
    std::size_t pending_broker_responses(std::int32_t broker_id, kafka_api api) const;

    /// Drops the cluster-wide injected errors of `api` not yet used.
    void clear_request_errors(kafka_api api);

private:
    void check_broker(std::int32_t broker_id, std::string_view what, bool allow_all) const;

    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace kcoro
