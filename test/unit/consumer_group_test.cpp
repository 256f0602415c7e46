// Consumer: rebalances (eager and cooperative), groups, cancellation, close, positions,
// completion tokens. On the mock cluster.
#include "consumer_test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

namespace {

std::vector<kcoro::topic_partition> sorted(std::vector<kcoro::topic_partition> v) {
    std::sort(v.begin(), v.end());
    return v;
}

struct observed_rebalance {
    kcoro::rebalance_event::kind type;
    std::vector<kcoro::topic_partition> partitions;
    bool cooperative;
    bool on_io_thread;
    std::vector<kcoro::topic_partition> assignment_during_hook;
};

// A hook that records what it sees; on revocation it commits (what the library promises
// is possible before the partitions go).
struct recorder {
    std::vector<observed_rebalance> events;
    std::thread::id io_thread;
    kcoro::consumer* consumer = nullptr;
    int commits_in_revoke = 0;
    std::vector<kcoro::error_code> revoke_commit_results;

    kcoro::rebalance_hook hook() {
        return [this](kcoro::rebalance_event e) -> asio::awaitable<void> {
            observed_rebalance o{e.type, e.partitions, e.cooperative, std::this_thread::get_id() == io_thread,
                                 consumer ? consumer->assignment() : std::vector<kcoro::topic_partition>{}};
            std::sort(o.partitions.begin(), o.partitions.end());
            std::sort(o.assignment_during_hook.begin(), o.assignment_during_hook.end());
            if (e.type == kcoro::rebalance_event::kind::revoked && consumer) {
                // The mock cluster refuses commits while the group rebalances (a real broker
                // accepts them from the current generation): the integration test checks
                // success; here, that the commit completes before the revocation does.
                auto [ec] = co_await consumer->commit(asio::as_tuple(asio::deferred));
                revoke_commit_results.push_back(ec);
                o.assignment_during_hook = sorted(consumer->assignment());
                ++commits_in_revoke;
            }
            events.push_back(std::move(o));
        };
    }
    std::size_t count(kcoro::rebalance_event::kind k) const {
        return static_cast<std::size_t>(
            std::count_if(events.begin(), events.end(), [&](const auto& e) { return e.type == k; }));
    }
};

// Keeps a consumer receiving in the background (so its group membership makes progress),
// recording what it got.
struct background_reader {
    std::vector<kcoro::partition_offset> got;
    bool stopped = false;
    asio::cancellation_signal stop;
};

asio::awaitable<void> read_into(kcoro::consumer& c, background_reader& r) {
    std::vector<kcoro::message> batch;
    for (;;) {
        auto [ec, b] = co_await c.receive_batch(
            100, 50ms, std::move(batch), asio::bind_cancellation_slot(r.stop.slot(), asio::as_tuple(asio::use_awaitable)));
        if (ec) break;
        for (const auto& m : b) r.got.push_back({std::string(m.topic()), m.partition(), m.offset()});
        batch = std::move(b);
    }
    batch.clear();
    r.stopped = true;
}

void rebalance_two_members(bool cooperative) {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("rb", 4);
    produce_sync(cluster, "rb", 40);
    asio::io_context io;
    recorder ra, rb;
    ra.io_thread = rb.io_thread = std::this_thread::get_id();
    auto conf = consumer_config(cluster, cooperative ? "rb-coop" : "rb-eager");
    if (cooperative) conf.set("partition.assignment.strategy", "cooperative-sticky");
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer a(io, conf, {.on_rebalance = ra.hook()});
        ra.consumer = &a;
        a.subscribe(topics({"rb"}));
        background_reader reader_a;
        asio::co_spawn(io, read_into(a, reader_a), asio::detached);
        co_await wait_until([&] { return a.assignment().size() == 4 && !ra.events.empty(); });
        REQUIRE(ra.events.size() == 1);
        CHECK(ra.events[0].type == kcoro::rebalance_event::kind::assigned);
        CHECK(ra.events[0].partitions == parts({{"rb", 0}, {"rb", 1}, {"rb", 2}, {"rb", 3}}));
        CHECK(ra.events[0].cooperative == cooperative);
        CHECK(ra.events[0].on_io_thread);
        // "assigned": the library assigned before the hook ran.
        CHECK(ra.events[0].assignment_during_hook == ra.events[0].partitions);

        kcoro::consumer b(io, conf, {.on_rebalance = rb.hook()});
        rb.consumer = &b;
        b.subscribe(topics({"rb"}));
        background_reader reader_b;
        asio::co_spawn(io, read_into(b, reader_b), asio::detached);
        co_await wait_until([&] { return a.assignment().size() == 2 && b.assignment().size() == 2; });
        // The two members split the partitions.
        auto all = a.assignment();
        for (auto& p : b.assignment()) all.push_back(p);
        CHECK(sorted(all) == parts({{"rb", 0}, {"rb", 1}, {"rb", 2}, {"rb", 3}}));

        REQUIRE(ra.count(kcoro::rebalance_event::kind::revoked) >= 1);
        const auto& revoke =
            *std::find_if(ra.events.begin(), ra.events.end(),
                          [](const auto& e) { return e.type == kcoro::rebalance_event::kind::revoked; });
        CHECK(revoke.on_io_thread);
        CHECK(revoke.cooperative == cooperative);
        // Still assigned while the hook runs, and the hook's commit succeeded.
        CHECK(revoke.assignment_during_hook == parts({{"rb", 0}, {"rb", 1}, {"rb", 2}, {"rb", 3}}));
        CHECK(ra.commits_in_revoke >= 1);
        for (auto ec : ra.revoke_commit_results)
            CHECK((!ec || ec == kcoro::errc::rebalance_in_progress || ec == kcoro::errc::illegal_generation));
        if (cooperative) {
            // Incremental: only the two partitions that moved were revoked, A kept the rest.
            CHECK(revoke.partitions.size() == 2);
            CHECK(ra.count(kcoro::rebalance_event::kind::assigned) == 1);
        } else {
            // Eager: everything was revoked, then A got its share back.
            CHECK(revoke.partitions.size() == 4);
            CHECK(ra.count(kcoro::rebalance_event::kind::assigned) >= 2);
            CHECK(ra.events.back().partitions == sorted(a.assignment()));
        }
        for (const auto& e : rb.events) CHECK(e.on_io_thread);
        REQUIRE_FALSE(rb.events.empty());
        CHECK(rb.events.back().type == kcoro::rebalance_event::kind::assigned);
        CHECK(rb.events.back().partitions == sorted(b.assignment()));

        // Every record was read by the group. (Some may be read twice here: the mock cluster
        // refuses the commits made during the rebalance; the three-member test and the
        // integration tests check "once".)
        std::set<std::pair<int, std::int64_t>> seen;
        co_await wait_until([&] {
            for (const auto* r : {&reader_a, &reader_b})
                for (const auto& po : r->got) seen.insert({po.partition, po.offset});
            return seen.size() >= 40;
        });
        CHECK(seen.size() == 40);

        // close() runs the final revocation through the hook too.
        const auto revokes_before = rb.count(kcoro::rebalance_event::kind::revoked);
        co_await b.close();
        CHECK(rb.count(kcoro::rebalance_event::kind::revoked) == revokes_before + 1);
        co_await wait_until([&] { return reader_b.stopped; });
        // A takes everything again.
        co_await wait_until([&] { return a.assignment().size() == 4; });
        co_await a.close();
        co_await wait_until([&] { return reader_a.stopped; });
    });
}

} // namespace

