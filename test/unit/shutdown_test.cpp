// Shutdown under load: closing or destroying a producer or a consumer with work of every
// kind outstanding finishes (within run_bounded's generous bound: no timed assertions) and
// completes every outstanding operation exactly once. The producer's close/destroy with
// plain sends in flight is in producer_pipeline_test.cpp; this adds the other kinds.
#include <kcoro/consumer.hpp>
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;
using kcoro::test::sleep_for;

namespace {

kcoro::config producer_config(const kcoro::mock_cluster& cluster) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()},
            {"linger.ms", "5"},
            {"queue.buffering.max.messages", "2000"}, // so some senders wait for room
            {"log_level", "0"}};
}

kcoro::config consumer_config(const kcoro::mock_cluster& cluster, const std::string& group) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()},
            {"group.id", group},
            {"auto.offset.reset", "earliest"},
            {"session.timeout.ms", "6000"},
            {"heartbeat.interval.ms", "100"},
            {"fetch.wait.max.ms", "10"},
            {"log_level", "0"}};
}

std::vector<kcoro::record> numbered(const std::string& topic, int n, int partitions) {
    std::vector<kcoro::record> rs;
    for (int i = 0; i < n; ++i)
        rs.push_back({.topic = topic, .partition = i % partitions, .value = fmt::format("{:08}", i)});
    return rs;
}

void fill_topic(const kcoro::mock_cluster& cluster, const std::string& topic, int n, int partitions) {
    asio::io_context io;
    const auto records = numbered(topic, n, partitions);
    std::vector<kcoro::delivery_report> reports(records.size());
    auto cfg = producer_config(cluster);
    cfg.set("queue.buffering.max.messages", "100000");
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::producer p(io, cfg);
        CHECK(co_await p.send_batch(records, reports) == 0);
        co_await p.close();
    });
}

// Counts completions, and catches a handler invoked twice.
struct tally {
    int expected = 0;
    int completed = 0;
    int ok = 0;
    int aborted = 0;
    int closed = 0;
    int other = 0;
    std::string first_other;
    void operator()(kcoro::error_code ec) {
        ++completed;
        if (!ec) ++ok;
        // Aborted by a close or destruction: still waiting for room (operation_aborted),
        // purged from librdkafka's queue, or purged in flight (it may have been written).
        else if (ec == asio::error::operation_aborted || ec == kcoro::errc::purged_from_queue ||
                 ec == kcoro::errc::purged_in_flight)
            ++aborted;
        else if (ec == kcoro::errc::client_closed) ++closed;
        else if (other++ == 0) first_other = ec.message();
    }
};

} // namespace

TEST_CASE("shutdown: a producer closed under load completes sends, waiters, batches, enqueues and flushes") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("close-mixed", 4);
    cluster.set_round_trip_time(1, 300ms);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    const auto records = numbered("close-mixed", 6'000, 4);
    std::vector<kcoro::delivery_report> batch_reports(2'000);
    const std::span<const kcoro::record> batch_records(records.data(), 2'000);
    tally sends, batches, enqueues, flushes, closes, waits;
    std::vector<kcoro::delivery> deliveries;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 8; ++i) {
            deliveries.push_back(co_await producer.enqueue(records[static_cast<std::size_t>(i)]));
        }
        for (const auto& r : records) {
            ++sends.expected;
            producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) { sends(ec); });
        }
        ++batches.expected;
        producer.send_batch(batch_records, batch_reports, [&](kcoro::error_code ec, std::size_t) { batches(ec); });
        for (int i = 0; i < 3; ++i) {
            ++enqueues.expected;
            producer.enqueue(records[0], [&](kcoro::error_code ec, kcoro::delivery d) {
                enqueues(ec);
                if (!ec) deliveries.push_back(std::move(d));
            });
            ++flushes.expected;
            producer.flush(kcoro::producer::no_timeout, [&](kcoro::error_code ec) { flushes(ec); });
        }
        for (int i = 0; i < 2; ++i) {
            ++closes.expected;
            producer.close(500ms, [&](kcoro::error_code ec) { closes(ec); });
        }
        while (closes.completed < closes.expected) co_await sleep_for(20ms);
        co_await sleep_for(50ms);
        for (auto& d : deliveries) {
            ++waits.expected;
            auto [ec, md] = co_await d.async_wait(asio::as_tuple(asio::deferred));
            waits(ec ? kcoro::error_code(asio::error::operation_aborted) : kcoro::error_code{});
        }
    }, 60s);
    for (const tally* t : {&sends, &batches, &enqueues, &flushes, &closes, &waits})
        CHECK(t->completed == t->expected);
    CHECK_MESSAGE(sends.ok + sends.aborted == sends.expected, sends.first_other << " x" << sends.other);
    CHECK(sends.aborted > 0); // the deadline was too short to deliver everything
    CHECK(flushes.other == 0);
}

