// Testing your own service without a broker: kcoro::mock_cluster.
//
// The service below is ordinary application code: it knows nothing about tests. The
// tests start an embedded cluster, point the service at it, break the cluster in the
// ways real clusters break (a broker goes away, a produce request fails), and check
// what the service's callers see: librdkafka retries what can be retried, so the
// orders arrive, once each; what cannot be retried reaches the caller as a typed
// kcoro::error.
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using kcoro::test::run_bounded;
using kcoro::test::sleep_for;

namespace {

// ---- the code under test --------------------------------------------------------------

// Publishes an "order placed" event per order, keyed by the order id.
class order_events {
public:
    order_events(asio::any_io_executor executor, const std::string& bootstrap)
        : producer_(std::move(executor), {{"bootstrap.servers", bootstrap},
                                          // An order not recorded within 30 s fails (the default is 5 min).
                                          {"delivery.timeout.ms", "30000"}}) {}

    asio::awaitable<kcoro::record_metadata> order_placed(std::string order_id) {
        const kcoro::record r{.topic = "orders", .key = order_id, .value = "placed"};
        co_return co_await producer_.send(r);
    }

private:
    kcoro::producer producer_;
};

} // namespace

TEST_SUITE("mock_cluster") {

TEST_CASE("an order placed while the broker is down is recorded once it comes back") {
    kcoro::mock_cluster cluster(1); // one broker, id 1, on a loopback port
    cluster.create_topic("orders", 1);
    asio::io_context io;
    order_events service(io.get_executor(), cluster.bootstrap_servers());

    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await service.order_placed("order-1");

        cluster.broker_down(1); // connections drop, new ones are refused
        auto bring_broker_back = [&]() -> asio::awaitable<void> {
            co_await sleep_for(1s);
            cluster.broker_up(1);
        };
        // The order waits inside the producer while the broker is away (no error), and
        // is delivered when it returns.
        auto order_and_outage = service.order_placed("order-2") && bring_broker_back();
        const kcoro::record_metadata md = co_await std::move(order_and_outage);
        CHECK(md.offset == 1);
    }, 60s);

    // Exactly the two orders, in order: nothing lost, nothing duplicated.
    const auto recorded = kcoro::test::read_partition(cluster.bootstrap_servers(), "orders", 0, 0, 2);
    CHECK(recorded[0].key == "order-1");
    CHECK(recorded[1].key == "order-2");
}

TEST_CASE("produce errors the cluster reports are retried, and the order is recorded once") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("orders", 1);
    asio::io_context io;
    order_events service(io.get_executor(), cluster.bootstrap_servers());

    run_bounded(io, [&]() -> asio::awaitable<void> {
        // The next three Produce requests fail with retriable errors (a leader change,
        // too few in-sync replicas, a broker-side timeout); the fourth succeeds.
        cluster.push_request_errors(kcoro::kafka_api::produce,
                                    {kcoro::errc::not_leader_for_partition, kcoro::errc::not_enough_replicas,
                                     kcoro::errc::request_timed_out});
        const kcoro::record_metadata md = co_await service.order_placed("order-1");
        CHECK(md.offset == 0);
    });

    // The retries wrote it once (the producer is idempotent by default).
    const auto recorded = kcoro::test::read_partition(cluster.bootstrap_servers(), "orders", 0, 0, 1);
    CHECK(recorded[0].key == "order-1");
}

TEST_CASE("an error that cannot be retried reaches the service's caller as a typed error") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("orders", 1);
    asio::io_context io;
    order_events service(io.get_executor(), cluster.bootstrap_servers());

    run_bounded(io, [&]() -> asio::awaitable<void> {
        // The broker rejects the next Produce request's records as corrupt.
        cluster.push_request_errors(kcoro::kafka_api::produce, {kcoro::errc::invalid_record});
        try {
            co_await service.order_placed("order-1");
            FAIL("the order was recorded despite the broker's rejection");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_record);
            CHECK_FALSE(kcoro::is_retriable(e.code()));
            CHECK(std::string(e.what()).find("'orders'") != std::string::npos);
        }
        // The error was used up: the next order goes through.
        const kcoro::record_metadata md = co_await service.order_placed("order-2");
        CHECK(md.topic == "orders");
    });
}