TEST_CASE("consumer group: eager rebalance delivered on the executor, commit before revocation") {
    rebalance_two_members(false);
}

TEST_CASE("consumer group: cooperative-sticky rebalance is incremental") { rebalance_two_members(true); }

TEST_CASE("consumer group: three members share partitions, each record once; a member leaves") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("trio", 6);
    asio::io_context io;
    auto conf = consumer_config(cluster, "trio-group");
    conf.set("enable.auto.commit", "false");
    auto total = [](auto& readers) {
        std::size_t n = 0;
        for (auto& r : readers) n += r->got.size();
        return n;
    };
    run_bounded(io, [&]() -> asio::awaitable<void> {
        std::vector<std::unique_ptr<kcoro::consumer>> members;
        std::vector<std::unique_ptr<background_reader>> readers;
        for (int i = 0; i < 3; ++i) {
            members.push_back(std::make_unique<kcoro::consumer>(io, conf));
            members.back()->subscribe(topics({"trio"}));
            readers.push_back(std::make_unique<background_reader>());
            asio::co_spawn(io, read_into(*members.back(), *readers.back()), asio::detached);
        }
        // All three take part: 2 partitions each.
        co_await wait_until([&] {
            return std::all_of(members.begin(), members.end(), [](auto& m) { return m->assignment().size() == 2; });
        });
        const std::string trio = "trio";
        co_await produce(cluster, trio, 300);
        co_await wait_until([&] { return total(readers) >= 300; });
        for (auto& m : members) co_await m->commit(); // the group is stable: commits succeed
        std::set<std::int32_t> leaving_parts;
        for (auto& p : members[2]->assignment()) leaving_parts.insert(p.partition);
        std::vector<kcoro::partition_offset> partial;
        // The third member leaves; its partitions go to the others, which go on from
        // what the group committed.
        co_await members[2]->close();
        co_await wait_until([&] { return readers[2]->stopped; });
        co_await wait_until([&] { return members[0]->assignment().size() + members[1]->assignment().size() == 6; });
        co_await produce(cluster, trio, 300, std::nullopt, 300);
        co_await wait_until([&] { return total(readers) >= 600; });
        // A little longer: duplicates, if any, would arrive now.
        asio::steady_timer settle(io, 500ms);
        co_await settle.async_wait(asio::use_awaitable);
        std::set<std::pair<int, std::int64_t>> seen;
        std::size_t dupes = 0;
        for (auto& r : readers)
            for (const auto& po : r->got) dupes += seen.insert({po.partition, po.offset}).second ? 0 : 1;
        CHECK(dupes == 0);
        CHECK(seen.size() == 600);
        for (auto& r : readers) CHECK_FALSE(r->got.empty());
        // The leaver's partitions were read on by the remaining members.
        std::size_t taken_over = 0;
        for (int i = 0; i < 2; ++i)
            for (const auto& po : readers[static_cast<std::size_t>(i)]->got)
                taken_over += leaving_parts.count(po.partition);
        CHECK(taken_over > 0);
        co_await members[0]->close();
        co_await members[1]->close();
        co_await wait_until([&] { return readers[0]->stopped && readers[1]->stopped; });
    });
}

