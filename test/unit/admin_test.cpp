// The admin client on librdkafka's mock cluster: what the mock implements (metadata:
// cluster and topic descriptions), what it does not (it answers the cluster-changing
// admin APIs with errc::unsupported_feature), local validation, lifetimes and tokens.
// The real broker's answers to each operation are in test/integration/admin_test.cpp.
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;

namespace {

kcoro::config admin_config(const kcoro::mock_cluster& cluster) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()}, {"log_level", "3"}};
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_SUITE("admin") {

TEST_CASE("describe_cluster lists the brokers and the controller") {
    kcoro::mock_cluster cluster(3);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster));
    kcoro::cluster_description d;
    run_bounded(io, [&]() -> asio::awaitable<void> { d = co_await admin.describe_cluster(); });
    REQUIRE(d.brokers.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(d.brokers[i].id == i + 1);
        CHECK_FALSE(d.brokers[i].host.empty());
        CHECK(d.brokers[i].port > 0);
        CHECK(contains(cluster.bootstrap_servers(), fmt::format(":{}", d.brokers[i].port)));
    }
    // The mock names no controller (its metadata says 0); a real cluster's is checked
    // by the integration suite.
    CHECK(d.controller_id <= 3);
    CHECK_FALSE(d.cluster_id.empty());
}

TEST_CASE("describe_topics reports partitions, leaders, replicas and ISR") {
    kcoro::mock_cluster cluster(3);
    cluster.create_topic("orders", 4, 3);
    cluster.create_topic("single", 1, 1);
    cluster.set_partition_leader("orders", 2, 3);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster));
    std::vector<kcoro::topic_description> ds;
    kcoro::topic_description single;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // (Named: GCC 12 mishandles braced temporaries inside co_await expressions.)
        const std::vector<std::string> names{"orders", "single"};
        ds = co_await admin.describe_topics(names);
        single = co_await admin.describe_topic("single");
    });
    REQUIRE(ds.size() == 2);
    CHECK(ds[0].name == "orders");
    CHECK_FALSE(ds[0].error);
    REQUIRE(ds[0].partitions.size() == 4);
    for (int p = 0; p < 4; ++p) {
        const auto& pd = ds[0].partitions[p];
        CHECK(pd.partition == p);
        CHECK(pd.replicas.size() == 3);
        CHECK(pd.in_sync.size() == 3);
        CHECK(std::find(pd.replicas.begin(), pd.replicas.end(), pd.leader) != pd.replicas.end());
        CHECK_FALSE(pd.error);
    }
    CHECK(ds[0].partitions[2].leader == 3);
    CHECK(ds[1].name == "single");
    CHECK(ds[1].partitions.size() == 1);
    CHECK(single.partitions.size() == 1);
    CHECK_FALSE(single.partitions[0].replicas.empty());
}

TEST_CASE("describing a missing topic fails with unknown_topic_or_partition and never creates it") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("present", 1);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        try {
            // A name longer than std::string's small buffer, passed as a literal: the
            // awaitable's by-value parameter must be destroyed once (checked under ASan).
            co_await admin.describe_topic("absent-topic-with-a-name-longer-than-the-small-buffer");
            FAIL("describing a missing topic succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::unknown_topic_or_partition);
            CHECK(contains(e.what(), "'absent-topic-with-a-name-longer-than-the-small-buffer'"));
        }
        // The batch form reports each topic; the token's error_code is the first failure.
        const std::vector<std::string> both{"present", "absent"};
        auto [ec, ds] = co_await admin.describe_topics(both, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::unknown_topic_or_partition);
        REQUIRE(ds.size() == 2);
        CHECK_FALSE(ds[0].error);
        CHECK(ds[0].partitions.size() == 1);
        CHECK(ds[1].error == kcoro::errc::unknown_topic_or_partition);
        const auto names = co_await admin.list_topics();
        CHECK(std::find(names.begin(), names.end(), "present") != names.end());
        CHECK(std::find(names.begin(), names.end(), "absent") == names.end());
    });
}