TEST_CASE("shutdown: a producer destroyed under load completes everything in the background") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("destroy-mixed", 4);
    cluster.set_round_trip_time(1, 300ms);
    asio::io_context io;
    const auto records = numbered("destroy-mixed", 6'000, 4);
    std::vector<kcoro::delivery_report> batch_reports(1'000);
    const std::span<const kcoro::record> batch_records(records.data(), 1'000);
    tally sends, batches, flushes;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto producer = std::make_unique<kcoro::producer>(io, producer_config(cluster));
        for (const auto& r : records) {
            ++sends.expected;
            producer->send(r, [&](kcoro::error_code ec, kcoro::record_metadata) { sends(ec); });
        }
        ++batches.expected;
        producer->send_batch(batch_records, batch_reports, [&](kcoro::error_code ec, std::size_t) { batches(ec); });
        ++flushes.expected;
        producer->flush(kcoro::producer::no_timeout, [&](kcoro::error_code ec) { flushes(ec); });
        producer.reset(); // never blocks
        while (sends.completed < sends.expected || batches.completed < 1 || flushes.completed < 1)
            co_await sleep_for(20ms);
    }, 60s);
    CHECK(sends.completed == sends.expected);
    CHECK(sends.aborted > 0);
    CHECK(batches.completed == 1);
    CHECK(flushes.completed == 1);
}

