#include <kcoro/kcoro.hpp>
#include <kcoro/consumer.hpp>

#include "consumer_test_support.hpp"
#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;


TEST_CASE("consumer: unknown key and rejected value are typed errors naming the key") {
    asio::io_context io;
    try {
        kcoro::consumer c(io, {{"group.id", "g"}, {"no.such.key", "1"}});
        FAIL("expected an error");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::unknown_config_key);
        CHECK(std::string(e.what()).find("no.such.key") != std::string::npos);
    }
    try {
        kcoro::consumer c(io, {{"group.id", "g"}, {"auto.offset.reset", "sideways"}});
        FAIL("expected an error");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::invalid_config_value);
        CHECK(std::string(e.what()).find("auto.offset.reset") != std::string::npos);
    }
}

TEST_CASE("consumer: subscribe and receive messages with key, value, headers, timestamp") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("recv", 1);
    const kcoro::record rich{.topic = "recv",
                             .key = std::string("k\0y", 3),
                             .value = "hello",
                             .headers = {{"h", "1"}, {"h", "2"}, {"n", std::nullopt}},
                             .timestamp = kcoro::timestamp(1'700'000'000'000ms)};
    const kcoro::record tombstone{.topic = "recv"};
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::producer producer(io, producer_config(cluster));
        co_await producer.send(rich);
        co_await producer.send(tombstone); // null key and value
        co_await producer.close();

        kcoro::consumer consumer(io, consumer_config(cluster, "recv-group"));
        consumer.subscribe(topics({"recv"}));
        CHECK(consumer.subscription() == topics({"recv"}));
        kcoro::message m = co_await consumer.receive();
        REQUIRE(m);
        CHECK(m.topic() == "recv");
        CHECK(m.partition() == 0);
        CHECK(m.offset() == 0);
        CHECK(m.key() == std::string("k\0y", 3));
        CHECK(m.value() == "hello");
        CHECK(m.value_bytes().size() == 5);
        CHECK(m.timestamp() == kcoro::timestamp(1'700'000'000'000ms));
        CHECK(m.timestamp_type() == kcoro::timestamp_type::create_time);
        auto hs = m.headers();
        REQUIRE(hs.size() == 3);
        CHECK(hs[0].key == "h");
        CHECK(hs[0].value == "1");
        CHECK(hs[2].key == "n");
        CHECK_FALSE(hs[2].value.has_value());
        CHECK(m.last_header("h") == std::optional<std::optional<std::string_view>>(std::string_view("2")));
        CHECK_FALSE(m.last_header("zzz").has_value());
        CHECK(fmt::format("{}", m) == "recv/0@0");
        CHECK(m.next_offset() == offs({{"recv", 0, 1}})[0]);

        kcoro::message moved = std::move(m);
        CHECK_FALSE(m);
        CHECK(moved.offset() == 0);

        kcoro::message tomb = co_await consumer.receive();
        CHECK(tomb.offset() == 1);
        CHECK_FALSE(tomb.key().has_value());
        CHECK_FALSE(tomb.value().has_value());
        CHECK(tomb.value_bytes().empty());
        CHECK(tomb.headers().empty());
        moved = kcoro::message{};
        tomb = kcoro::message{};
        co_await consumer.close();
    });
}

TEST_CASE("consumer: manual assign with start offsets") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("assigned", 2);
    produce_sync(cluster, "assigned", 10, 0);
    produce_sync(cluster, "assigned", 10, 1, 100);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "assign-group"));
        consumer.assign(offs({{"assigned", 0, 7}, {"assigned", 1, kcoro::offsets::beginning}}));
        auto a = consumer.assignment();
        std::sort(a.begin(), a.end());
        CHECK(a == parts({{"assigned", 0}, {"assigned", 1}}));
        std::map<int, std::vector<std::int64_t>> seen;
        for (int i = 0; i < 13; ++i) {
            kcoro::message m = co_await consumer.receive();
            seen[m.partition()].push_back(m.offset());
        }
        CHECK(seen[0] == std::vector<std::int64_t>{7, 8, 9});
        CHECK(seen[1].size() == 10);
        CHECK(seen[1].front() == 0);
        consumer.unassign();
        CHECK(consumer.assignment().empty());
        co_await consumer.close();
    });
}

