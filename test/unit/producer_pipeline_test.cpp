// send_batch, enqueue + delivery, backpressure, fail-fast, cancellation, close.
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;

namespace {

kcoro::config test_config(const kcoro::mock_cluster& cluster) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()}, {"linger.ms", "5"}, {"log_level", "3"}};
}

std::vector<kcoro::record> numbered(const std::string& topic, int n, int partitions = 0) {
    std::vector<kcoro::record> rs;
    for (int i = 0; i < n; ++i) {
        kcoro::record r{.topic = topic, .value = fmt::format("{}", i)};
        if (partitions) r.partition = i % partitions;
        rs.push_back(std::move(r));
    }
    return rs;
}

// Per partition, offsets must grow in the order the records were sent.
void check_order(const std::vector<kcoro::delivery_report>& reports) {
    std::map<std::int32_t, std::int64_t> last;
    for (const auto& r : reports) {
        REQUIRE_FALSE(r.error);
        auto [it, fresh] = last.try_emplace(r.metadata.partition, r.metadata.offset);
        if (!fresh) {
            CHECK(r.metadata.offset == it->second + 1);
            it->second = r.metadata.offset;
        }
    }
}

} // namespace

TEST_CASE("send_batch delivers a range in order and reports each record") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("batch", 3);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const auto records = numbered("batch", 5000, 3);
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const std::size_t failed = co_await producer.send_batch(records, reports);
        CHECK(failed == 0);
    });
    check_order(reports);
    for (std::size_t i = 0; i < records.size(); ++i) {
        CHECK(reports[i].metadata.topic == "batch");
        CHECK(reports[i].metadata.partition == static_cast<std::int32_t>(i % 3));
    }
    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "batch", 1, 0, 3);
    CHECK(back[0].value == "1");
    CHECK(back[1].value == "4");
    CHECK(back[2].value == "7");
}

TEST_CASE("send_batch says which records failed and why; the others are delivered") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("mixed", 2);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("message.max.bytes", "10000");
    kcoro::producer producer(io, cfg);
    std::vector<kcoro::record_view> records;
    const std::string big(20000, 'x');
    records.emplace_back("mixed", "ok-0");
    records.emplace_back("mixed", big); // oversized
    records.emplace_back("mixed", "ok-2");
    records.back().partition = 1;
    records.emplace_back("mixed", "bad-partition");
    records.back().partition = 9;
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Let the producer learn the partition count, so partition 9 is known to be invalid.
        // (Named records: GCC 12 mishandles temporaries inside co_await expressions.)
        const kcoro::record warm_up{.topic = "mixed", .partition = 0, .value = "warm-up"};
        co_await producer.send(warm_up);
        auto [ec, failed] = co_await producer.send_batch(records, reports, asio::as_tuple(asio::deferred));
        CHECK(failed == 2);
        CHECK(ec == kcoro::errc::message_too_large); // the first failure, in range order
        std::size_t n = co_await producer.send_batch(records, reports); // partial failure: no throw
        CHECK(n == 2);
    });
    CHECK_FALSE(reports[0].error);
    CHECK(reports[1].error == kcoro::errc::message_too_large);
    CHECK(reports[1].metadata.topic == "mixed");
    CHECK_FALSE(reports[2].error);
    CHECK(reports[2].metadata.partition == 1);
    CHECK(reports[3].error == kcoro::errc::unknown_partition);
    CHECK(reports[3].metadata.partition == 9);
    CHECK(fmt::format("{}", reports[3]).find("mixed/9") == 0);
}

TEST_CASE("send_batch: a size mismatch throws before sending; an empty batch completes") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const auto records = numbered("sizes", 3);
    std::vector<kcoro::delivery_report> reports(2);
    CHECK_THROWS_AS(producer.send_batch(records, reports, [](kcoro::error_code, std::size_t) {}), kcoro::error);
    run_bounded(io, [&]() -> asio::awaitable<void> {
        std::vector<kcoro::record> none;
        CHECK(co_await producer.send_batch(none, std::span<kcoro::delivery_report>{}) == 0);
    });
}

TEST_CASE("every record failing makes the awaitable send_batch throw") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const auto records = numbered("closed-batch", 4);
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.close();
        try {
            co_await producer.send_batch(records, reports);
            FAIL("send_batch on a closed producer succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::client_closed);
        }
        for (const auto& r : reports) CHECK(r.error == kcoro::errc::client_closed);
    });
}