TEST_CASE("the mock cluster has no controller: create_topics times out, reported per topic") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster), {.request_timeout = 1s});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const std::vector<kcoro::new_topic> topics{{.name = "a", .partitions = 2}, {.name = "b", .partitions = 1}};
        auto [ec, results] = co_await admin.create_topics(topics, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::timed_out);
        REQUIRE(results.size() == 2);
        CHECK(results[0].name == "a");
        CHECK(results[1].name == "b");
        CHECK(results[1].error == kcoro::errc::timed_out);
        CHECK_FALSE(results[1].message.empty());
        try {
            const kcoro::new_topic c{.name = "c", .partitions = 1};
            co_await admin.create_topic(c);
            FAIL("create_topic succeeded on the mock cluster");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::timed_out);
            CHECK(contains(e.what(), "'c'"));
        }
    }, 120s);
}

TEST_CASE("what the mock cluster does not implement fails with a typed error, not a hang") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("t", 1);
    asio::io_context io;
    // librdkafka 2.0.2 leaks a reply queue made in rd_kafka_new (and the operations it
    // holds) when a fan-out request (DeleteRecords, ListConsumerGroups) fails because
    // the broker lacks the API, as here.
    auto admin = [&] {
        const kcoro::test::librdkafka_leak_exempt exempt;
        return kcoro::admin(io, admin_config(cluster), {.request_timeout = 1s});
    }();
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Configs go to the controller, which the mock never names: the request times out.
        auto [configs, entries] =
            co_await admin.describe_configs(kcoro::config_resource::topic("t"), asio::as_tuple(asio::use_awaitable));
        CHECK(configs == kcoro::errc::timed_out);
        // DeleteRecords and group listing: not in the mock's API list.
        const std::vector<kcoro::partition_offset> before{{"t", 0, 0}};
        auto [deleted, records] = co_await admin.delete_records(before, asio::as_tuple(asio::use_awaitable));
        CHECK(deleted == kcoro::errc::unsupported_feature);
        REQUIRE(records.size() == 1);
        CHECK(records[0].topic == "t");
        auto [listed, groups] = co_await admin.list_consumer_groups(asio::as_tuple(asio::use_awaitable));
        CHECK(listed == kcoro::errc::unsupported_feature);
        // (Describing or deleting groups is not tried: on the mock, librdkafka 2.0.2's
        // coordinator path then breaks the client, whose destruction hangs or asserts.)
    }, 60s);
}

TEST_CASE("bad arguments fail with invalid_argument naming the topic, before anything is sent") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const std::vector<kcoro::new_topic> topics{{.name = "fine", .partitions = 1},
                                                   {.name = "zero", .partitions = 0}};
        auto [ec, results] = co_await admin.create_topics(topics, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::invalid_argument);
        REQUIRE(results.size() == 2);
        CHECK(results[1].error == kcoro::errc::invalid_argument);
        CHECK_FALSE(results[1].message.empty());
        CHECK(contains(results[0].message, "not attempted"));
        try {
            co_await admin.create_topics(topics);
            FAIL("a zero-partition topic was accepted");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_argument);
            CHECK(contains(e.what(), "'zero'"));
        }
        try {
            const kcoro::new_topic unnamed{.name = "", .partitions = 1};
            co_await admin.create_topic(unnamed);
            FAIL("an empty topic name was accepted");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_argument);
        }
        try {
            const std::vector<std::string> twice{"x", "x"};
            co_await admin.delete_topics(twice);
            FAIL("a topic named twice was accepted");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_argument);
            CHECK(contains(e.what(), "named twice"));
        }
        try {
            co_await admin.create_partitions("t", 0);
            FAIL("zero partitions accepted");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_argument);
            CHECK(contains(e.what(), "'t'"));
        }
        try {
            const std::vector<kcoro::partition_offset> negative{{.topic = "t", .partition = 0, .offset = -5}};
            co_await admin.delete_records(negative);
            FAIL("a negative offset accepted");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_argument);
        }
        // An empty batch is no request and no error.
        const auto none = co_await admin.delete_topics(std::vector<std::string>{});
        CHECK(none.empty());
    });
}

TEST_CASE("a closed admin client fails every operation with client_closed") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await admin.close();
        co_await admin.close(); // harmless
        auto [ec, d] = co_await admin.describe_cluster(asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::client_closed);
        try {
            co_await admin.describe_topic("t");
            FAIL("describe after close succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::client_closed);
        }
        const std::vector<std::string> t{"t"};
        auto [ec2, r] = co_await admin.delete_topics(t, asio::as_tuple(asio::use_awaitable));
        CHECK(ec2 == kcoro::errc::client_closed);
        const auto resource = kcoro::config_resource::topic("t");
        const std::vector<kcoro::config_alteration> change{{"retention.ms", "1"}};
        auto [ec3] = co_await admin.alter_configs(resource, change, asio::as_tuple(asio::use_awaitable));
        CHECK(ec3 == kcoro::errc::client_closed);
    });
}