TEST_CASE("one broker can be made to answer late or with errors, and the rest can be cleared") {
    kcoro::mock_cluster cluster(2);
    cluster.create_topic("orders", 1);
    cluster.set_partition_leader("orders", 0, 2); // broker 2 leads the partition
    asio::io_context io;
    order_events service(io.get_executor(), cluster.bootstrap_servers());

    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Broker 2's next Produce answers fail once, then succeed after 200 ms.
        cluster.push_broker_responses(2, kcoro::kafka_api::produce,
                                      {{.error = kcoro::errc::not_leader_for_partition},
                                       {.delay = 200ms}});
        CHECK(cluster.pending_broker_responses(2, kcoro::kafka_api::produce) == 2);
        const kcoro::record_metadata md = co_await service.order_placed("order-1");
        CHECK(md.offset == 0);
        CHECK(cluster.pending_broker_responses(2, kcoro::kafka_api::produce) == 0);

        // Errors pushed but not yet used can be dropped.
        cluster.push_request_errors(kcoro::kafka_api::produce, {kcoro::errc::topic_authorization_failed});
        cluster.clear_request_errors(kcoro::kafka_api::produce);
        const kcoro::record_metadata md2 = co_await service.order_placed("order-2");
        CHECK(md2.offset == 1);

        // A slow broker slows its clients down, and nothing else.
        cluster.set_round_trip_time(2, 300ms);
        const auto before = std::chrono::steady_clock::now();
        co_await service.order_placed("order-3");
        CHECK(std::chrono::steady_clock::now() - before >= 300ms);
        cluster.set_round_trip_time(kcoro::mock_cluster::all_brokers, 0ms);
    });
}

TEST_CASE("metadata errors and leader moves are what admin clients see") {
    kcoro::mock_cluster cluster(3);
    cluster.create_topic("orders", 2, 3);
    cluster.set_partition_leader("orders", 1, 3);
    cluster.create_topic("blocked", 1);
    cluster.set_topic_error("blocked", kcoro::errc::topic_authorization_failed);
    asio::io_context io;
    kcoro::admin admin(io, {{"bootstrap.servers", cluster.bootstrap_servers()}});

    run_bounded(io, [&]() -> asio::awaitable<void> {
        const auto orders = co_await admin.describe_topic("orders");
        CHECK(orders.partitions.at(1).leader == 3);
        CHECK(orders.partitions.at(1).replicas.size() == 3);
        const kcoro::cluster_description d = co_await admin.describe_cluster();
        CHECK(d.brokers.size() == static_cast<std::size_t>(cluster.broker_count()));
        try {
            co_await admin.describe_topic("blocked");
            FAIL("the topic's injected metadata error was not reported");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::topic_authorization_failed);
        }
        cluster.set_topic_error("blocked", {});
        const auto blocked = co_await admin.describe_topic("blocked");
        CHECK(blocked.partitions.size() == 1);
    });
}

TEST_CASE("mistakes in using the mock cluster are reported with what was wrong") {
    CHECK_THROWS_AS(kcoro::mock_cluster(0), kcoro::error);
    kcoro::mock_cluster cluster(2);
    CHECK(cluster.broker_count() == 2);
    try {
        cluster.broker_down(3);
        FAIL("a broker that does not exist went down");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::invalid_argument);
        CHECK(std::string(e.what()).find("no broker 3") != std::string::npos);
    }
    try {
        cluster.create_topic("wide", 1, 3);
        FAIL("replication factor 3 accepted with 2 brokers");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::invalid_replication_factor);
        CHECK(std::string(e.what()).find("'wide'") != std::string::npos);
    }
    CHECK_THROWS_AS(cluster.create_topic("none", 0), kcoro::error);
    CHECK_THROWS_AS(cluster.set_round_trip_time(1, -1ms), kcoro::error);
    CHECK_THROWS_AS(cluster.set_partition_leader("t", 0, 5), kcoro::error);
    CHECK_THROWS_AS(cluster.push_broker_responses(0, kcoro::kafka_api::fetch, {{}}), kcoro::error);
    // Everything else about brokers takes all_brokers or an existing id.
    cluster.broker_down(kcoro::mock_cluster::all_brokers);
    cluster.broker_up(kcoro::mock_cluster::all_brokers);
    // librdkafka 2.0.2 never frees a mock broker's rack (it is copied on the mock
    // cluster's own thread, out of reach of an exemption): not under LeakSanitizer.
    if (!kcoro::test::leak_checked) cluster.set_rack(1, "rack-a");
    cluster.set_group_coordinator("group", 2);
    cluster.set_transaction_coordinator("txn", 1);
    // A moved-from cluster can be assigned a new one.
    kcoro::mock_cluster other(1);
    cluster = std::move(other);
    CHECK(cluster.broker_count() == 1);
}

} // TEST_SUITE