TEST_CASE("consumer: receive_batch fills up to max, or returns what arrived by max_wait") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("batch", 1);
    produce_sync(cluster, "batch", 120);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "batch-group"));
        consumer.assign(offs({{"batch", 0, kcoro::offsets::beginning}}));
        auto b1 = co_await consumer.receive_batch(50, 10s);
        REQUIRE(b1.size() == 50);
        for (std::size_t i = 0; i < b1.size(); ++i) CHECK(b1[i].offset() == static_cast<std::int64_t>(i));
        auto b2 = co_await consumer.receive_batch(50, 10s, std::move(b1));
        REQUIRE(b2.size() == 50);
        CHECK(b2.front().offset() == 50);
        // Only 20 left: the batch ends at max_wait with what arrived.
        const auto start = std::chrono::steady_clock::now();
        auto b3 = co_await consumer.receive_batch(50, 300ms);
        CHECK(b3.size() == 20);
        CHECK(std::chrono::steady_clock::now() - start >= 250ms);
        CHECK(b3.back().offset() == 119);
        // Nothing left: empty after max_wait; max_wait 0 returns at once.
        auto b4 = co_await consumer.receive_batch(10, 50ms);
        CHECK(b4.empty());
        auto b5 = co_await consumer.receive_batch(10, 0ms);
        CHECK(b5.empty());
        // The token form.
        auto [ec, b6] = co_await consumer.receive_batch(5, 20ms, {}, asio::as_tuple(asio::use_awaitable));
        CHECK_FALSE(ec);
        CHECK(b6.empty());
        b2.clear();
        b3.clear();
        co_await consumer.close();
    });
}

TEST_CASE("consumer: partition EOF is a typed error, not a message, and consuming goes on") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("eof", 1);
    produce_sync(cluster, "eof", 2);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "eof-group");
        conf.set("enable.partition.eof", "true");
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"eof", 0, kcoro::offsets::beginning}}));
        const auto r1 = co_await consumer.receive();
        CHECK(r1.offset() == 0);
        const auto r2 = co_await consumer.receive();
        CHECK(r2.offset() == 1);
        try {
            (void)co_await consumer.receive();
            FAIL("expected partition EOF");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::partition_eof);
            CHECK(std::string(e.what()).find("topic 'eof' partition 0") != std::string::npos);
        }
        co_await produce(cluster, "eof", 1, 0, 2);
        auto [ec, m] = co_await consumer.receive(asio::as_tuple(asio::use_awaitable));
        CHECK_FALSE(ec);
        CHECK(m.offset() == 2);
        m = {};
        co_await consumer.close();
    });
}

TEST_CASE("consumer: commits (position, offsets, message) and committed()") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("commits", 1);
    produce_sync(cluster, "commits", 10);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "commit-group");
        conf.set("enable.auto.commit", "false");
        kcoro::consumer consumer(io, conf);
        consumer.subscribe(topics({"commits"}));
        // Nothing consumed yet: nothing to commit is success.
        co_await consumer.commit();
        for (int i = 0; i < 4; ++i) (void)co_await consumer.receive();
        co_await consumer.commit();
        const auto arg1 = parts({{"commits", 0}});
        auto c = co_await consumer.committed(arg1, 5s);
        REQUIRE(c.size() == 1);
        CHECK(c[0].offset == 4);

        kcoro::message m = co_await consumer.receive();
        CHECK(m.offset() == 4);
        co_await consumer.commit(m);
        const auto arg2 = parts({{"commits", 0}});
        const auto r3 = co_await consumer.committed(arg2, 5s);
        CHECK(r3[0].offset == 5);

        const auto arg3 = offs({{"commits", 0, 9}});
        co_await consumer.commit(arg3);
        const auto arg4 = parts({{"commits", 0}});
        const auto r4 = co_await consumer.committed(arg4, 5s);
        CHECK(r4[0].offset == 9);

        // The token forms.
        auto [ec] = co_await consumer.commit(m, asio::as_tuple(asio::use_awaitable));
        CHECK_FALSE(ec);
        m = {};
        co_await consumer.close();
    });
    // A new member of the group starts where the group committed.
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "commit-group"));
        consumer.subscribe(topics({"commits"}));
        kcoro::message m = co_await consumer.receive();
        CHECK(m.offset() == 5);
        m = {};
        co_await consumer.close();
    });
}