TEST_CASE("enqueue returns on acceptance; one coroutine keeps thousands in flight") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("enq", 2);
    cluster.set_round_trip_time(1, 50ms);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const auto records = numbered("enq", 4000, 2);
    std::vector<kcoro::delivery_report> reports;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        std::vector<kcoro::delivery> pending;
        for (const auto& r : records) pending.push_back(co_await producer.enqueue(r));
        // With a 50 ms round trip, nothing is delivered yet: all are in flight at once.
        CHECK(producer.in_flight() > 1000);
        for (auto& d : pending) {
            CHECK(d.valid());
            auto [ec, md] = co_await d.async_wait(asio::as_tuple(asio::deferred));
            reports.push_back({ec, md});
        }
        CHECK(pending.front().ready());
        // A finished delivery can be awaited again.
        auto again = co_await pending.front().wait();
        CHECK(again == reports.front().metadata);
    });
    check_order(reports);
}

TEST_CASE("enqueue: failures before acceptance fail the enqueue; dropped deliveries still deliver") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("enq-fail", 1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record warm_up{.topic = "enq-fail", .value = "warm-up"};
        co_await producer.send(warm_up);
        const kcoro::record bad{.topic = "enq-fail", .partition = 5, .value = "x"};
        auto [ec, d] = co_await producer.enqueue(bad, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::unknown_partition);
        CHECK_FALSE(d.valid());
        auto [wec, wmd] = co_await d.async_wait(asio::as_tuple(asio::deferred));
        CHECK(wec == kcoro::errc::invalid_argument);
        try {
            co_await producer.enqueue(bad);
            FAIL("enqueue to a missing partition succeeded");
        } catch (const kcoro::error& e) {
            CHECK(std::string(e.what()).find("partition 5") != std::string::npos);
        }
        const kcoro::record kept{.topic = "enq-fail", .value = "kept"};
        for (int i = 0; i < 10; ++i) {
            kcoro::delivery dropped = co_await producer.enqueue(kept);
        }
        co_await producer.flush(10s);
    });
    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "enq-fail", 0, 0, 11);
    CHECK(back[10].value == "kept");
}

TEST_CASE("a full local queue suspends senders until deliveries free room, in order") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tiny", 1);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("queue.buffering.max.messages", "10");
    kcoro::producer producer(io, cfg);
    const auto records = numbered("tiny", 3000);
    std::vector<kcoro::delivery_report> reports(records.size());
    int single_ok = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        CHECK(co_await producer.send_batch(records, reports) == 0);
        // Plain sends and enqueues wait as well.
        for (int i = 0; i < 200; ++i)
            producer.send(records[static_cast<std::size_t>(i)], [&](kcoro::error_code ec, kcoro::record_metadata) {
                if (!ec) ++single_ok;
            });
        std::vector<kcoro::delivery> ds;
        for (int i = 0; i < 50; ++i) ds.push_back(co_await producer.enqueue(records[0]));
        for (auto& d : ds) co_await d.wait();
        co_await producer.flush(20s);
    });
    check_order(reports);
    CHECK(single_ok == 200);
}

TEST_CASE("a delivery handler that throws leaves io_context::run once; every other record completes") {
    // Both ways reports are completed: straight from the delivery event (nothing waits
    // for room), and collected first while sends wait for room (a tiny local queue).
    for (const bool full_queue : {false, true}) {
        CAPTURE(full_queue);
        kcoro::mock_cluster cluster(1);
        cluster.create_topic("throws", 1);
        asio::io_context io;
        auto cfg = test_config(cluster);
        if (full_queue) cfg.set("queue.buffering.max.messages", "10");
        kcoro::producer producer(io, cfg);
        const auto records = numbered("throws", 300);
        constexpr std::size_t thrower = 150;
        std::vector<std::int64_t> offsets(records.size(), -1);
        std::size_t completed = 0;
        for (std::size_t i = 0; i < records.size(); ++i)
            producer.send(records[i], [&, i](kcoro::error_code ec, kcoro::record_metadata md) {
                REQUIRE_FALSE(ec);
                offsets[i] = md.offset;
                ++completed;
                if (i == thrower) throw std::runtime_error("handler failed");
            });
        int thrown = 0;
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (completed < records.size() && std::chrono::steady_clock::now() < deadline) {
            try {
                io.run_for(100ms);
            } catch (const std::runtime_error& e) {
                CHECK(std::string(e.what()) == "handler failed");
                ++thrown;
            }
        }
        CHECK(thrown == 1);
        REQUIRE(completed == records.size());
        for (std::size_t i = 0; i < records.size(); ++i) CHECK(offsets[i] == static_cast<std::int64_t>(i));
    }
}