TEST_CASE("shutdown: a consumer closed under load completes pending receives, batches and commits") {
    kcoro::mock_cluster cluster(1);
    fill_topic(cluster, "consume-close", 20'000, 4);
    asio::io_context io;
    kcoro::consumer consumer(io, consumer_config(cluster, "consume-close"), {.max_buffered = 1'000});
    const std::vector<std::string> topics{"consume-close"};
    consumer.subscribe(topics);
    tally receives, batches, commits, closes;
    int received = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Consume a while, so the buffer is full and fetches are under way.
        for (int i = 0; i < 3'000; ++i) {
            const kcoro::message m = co_await consumer.receive();
            ++received;
        }
        // Batches that can never fill, single receives, commits, then close.
        for (int i = 0; i < 4; ++i) {
            ++batches.expected;
            consumer.receive_batch(1'000'000, 60s, {}, [&](kcoro::error_code ec, std::vector<kcoro::message> got) {
                batches(ec);
                received += static_cast<int>(got.size());
            });
            ++receives.expected;
            consumer.receive([&](kcoro::error_code ec, kcoro::message) {
                receives(ec);
                if (!ec) ++received;
            });
            ++commits.expected;
            consumer.commit([&](kcoro::error_code ec) { commits(ec); });
        }
        co_await sleep_for(100ms);
        ++closes.expected;
        consumer.close([&](kcoro::error_code ec) { closes(ec); });
        ++closes.expected;
        auto [ec] = co_await consumer.close(asio::as_tuple(asio::deferred));
        closes(ec);
        co_await sleep_for(50ms);
    }, 60s);
    for (const tally* t : {&receives, &batches, &commits, &closes}) CHECK(t->completed == t->expected);
    CHECK(batches.aborted == batches.expected);
    CHECK(closes.ok == closes.expected);
    CHECK(commits.other == 0);
    CHECK(received >= 3'000);
}

TEST_CASE("shutdown: a consumer destroyed under load aborts what is pending and never hangs") {
    kcoro::mock_cluster cluster(1);
    fill_topic(cluster, "consume-destroy", 20'000, 4);
    asio::io_context io;
    tally receives, batches, commits;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto consumer = std::make_unique<kcoro::consumer>(io, consumer_config(cluster, "consume-destroy"),
                                                          kcoro::consumer_options{.max_buffered = 1'000});
        const std::vector<std::string> topics{"consume-destroy"};
        consumer->subscribe(topics);
        for (int i = 0; i < 2'000; ++i) {
            const kcoro::message m = co_await consumer->receive();
        }
        for (int i = 0; i < 4; ++i) {
            ++batches.expected;
            consumer->receive_batch(1'000'000, 60s, {}, [&](kcoro::error_code ec, std::vector<kcoro::message>) { batches(ec); });
            ++receives.expected;
            consumer->receive([&](kcoro::error_code ec, kcoro::message) { receives(ec); });
            ++commits.expected;
            consumer->commit([&](kcoro::error_code ec) { commits(ec); });
        }
        consumer.reset(); // never blocks
        while (receives.completed + batches.completed + commits.completed <
               receives.expected + batches.expected + commits.expected)
            co_await sleep_for(20ms);
    }, 60s);
    CHECK(batches.aborted == batches.expected);
    for (const tally* t : {&receives, &batches, &commits}) CHECK(t->completed == t->expected);
}

// A close hands the group's final revocation to kcoro's queue, and librdkafka waits for the
// partitions to be given up before it lets rd_kafka_destroy() return. When the execution
// context goes away first (the revocation queued, or its hook suspended), the consumer gives
// them up itself: destroying the context must not hang.
namespace {

// Runs `body` on a thread of its own; a hang ends the test binary with a failure (a hung
// thread cannot be joined, and doctest would never report).
void expect_no_hang(const char* what, const std::function<void()>& body) {
    auto finished = std::async(std::launch::async, body);
    if (finished.wait_for(60s) != std::future_status::ready) {
        std::fprintf(stderr, "FAILED: %s hung\n", what);
        std::_Exit(1);
    }
    finished.get();
}

} // namespace

TEST_CASE("shutdown: an execution context destroyed while a consumer leaves its group never hangs") {
    kcoro::mock_cluster cluster(1);
    fill_topic(cluster, "consume-context-gone", 2'000, 4);
    for (int attempt = 0; attempt < 3; ++attempt) {
        CAPTURE(attempt);
        expect_no_hang("destroying the io_context during a close", [&] {
            asio::io_context io;
            auto config = consumer_config(cluster, fmt::format("consume-context-gone-{}", attempt));
            if (attempt == 2) config.set("partition.assignment.strategy", "cooperative-sticky");
            auto consumer = std::make_unique<kcoro::consumer>(io, config);
            const std::vector<std::string> topics{"consume-context-gone"};
            consumer->subscribe(topics);
            run_bounded(io, [&]() -> asio::awaitable<void> {
                const kcoro::message m = co_await consumer->receive(); // partitions assigned
            }, 60s);
            consumer.reset(); // starts leaving the group
            io.poll();        // runs the start of the close; the revocation follows on the queue
            std::this_thread::sleep_for(std::chrono::milliseconds(30 + 30 * attempt)); // and stays unserved
        }); // ~io_context
    }
}

TEST_CASE("shutdown: an execution context destroyed while a revocation hook runs never hangs") {
    kcoro::mock_cluster cluster(1);
    fill_topic(cluster, "consume-hook-gone", 2'000, 4);
    expect_no_hang("destroying the io_context during a revocation hook", [&] {
        asio::io_context io;
        bool revoking = false;
        kcoro::consumer_options options{.on_rebalance = [&](kcoro::rebalance_event e) -> asio::awaitable<void> {
            if (e.type != kcoro::rebalance_event::kind::revoked) co_return;
            revoking = true;
            co_await sleep_for(600s); // never finishes: the context goes first
        }};
        kcoro::consumer consumer(io, consumer_config(cluster, "consume-hook-gone"), std::move(options));
        const std::vector<std::string> topics{"consume-hook-gone"};
        consumer.subscribe(topics);
        run_bounded(io, [&]() -> asio::awaitable<void> {
            const kcoro::message m = co_await consumer.receive();
            consumer.close([](kcoro::error_code) {});
            while (!revoking) co_await sleep_for(5ms);
        }, 60s);
        CHECK(revoking);
    }); // ~consumer, then ~io_context with the hook suspended
}

// librdkafka before 2.3.0 aborts the process when it destroys a consumer that joined its
// group with the cooperative-sticky assignor but has no assignment yet (its issue 4312).
// The member's SyncGroup is answered late: the member is closed, destroyed, or left with
// its execution context in between.
TEST_CASE("shutdown: a cooperative-sticky member ended before its first assignment never aborts") {
    // never_assigned: SyncGroup is answered after session.timeout.ms (6 s here), so the close
    // stops waiting and keeps the client.
    enum class ending { close, destroy, context_gone, never_assigned };
    kcoro::mock_cluster cluster(1);
    fill_topic(cluster, "first-join", 10, 2);
    for (const ending how : {ending::close, ending::destroy, ending::context_gone, ending::never_assigned}) {
        CAPTURE(static_cast<int>(how));
        const auto delay = how == ending::never_assigned ? 20s : 2s;
        cluster.push_broker_responses(1, kcoro::kafka_api::sync_group, {{.delay = delay}});
        expect_no_hang("ending a joining member", [&] {
            asio::io_context io;
            auto config = consumer_config(cluster, fmt::format("first-join-{}", static_cast<int>(how)));
            config.set("partition.assignment.strategy", "cooperative-sticky");
            bool assigned = false;
            kcoro::consumer_options options{.on_rebalance = [&](kcoro::rebalance_event e) -> asio::awaitable<void> {
                if (e.type == kcoro::rebalance_event::kind::assigned) assigned = true;
                co_return;
            }};
            auto consumer = std::make_unique<kcoro::consumer>(io, config, std::move(options));
            consumer->subscribe({"first-join"});
            bool closed = false;
            run_bounded(io, [&]() -> asio::awaitable<void> {
                // JoinGroup answered: the member's SyncGroup took the delayed response.
                while (cluster.pending_broker_responses(1, kcoro::kafka_api::sync_group) != 0)
                    co_await sleep_for(10ms);
                CHECK(consumer->assignment().empty());
                if (how == ending::destroy || how == ending::context_gone) co_return;
                co_await consumer->close(); // waits for the assignment (or gives up), then leaves
                closed = true;
            }, 60s);
            CHECK(closed == (how == ending::close || how == ending::never_assigned));
            // The close waited for the assignment (the hook saw it) before leaving.
            CHECK(assigned == (how == ending::close));
            consumer.reset();
            if (how == ending::context_gone) return; // librdkafka's client is kept, not destroyed
            io.restart();
            io.run(); // until the destroyed consumer's background close and destroy are done
        });
    }
}