// Received offsets reach librdkafka in bulk, once per drain turn: a commit, a close and a
// reassignment must each see every message received before them, including those taken
// from the local buffer since the last turn.
TEST_CASE("consumer: received offsets are stored before a commit, a close and a reassignment") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("stored", 1);
    cluster.create_topic("elsewhere", 1);
    produce_sync(cluster, "stored", 10);
    asio::io_context io;
    // Lets the rest of the records reach the local buffer, so that the receives after it
    // take them without waiting (a wait would end a drain turn, which stores anyway).
    auto let_buffer_fill = [&]() -> asio::awaitable<void> {
        asio::steady_timer t(io, 300ms);
        co_await t.async_wait(asio::use_awaitable);
    };
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "stored-group");
        conf.set("auto.commit.interval.ms", "60000"); // only commit() and close() commit
        kcoro::consumer consumer(io, conf);
        consumer.subscribe(topics({"stored"}));
        kcoro::message m = co_await consumer.receive();
        co_await let_buffer_fill();
        m = co_await consumer.receive();
        m = co_await consumer.receive();
        CHECK(m.offset() == 2);
        co_await consumer.commit();
        const auto arg = parts({{"stored", 0}});
        const auto c = co_await consumer.committed(arg, 5s);
        CHECK(c.at(0).offset == 3);
        m = co_await consumer.receive();
        m = co_await consumer.receive();
        CHECK(m.offset() == 4);
        m = {};
        co_await consumer.close();
    });
    // The group resumes after the last message received before the close.
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "stored-group"));
        consumer.subscribe(topics({"stored"}));
        kcoro::message m = co_await consumer.receive();
        CHECK(m.offset() == 5);
        m = {};
        co_await consumer.close();
    });
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // A group of its own: the mock cluster refuses an assigned consumer's commits to a
        // group that had members.
        auto conf = consumer_config(cluster, "stored-assign-group");
        conf.set("auto.commit.interval.ms", "60000"); // only giving a partition up commits
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"stored", 0, kcoro::offsets::beginning}}));
        kcoro::message m = co_await consumer.receive();
        co_await let_buffer_fill();
        m = co_await consumer.receive();
        m = co_await consumer.receive();
        CHECK(m.offset() == 2);
        m = {};
        consumer.assign(offs({{"elsewhere", 0, kcoro::offsets::beginning}}));
        const auto arg = parts({{"stored", 0}});
        std::int64_t committed = -1;
        for (int tries = 0; tries < 100 && committed != 3; ++tries) {
            const auto c = co_await consumer.committed(arg, 5s);
            committed = c.at(0).offset;
            asio::steady_timer t(io, 50ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        CHECK(committed == 3);
        co_await consumer.close();
    });
}

TEST_CASE("consumer: at-least-once after processing stores only what was marked done") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("alo", 1);
    produce_sync(cluster, "alo", 10);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "alo-group");
        conf.set("auto.commit.interval.ms", "100");
        kcoro::consumer consumer(io, conf, {.store_offsets_after_processing = true});
        consumer.subscribe(topics({"alo"}));
        for (int i = 0; i < 6; ++i) {
            kcoro::message m = co_await consumer.receive();
            if (i < 3) consumer.mark_done(m); // processed 0, 1, 2; 3..5 received but not done
        }
        co_await consumer.commit();
        const auto arg5 = parts({{"alo", 0}});
        const auto r5 = co_await consumer.committed(arg5, 5s);
        CHECK(r5[0].offset == 3);
        co_await consumer.close();
    });
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "alo-group"));
        consumer.subscribe(topics({"alo"}));
        kcoro::message m = co_await consumer.receive();
        CHECK(m.offset() == 3); // what was not done is delivered again
        m = {};
        co_await consumer.close();
    });
}

TEST_CASE("consumer: mark_done on a partition not assigned is a typed error") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("md", 1);
    produce_sync(cluster, "md", 1);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "md-group"), {.store_offsets_after_processing = true});
        consumer.assign(offs({{"md", 0, kcoro::offsets::beginning}}));
        kcoro::message m = co_await consumer.receive();
        consumer.unassign();
        kcoro::error_code ec;
        consumer.mark_done(m, ec);
        CHECK(ec);
        CHECK_THROWS_AS(consumer.mark_done(m), kcoro::error);
        m = {};
        co_await consumer.close();
    });
}