TEST_CASE("close waits for outstanding operations, and aborts them after its timeout") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("t", 1);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster), {.request_timeout = 20s});
    std::optional<kcoro::error_code> described;
    kcoro::error_code closed;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        cluster.broker_down(kcoro::mock_cluster::all_brokers); // the request cannot be answered
        admin.describe_cluster([&](kcoro::error_code ec, kcoro::cluster_description) { described = ec; });
        auto [ec] = co_await admin.close(200ms, asio::as_tuple(asio::use_awaitable));
        closed = ec;
    }, 60s);
    REQUIRE(described.has_value());
    CHECK(*described == asio::error::operation_aborted);
    CHECK(closed == kcoro::errc::timed_out);
}

TEST_CASE("cancelling an operation ends its wait with operation_aborted") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster), {.request_timeout = 20s});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        cluster.broker_down(1);
        asio::cancellation_signal signal;
        std::optional<kcoro::error_code> result;
        admin.describe_topics({"t"}, asio::bind_cancellation_slot(signal.slot(), [&](kcoro::error_code ec, auto) {
                                  result = ec;
                              }));
        asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
        co_await timer.async_wait(asio::use_awaitable);
        CHECK_FALSE(result.has_value());
        signal.emit(asio::cancellation_type::terminal);
        for (int i = 0; i < 100 && !result; ++i) {
            timer.expires_after(10ms);
            co_await timer.async_wait(asio::use_awaitable);
        }
        REQUIRE(result.has_value());
        CHECK(*result == asio::error::operation_aborted);
        cluster.broker_up(1);
    }, 60s);
}

TEST_CASE("tokens: use_future from another thread, deferred, plain callbacks") {
    kcoro::mock_cluster cluster(2);
    cluster.create_topic("t", 2, 2);
    asio::io_context io;
    kcoro::admin admin(io, admin_config(cluster));
    std::thread runner([&] {
        auto guard = asio::make_work_guard(io);
        io.run_for(30s);
    });
    auto future = admin.describe_cluster(asio::use_future);
    const auto d = future.get();
    CHECK(d.brokers.size() == 2);
    auto topic = admin.describe_topic("t", asio::use_future).get();
    CHECK(topic.partitions.size() == 2);
    try {
        admin.describe_topic("nope", asio::use_future).get();
        FAIL("use_future did not throw");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == kcoro::errc::unknown_topic_or_partition);
    }
    admin.close(kcoro::admin::no_timeout, asio::use_future).get();
    io.stop();
    runner.join();
}

TEST_CASE("destroying an admin client with operations outstanding is safe") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    std::optional<kcoro::error_code> result;
    {
        kcoro::admin admin(io, admin_config(cluster), {.request_timeout = 20s});
        cluster.broker_down(1);
        admin.describe_cluster([&](kcoro::error_code ec, kcoro::cluster_description) { result = ec; });
    }
    io.run_for(5s);
    REQUIRE(result.has_value());
    CHECK(*result == asio::error::operation_aborted);
}

TEST_CASE("admin errors and group states have names") {
    CHECK(kcoro::make_error_code(kcoro::errc::topic_already_exists).message() == "Broker: Topic already exists");
    CHECK(kcoro::make_error_code(kcoro::errc::group_id_not_found).message() == "Broker: The group id does not exist");
    CHECK(kcoro::to_string(kcoro::consumer_group_state::stable) == "Stable");
    const kcoro::resource_result r{"orders", kcoro::errc::topic_already_exists, "Topic 'orders' already exists."};
    CHECK(fmt::format("{}", r) == "'orders': Broker: Topic already exists (Topic 'orders' already exists.)");
    CHECK(fmt::format("{}", kcoro::resource_result{"ok"}) == "'ok': ok");
    CHECK(fmt::format("{}", kcoro::broker_description{1, "localhost", 9092}) == "1@localhost:9092");
}

} // TEST_SUITE