TEST_CASE("consumer: close completes pending receives with operation_aborted; later calls fail") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("close", 1);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "close-group"));
        consumer.assign(offs({{"close", 0, kcoro::offsets::beginning}}));
        std::vector<kcoro::error_code> results;
        for (int i = 0; i < 3; ++i)
            consumer.receive([&](kcoro::error_code ec, kcoro::message) { results.push_back(ec); });
        consumer.receive_batch(10, 60s, {}, [&](kcoro::error_code ec, std::vector<kcoro::message>) {
            results.push_back(ec);
        });
        co_await consumer.close();
        co_await wait_until([&] { return results.size() == 4; });
        for (auto ec : results) CHECK(ec == asio::error::operation_aborted);
        auto [ec, m] = co_await consumer.receive(asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::client_closed);
        CHECK_THROWS_AS(consumer.assign(offs({{"close", 0, 0}})), kcoro::error);
        auto [cec] = co_await consumer.commit(asio::as_tuple(asio::deferred));
        CHECK(cec == kcoro::errc::client_closed);
        co_await consumer.close(); // twice is harmless
    });
}

TEST_CASE("consumer: cancelling one receive leaves the others; a cancelled batch loses nothing") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("cancel", 1);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "cancel-group"));
        consumer.assign(offs({{"cancel", 0, kcoro::offsets::beginning}}));
        asio::cancellation_signal sig1;
        std::optional<kcoro::error_code> r1, r2;
        std::int64_t r2_offset = -1;
        consumer.receive(asio::bind_cancellation_slot(sig1.slot(), [&](kcoro::error_code ec, kcoro::message) {
            r1 = ec;
        }));
        consumer.receive([&](kcoro::error_code ec, kcoro::message m) {
            r2 = ec;
            if (m) r2_offset = m.offset();
        });
        sig1.emit(asio::cancellation_type::terminal);
        co_await wait_until([&] { return r1.has_value(); });
        CHECK(*r1 == asio::error::operation_aborted);
        CHECK_FALSE(r2.has_value());
        const std::string cancel_topic = "cancel";
        co_await produce(cluster, cancel_topic, 5, 0);
        co_await wait_until([&] { return r2.has_value(); });
        CHECK_FALSE(*r2);
        CHECK(r2_offset == 0); // the cancelled receive took nothing

        // A batch that collected some messages, then is cancelled: they come back in order.
        asio::cancellation_signal sig2;
        std::optional<kcoro::error_code> rb;
        consumer.receive_batch(100, 60s, {},
                               asio::bind_cancellation_slot(sig2.slot(), [&](kcoro::error_code ec,
                                                                             std::vector<kcoro::message> b) {
                                   rb = ec;
                                   CHECK(b.empty());
                               }));
        co_await wait_until([&] { return consumer.lag(kcoro::topic_partition{"cancel", 0}).value_or(-1) == 4; });
        asio::steady_timer settle(io, 300ms); // lets the batch collect the 4 fetched messages
        co_await settle.async_wait(asio::use_awaitable);
        sig2.emit(asio::cancellation_type::total);
        co_await wait_until([&] { return rb.has_value(); });
        CHECK(*rb == asio::error::operation_aborted);
        auto rest = co_await consumer.receive_batch(10, 2s);
        REQUIRE(rest.size() == 4);
        for (std::size_t i = 0; i < rest.size(); ++i) CHECK(rest[i].offset() == static_cast<std::int64_t>(i + 1));
        rest.clear();
        co_await consumer.close();
    });
}