TEST_CASE("consumer: log lines and client-wide errors reach on_log and on_error on the executor") {
    asio::io_context io;
    const auto io_thread = std::this_thread::get_id();
    int logs = 0, errors = 0;
    bool all_on_executor = true;
    std::vector<kcoro::error_code> codes;
    std::string last_error_text;
    kcoro::consumer_options options;
    options.on_log = [&](const kcoro::log_entry& e) {
        all_on_executor &= std::this_thread::get_id() == io_thread;
        CHECK_FALSE(e.facility.empty());
        ++logs;
    };
    options.on_error = [&](const kcoro::client_error& e) {
        all_on_executor &= std::this_thread::get_id() == io_thread;
        CHECK_FALSE(e.fatal);
        codes.push_back(e.code);
        last_error_text = fmt::format("{}", e);
        ++errors;
    };
    // Nothing listens on this port: connection failures are client-wide error events.
    const kcoro::config cfg{{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "sinks"}, {"debug", "cgrp"}};
    kcoro::consumer consumer(io, cfg, std::move(options));
    consumer.subscribe({"anything"});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (int i = 0; i < 100 && (errors == 0 || logs == 0); ++i) {
            t.expires_after(50ms);
            co_await t.async_wait(asio::deferred);
        }
        co_await consumer.close();
    });
    CHECK(all_on_executor);
    CHECK(logs > 0);
    REQUIRE(errors > 0);
    CHECK(std::find_if(codes.begin(), codes.end(), [](kcoro::error_code c) {
              return c == kcoro::errc::transport || c == kcoro::errc::all_brokers_down;
          }) != codes.end());
    CHECK(last_error_text.find("error: ") == 0);
}

TEST_CASE("consumer: a transient fetch error is reported to on_error, not to the receive, on the executor") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("flaky", 1);
    produce_sync(cluster, "flaky", 5);
    // Failing Fetch requests make librdkafka report a partition error and retry.
    cluster.push_request_errors(kcoro::kafka_api::fetch, {kcoro::errc::request_timed_out, kcoro::errc::request_timed_out});
    asio::io_context io;
    const auto io_thread = std::this_thread::get_id();
    bool all_on_executor = true;
    std::vector<std::string> reported;
    kcoro::consumer_options options;
    options.on_error = [&](const kcoro::client_error& e) {
        all_on_executor &= std::this_thread::get_id() == io_thread;
        reported.push_back(fmt::format("{}", e));
    };
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "flaky-group"), std::move(options));
        consumer.assign(offs({{"flaky", 0, kcoro::offsets::beginning}}));
        for (int i = 0; i < 5; ++i) {
            kcoro::message m = co_await consumer.receive(); // throws on any error: none may come
            CHECK(m.offset() == i);
        }
        co_await consumer.close();
    });
    CHECK(all_on_executor);
    REQUIRE_FALSE(reported.empty());
    CHECK_MESSAGE(std::find_if(reported.begin(), reported.end(), [](const std::string& s) {
                      return s.find("Fetch") != std::string::npos && s.find("timed out") != std::string::npos;
                  }) != reported.end(),
                  fmt::format("{}", fmt::join(reported, "\n")));
}

TEST_CASE("consumer: without on_log, errors are printed, and lower levels only when debug is set") {
    // Runs a consumer that cannot connect for a moment and returns what it printed.
    auto printed = [](const kcoro::config& cfg) {
        return kcoro::test::capture_stderr([&] {
            asio::io_context io;
            kcoro::consumer consumer(io, cfg);
            consumer.subscribe({"anything"});
            run_bounded(io, [&]() -> asio::awaitable<void> {
                asio::steady_timer t(co_await asio::this_coro::executor, 500ms);
                co_await t.async_wait(asio::deferred);
                co_await consumer.close();
            });
        });
    };
    // A producer property makes librdkafka log a warning (level 4) that it is ignored.
    const kcoro::config quiet{
        {"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "printed"}, {"log_level", "7"}, {"linger.ms", "5"}};
    kcoro::config debugging = quiet;
    debugging.set("debug", "cgrp");
    const std::string without = printed(quiet);
    const std::string with = printed(debugging);
    // The refused connection is printed either way; the warning only when debugging.
    CHECK_MESSAGE(without.find("kcoro consumer error: ") != std::string::npos, without);
    CHECK_MESSAGE(without.find("CONFWARN") == std::string::npos, without);
    CHECK_MESSAGE(with.find("CONFWARN") != std::string::npos, with);
    CHECK_MESSAGE(with.find("kcoro consumer [7] CGRP") != std::string::npos, with);
}