TEST_CASE("fail-fast mode completes with queue_full instead of waiting") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("fast", 1);
    cluster.set_round_trip_time(1, 200ms);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("queue.buffering.max.messages", "10");
    kcoro::producer producer(io, cfg, {.when_queue_full = kcoro::full_queue::fail_fast});
    const auto records = numbered("fast", 100);
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto [ec, failed] = co_await producer.send_batch(records, reports, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::queue_full);
        CHECK(failed == 90);
        auto [eec, d] = co_await producer.enqueue(records[0], asio::as_tuple(asio::deferred));
        CHECK((eec == kcoro::errc::queue_full || !eec));
    });
    for (std::size_t i = 0; i < 10; ++i) CHECK_FALSE(reports[i].error);
    for (std::size_t i = 10; i < 100; ++i) CHECK(reports[i].error == kcoro::errc::queue_full);
    CHECK(kcoro::is_retriable(reports[50].error));
}

TEST_CASE("cancelling a send that waits for room: it is never sent") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("cancel-before", 1);
    cluster.set_round_trip_time(1, 300ms);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("queue.buffering.max.messages", "5");
    kcoro::producer producer(io, cfg);
    const auto records = numbered("cancel-before", 6);
    const kcoro::record marker{.topic = "cancel-before", .value = "cancelled"};
    const kcoro::record after{.topic = "cancel-before", .value = "after"};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        int ok = 0;
        for (int i = 0; i < 5; ++i)
            producer.send(records[static_cast<std::size_t>(i)], [&](kcoro::error_code ec, kcoro::record_metadata) {
                if (!ec) ++ok;
            });
        asio::cancellation_signal signal;
        kcoro::error_code cancelled_ec;
        bool cancelled_done = false;
        producer.send(marker, asio::bind_cancellation_slot(signal.slot(), [&](kcoro::error_code ec, kcoro::record_metadata) {
                          cancelled_ec = ec;
                          cancelled_done = true;
                      }));
        // The same for a waiting enqueue and a waiting batch.
        asio::cancellation_signal enqueue_signal, batch_signal;
        kcoro::error_code enqueue_ec, batch_ec;
        producer.enqueue(marker, asio::bind_cancellation_slot(enqueue_signal.slot(),
                                                              [&](kcoro::error_code ec, kcoro::delivery) { enqueue_ec = ec; }));
        std::vector<kcoro::record> more(3, marker);
        std::vector<kcoro::delivery_report> reports(3);
        producer.send_batch(more, reports, asio::bind_cancellation_slot(batch_signal.slot(), [&](kcoro::error_code ec, std::size_t) {
                                batch_ec = ec;
                            }));
        signal.emit(asio::cancellation_type::terminal);
        enqueue_signal.emit(asio::cancellation_type::terminal);
        batch_signal.emit(asio::cancellation_type::terminal);
        co_await producer.send(after);
        CHECK(cancelled_done);
        CHECK(cancelled_ec == asio::error::operation_aborted);
        CHECK(enqueue_ec == asio::error::operation_aborted);
        CHECK(batch_ec == asio::error::operation_aborted);
        for (const auto& r : reports) CHECK(r.error == asio::error::operation_aborted);
        CHECK(ok == 5);
    });
    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "cancel-before", 0, 0, 6);
    for (const auto& m : back) CHECK(m.value != "cancelled");
    CHECK(back[5].value == "after");
}