TEST_CASE("consumer: a receive whose message is buffered completes after the call; a context destroyed first frees it") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("ready", 1);
    produce_sync(cluster, "ready", 5, 0);
    auto conf = consumer_config(cluster, "ready-group");
    conf.set("enable.auto.commit", "false");
    const auto alive = std::make_shared<int>(0); // held by the handlers below
    bool invoked = false;
    {
        asio::io_context io;
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"ready", 0, kcoro::offsets::beginning}}));
        run_bounded(io, [&]() -> asio::awaitable<void> {
            auto first = co_await consumer.receive();
            CHECK(first.offset() == 0);
            // The rest of the fetch reaches the local buffer.
            co_await wait_until([&] { return consumer.lag(kcoro::topic_partition{"ready", 0}).value_or(-1) == 4; });
            asio::steady_timer settle(io, 300ms);
            co_await settle.async_wait(asio::use_awaitable);
        });

        // Ready at once, yet never run inside the initiating call (Asio's rule), and run
        // once the context runs.
        std::optional<std::int64_t> got;
        consumer.receive([&, keep = alive](kcoro::error_code ec, kcoro::message m) {
            REQUIRE_FALSE(ec);
            got = m.offset();
        });
        CHECK_FALSE(got.has_value());
        io.restart();
        for (int i = 0; i < 100 && !got; ++i) io.run_one_for(50ms);
        REQUIRE(got.has_value());
        CHECK(*got == 1);
        CHECK(alive.use_count() == 1);

        // Ready at once again, but the context never runs: destroyed with the consumer,
        // the handler is freed, not invoked.
        consumer.receive([&invoked, keep = alive](kcoro::error_code, kcoro::message) { invoked = true; });
        CHECK(alive.use_count() == 2);
    }
    CHECK_FALSE(invoked);
    CHECK(alive.use_count() == 1);
}

namespace {

// Reads `total` records of `topic` (all its partitions assigned from the beginning) on
// `executor`, half with receive() and half with receive_batch(), and checks that every
// partition's records came once each, in order.
template <class Executor>
void read_all_on(const Executor& executor, const kcoro::mock_cluster& cluster, const std::string& topic,
                 int partitions, int total) {
    auto conf = consumer_config(cluster, topic + "-group");
    conf.set("enable.auto.commit", "false");
    std::vector<kcoro::partition_offset> assignment;
    for (int p = 0; p < partitions; ++p) assignment.push_back({topic, p, kcoro::offsets::beginning});
    std::map<std::int32_t, std::vector<std::int64_t>> seen;
    auto reading = asio::co_spawn(executor, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(co_await asio::this_coro::executor, conf);
        consumer.assign(assignment);
        int got = 0;
        while (got < total / 2) {
            kcoro::message m = co_await consumer.receive();
            seen[m.partition()].push_back(m.offset());
            ++got;
        }
        std::vector<kcoro::message> batch;
        while (got < total) {
            batch = co_await consumer.receive_batch(7, 5s, std::move(batch));
            for (const auto& m : batch) seen[m.partition()].push_back(m.offset());
            got += static_cast<int>(batch.size());
        }
        batch.clear();
        co_await consumer.close();
    }, asio::use_future);
    REQUIRE(reading.wait_for(60s) == std::future_status::ready);
    reading.get();
    REQUIRE(seen.size() == static_cast<std::size_t>(partitions));
    for (const auto& [partition, offsets] : seen) {
        INFO("partition " << partition);
        REQUIRE(offsets.size() == static_cast<std::size_t>(total / partitions));
        for (std::size_t i = 0; i < offsets.size(); ++i) CHECK(offsets[i] == static_cast<std::int64_t>(i));
    }
}

} // namespace

TEST_CASE("consumer: on a thread pool and on an io_context run by two threads, every record comes once, in order") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("threads", 3);
    produce_batch_sync(cluster, "threads", 600, 3);
    SUBCASE("thread_pool") {
        // Not an io_context: the generic strand, and completions posted through the executor.
        asio::thread_pool pool(2);
        read_all_on(pool.get_executor(), cluster, "threads", 3, 600);
        pool.join();
    }
    SUBCASE("io_context run by two threads") {
        asio::io_context io;
        auto work = asio::make_work_guard(io);
        std::thread a([&] { io.run(); }), b([&] { io.run(); });
        read_all_on(io.get_executor(), cluster, "threads", 3, 600);
        work.reset();
        a.join();
        b.join();
    }
}

TEST_CASE("consumer: position, lag, seek, pause/resume, watermarks") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("pos", 1);
    produce_sync(cluster, "pos", 10, 0);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "pos-group");
        conf.set("enable.auto.commit", "false");
        kcoro::consumer consumer(io, conf);
        const kcoro::topic_partition tp{"pos", 0};
        const std::vector<kcoro::topic_partition> tps{tp};
        consumer.assign(offs({{"pos", 0, kcoro::offsets::beginning}}));
        CHECK(consumer.position(tps)[0].offset == kcoro::offsets::invalid);
        for (int i = 0; i < 3; ++i) (void)co_await consumer.receive();
        // Let the fetcher run ahead into the local buffer: position and lag still count
        // only what the application received.
        co_await wait_until([&] { return consumer.lag(tp).has_value(); });
        asio::steady_timer t(io, 200ms);
        co_await t.async_wait(asio::use_awaitable);
        CHECK(consumer.position(tps)[0].offset == 3);
        CHECK(consumer.lag(tp) == 7);
        // And commit() commits that position, not what was fetched.
        co_await consumer.commit();
        auto c = co_await consumer.committed(tps, 5s);
        CHECK(c[0].offset == 3);

        const auto w = co_await consumer.watermark_offsets(tp, 5s);
        CHECK(w.low == 0);
        CHECK(w.high == 10);

        consumer.seek({"pos", 0, 8});
        kcoro::message m = co_await consumer.receive();
        CHECK(m.offset() == 8);
        CHECK(consumer.position(tps)[0].offset == 9);

        // Paused: nothing arrives, even after a seek back; resumed: it goes on from there.
        consumer.pause(tps);
        consumer.seek({"pos", 0, 2});
        auto none = co_await consumer.receive_batch(10, 500ms);
        CHECK(none.empty());
        consumer.resume(tps);
        m = co_await consumer.receive();
        CHECK(m.offset() == 2);
        m = {};

        // A partition not assigned: typed error.
        CHECK_THROWS_AS(consumer.seek({"pos", 5, 0}), kcoro::error);
        co_await consumer.close();
    });
}

// A handler runs while the drain that completed it still holds messages of the same fetch:
// a seek (or an assignment) it makes must drop those too, for batches as for single receives.
TEST_CASE("consumer: a seek made as a receive completes drops what was fetched before it") {
    constexpr int count = 3000;
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("seek-now", 1);
    produce_batch_sync(cluster, "seek-now", count);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "seek-now-group");
        conf.set("enable.auto.commit", "false");
        kcoro::consumer consumer(io, conf);
        const std::vector<kcoro::topic_partition> tps{{"seek-now", 0}};
        consumer.assign(offs({{"seek-now", 0, kcoro::offsets::beginning}}));
        // Batches: each seek goes back to 0, so every batch must start there.
        for (int round = 0; round < 3; ++round) {
            auto batch = co_await consumer.receive_batch(100, 10s);
            REQUIRE_FALSE(batch.empty());
            CHECK(batch.front().offset() == 0);
            consumer.seek({"seek-now", 0, 0});
            CHECK(consumer.position(tps)[0].offset == 0);
        }
        // Single receives: the same.
        for (int round = 0; round < 3; ++round) {
            kcoro::message m = co_await consumer.receive();
            CHECK(m.offset() == 0);
            m = co_await consumer.receive();
            CHECK(m.offset() == 1);
            consumer.seek({"seek-now", 0, 0});
        }
        co_await consumer.close();
    });
}