TEST_CASE("cancelling a send after enqueue ends the wait; the record is still delivered") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("cancel-after", 1);
    cluster.set_round_trip_time(1, 300ms);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const kcoro::record r{.topic = "cancel-after", .value = "still-sent"};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        asio::cancellation_signal signal;
        kcoro::error_code got;
        producer.send(r, asio::bind_cancellation_slot(signal.slot(), [&](kcoro::error_code ec, kcoro::record_metadata) { got = ec; }));
        signal.emit(asio::cancellation_type::terminal);
        asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
        co_await t.async_wait(asio::deferred);
        CHECK(got == asio::error::operation_aborted);
        // A delivery's wait, cancelled, ends too, and a later wait sees the outcome.
        kcoro::delivery d = co_await producer.enqueue(r);
        asio::cancellation_signal wait_signal;
        kcoro::error_code wait_ec;
        d.async_wait(asio::bind_cancellation_slot(wait_signal.slot(), [&](kcoro::error_code ec, kcoro::record_metadata) { wait_ec = ec; }));
        wait_signal.emit(asio::cancellation_type::terminal);
        auto md = co_await d.wait();
        CHECK(wait_ec == asio::error::operation_aborted);
        CHECK(md.offset == 1);
        co_await producer.flush(10s);
    });
    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "cancel-after", 0, 0, 2);
    CHECK(back[0].value == "still-sent");
}

TEST_CASE("close(deadline) completes every outstanding operation") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("close-all", 1);
    cluster.broker_down(1); // nothing can be delivered
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("queue.buffering.max.messages", "5");
    kcoro::producer producer(io, cfg, {.on_error = [](const kcoro::client_error&) {}});
    const auto records = numbered("close-all", 20);
    std::vector<kcoro::delivery_report> reports(records.size());
    int completed = 0, batch_done = 0, enqueue_done = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (const auto& r : records)
            producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) {
                CHECK(ec);
                ++completed;
            });
        producer.send_batch(records, reports, [&](kcoro::error_code ec, std::size_t failed) {
            CHECK(ec);
            CHECK(failed == 20);
            ++batch_done;
        });
        producer.enqueue(records[0], [&](kcoro::error_code ec, kcoro::delivery) {
            CHECK(ec == asio::error::operation_aborted);
            ++enqueue_done;
        });
        auto [ec] = co_await producer.close(300ms, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::timed_out);
        asio::steady_timer t(co_await asio::this_coro::executor, 50ms);
        co_await t.async_wait(asio::deferred);
    }, 30s);
    CHECK(completed == 20);
    CHECK(batch_done == 1);
    CHECK(enqueue_done == 1);
}

TEST_CASE("destroying a producer with batches and deliveries in flight neither hangs nor leaks") {
    kcoro::mock_cluster cluster(1);
    cluster.set_round_trip_time(1, 2000ms);
    asio::io_context io;
    const auto records = numbered("doomed-batch", 100);
    std::vector<kcoro::delivery_report> reports(records.size());
    int batch_done = 0;
    kcoro::delivery survivor;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::producer producer(io, test_config(cluster));
        survivor = co_await producer.enqueue(records[0]);
        producer.send_batch(records, reports, [&](kcoro::error_code, std::size_t) { ++batch_done; });
    });
    io.run_for(5s); // the background close finishes on its own
    io.restart();   // run_for stopped the context when it ran out of work
    CHECK(batch_done == 1);
    CHECK(survivor.ready());
    // The delivery outlives its producer and still completes.
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto [ec, md] = co_await survivor.async_wait(asio::as_tuple(asio::deferred));
        CHECK(ec);
    });
}

TEST_CASE("an undeliverable record fails with message_timed_out after delivery.timeout.ms") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("timeout", 1);
    cluster.broker_down(1);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("delivery.timeout.ms", "500");
    kcoro::producer producer(io, cfg, {.on_error = [](const kcoro::client_error&) {}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record r{.topic = "timeout", .value = "lost"};
        auto [ec, md] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::message_timed_out);
        CHECK(md.topic == "timeout");
        CHECK(kcoro::is_retriable(ec));
    });
}

TEST_CASE("close(deadline) under load completes every one of thousands of sends") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("close-load", 8);
    cluster.set_round_trip_time(1, 1000ms);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("batch.num.messages", "10"); // many small batches, so many delivery events
    kcoro::producer producer(io, cfg);
    const auto records = numbered("close-load", 20000, 8);
    int completed = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (const auto& r : records)
            producer.send(r, [&](kcoro::error_code, kcoro::record_metadata) { ++completed; });
        auto [ec] = co_await producer.close(200ms, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::timed_out);
        asio::steady_timer t(co_await asio::this_coro::executor, 100ms);
        co_await t.async_wait(asio::deferred);
    }, 60s);
    CHECK(completed == 20000);
}