// Receives completing together at the end of a drain turn: a seek in the first one's
// handler takes back what the others were given (they wait again, in order).
TEST_CASE("consumer: a seek in one handler drops what receives completing with it were given") {
    constexpr int count = 3000;
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("seek-ready", 1);
    produce_batch_sync(cluster, "seek-ready", count);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "seek-ready-group");
        conf.set("enable.auto.commit", "false");
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"seek-ready", 0, kcoro::offsets::beginning}}));
        std::vector<std::int64_t> firsts;
        const auto seek_to_start = [&] { consumer.seek({"seek-ready", 0, 0}); };
        consumer.receive_batch(100, 10s, {}, [&](kcoro::error_code ec, std::vector<kcoro::message> b) {
            CHECK_FALSE(ec);
            firsts.push_back(b.empty() ? -1 : b.front().offset());
            seek_to_start();
        });
        consumer.receive_batch(100, 10s, {}, [&](kcoro::error_code ec, std::vector<kcoro::message> b) {
            CHECK_FALSE(ec);
            firsts.push_back(b.empty() ? -1 : b.front().offset());
        });
        co_await wait_until([&] { return firsts.size() == 2; });
        CHECK(firsts == std::vector<std::int64_t>{0, 0});

        firsts.clear();
        seek_to_start();
        consumer.receive([&](kcoro::error_code ec, kcoro::message m) {
            CHECK_FALSE(ec);
            firsts.push_back(m ? m.offset() : -1);
            seek_to_start();
        });
        consumer.receive([&](kcoro::error_code ec, kcoro::message m) {
            CHECK_FALSE(ec);
            firsts.push_back(m ? m.offset() : -1);
        });
        co_await wait_until([&] { return firsts.size() == 2; });
        CHECK(firsts == std::vector<std::int64_t>{0, 0});
        co_await consumer.close();
    });
}

// Pausing and resuming, often, while both partitions' records stream: nothing is lost or
// repeated. (librdkafka before 2.1.0 loses records when a partition is paused while a batch
// of its messages is being taken: a drain that takes batches has to guard against that.)
TEST_CASE("consumer: pausing and resuming while records stream loses and repeats nothing") {
    constexpr int count = 30'000;
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("pr", 2);
    produce_batch_sync(cluster, "pr", count, 2);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto conf = consumer_config(cluster, "pr-group");
        conf.set("enable.auto.commit", "false");
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"pr", 0, kcoro::offsets::beginning}, {"pr", 1, kcoro::offsets::beginning}}));
        const auto both = parts({{"pr", 0}, {"pr", 1}});
        std::int64_t next[2] = {0, 0};
        int received = 0, gaps = 0, repeats = 0, pauses = 0;
        asio::steady_timer pause_for(io);
        // Until both partitions' last records arrived: a gap shows as too few received.
        while (next[0] < count / 2 || next[1] < count / 2) {
            kcoro::message m = co_await consumer.receive();
            const std::int32_t p = m.partition();
            if (m.offset() > next[p]) ++gaps;
            if (m.offset() < next[p]) ++repeats;
            next[p] = m.offset() + 1;
            ++received;
            // Often, while librdkafka's queue still holds fetched records of both partitions.
            if (received % 97 == 0) {
                consumer.pause(both);
                ++pauses;
                pause_for.expires_after(std::chrono::microseconds(200 * (pauses % 5)));
                co_await pause_for.async_wait(asio::use_awaitable);
                consumer.resume(both);
            }
        }
        CHECK(gaps == 0);
        CHECK(repeats == 0);
        CHECK(received == count);
        co_await consumer.close();
    });
}

TEST_CASE("consumer: completion tokens (deferred, as_tuple, use_future, callback)") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tokens", 1);
    produce_sync(cluster, "tokens", 6, 0);
    auto conf = consumer_config(cluster, "tokens-group");
    conf.set("enable.auto.commit", "false");
    asio::io_context io;
    {
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"tokens", 0, kcoro::offsets::beginning}}));
        // use_future from a thread that is not running the executor.
        auto guard = asio::make_work_guard(io);
        std::thread runner([&] { io.run(); });
        kcoro::message m0 = consumer.receive(asio::use_future).get();
        CHECK(m0.offset() == 0);
        auto b = consumer.receive_batch(2, 5s, {}, asio::use_future).get();
        REQUIRE(b.size() == 2);
        CHECK(b[1].offset() == 2);
        const std::vector<kcoro::partition_offset> upto{b[1].next_offset()};
        consumer.commit(upto, asio::use_future).get();
        auto c = consumer.committed(std::vector<kcoro::topic_partition>{{"tokens", 0}}, 5s, asio::use_future).get();
        CHECK(c[0].offset == 3);
        // A callback runs on the consumer's executor (the runner thread).
        std::promise<std::pair<std::int64_t, bool>> got;
        consumer.receive([&](kcoro::error_code ec, kcoro::message m) {
            got.set_value({ec ? -1 : m.offset(), std::this_thread::get_id() == runner.get_id()});
        });
        const auto [offset, on_runner] = got.get_future().get();
        CHECK(offset == 3);
        CHECK(on_runner);
        m0 = {};
        b.clear();
        consumer.close(asio::use_future).get();
        guard.reset();
        io.stop();
        runner.join();
    }
    io.restart();
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, conf);
        consumer.assign(offs({{"tokens", 0, 4}}));
        // deferred: nothing starts until awaited.
        auto op = consumer.receive(asio::deferred);
        auto m = co_await std::move(op);
        CHECK(m.offset() == 4);
        auto [ec, m2] = co_await consumer.receive(asio::as_tuple(asio::deferred));
        CHECK_FALSE(ec);
        CHECK(m2.offset() == 5);
        auto [cec] = co_await consumer.commit(m2, asio::as_tuple(asio::deferred));
        CHECK_FALSE(cec);
        m = {};
        m2 = {};
        co_await consumer.close(asio::deferred);
    });
}

TEST_CASE("consumer: bad configuration is a typed error naming the key") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    auto expect = [&](const kcoro::config& c, kcoro::errc code, const char* key) {
        try {
            kcoro::consumer consumer(io, c);
            FAIL("expected an error for " << key);
        } catch (const kcoro::error& e) {
            CHECK(e.code() == code);
            CHECK(std::string(e.what()).find(key) != std::string::npos);
        }
    };
    auto base = consumer_config(cluster, "cfg");
    expect(kcoro::config(base).set("isolation.level", "read_everything"), kcoro::errc::invalid_config_value,
           "isolation.level");
    expect(kcoro::config(base).set("enable.auto.commit", "maybe"), kcoro::errc::invalid_config_value,
           "enable.auto.commit");
    expect(kcoro::config(base).set("session.timeout.ms", "-5"), kcoro::errc::invalid_config_value,
           "session.timeout.ms");
    expect(kcoro::config(base).set("group.idd", "x"), kcoro::errc::unknown_config_key, "group.idd");
    auto no_group = base;
    no_group.erase("group.id");
    expect(no_group, kcoro::errc::invalid_config_value, "group.id");
    // Good values are accepted.
    kcoro::consumer ok(io, kcoro::config(base)
                               .set("isolation.level", "read_committed")
                               .set("enable.auto.commit", "false")
                               .set("auto.offset.reset", "latest"));
}

TEST_CASE("consumer: subscribe to a pattern") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("pat-a", 1);
    cluster.create_topic("pat-b", 1);
    cluster.create_topic("other", 1);
    produce_sync(cluster, "pat-a", 2, 0);
    produce_sync(cluster, "pat-b", 2, 0);
    produce_sync(cluster, "other", 2, 0);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, consumer_config(cluster, "pattern-group"));
        consumer.subscribe(topics({"^pat-.*"}));
        std::map<std::string, int> per_topic;
        for (int i = 0; i < 4; ++i) {
            auto m = co_await consumer.receive();
            ++per_topic[std::string(m.topic())];
        }
        CHECK(per_topic["pat-a"] == 2);
        CHECK(per_topic["pat-b"] == 2);
        auto extra = co_await consumer.receive_batch(10, 300ms);
        CHECK(extra.empty()); // "other" never matched
        co_await consumer.close();
    });
}
