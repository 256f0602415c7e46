// Transactions on librdkafka's mock cluster: it runs init / begin / send_offsets / commit /
// abort and accepts injected errors, but writes no transaction markers, so what
// read_committed readers see is tested on the real broker (test/integration).
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;

namespace {

constexpr std::int16_t api_end_txn = 26;
constexpr std::int16_t api_add_offsets_to_txn = 25;

kcoro::config txn_config(const kcoro::mock_cluster& cluster, const std::string& id) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()},
            {"transactional.id", id},
            {"transaction.timeout.ms", "10000"},
            {"linger.ms", "5"},
            {"log_level", "2"}};
}

kcoro::record numbered(const std::string& topic, int i) {
    return kcoro::record{.topic = topic, .partition = 0, .key = fmt::format("k{}", i), .value = fmt::format("v{}", i)};
}

// Runs `op` and returns the kcoro::error it throws (fails the test if it throws none).
template <class F>
asio::awaitable<kcoro::error> expect_error(F op) {
    try {
        co_await op();
    } catch (const kcoro::error& e) {
        co_return e;
    }
    throw std::runtime_error("expected a kcoro::error");
}

} // namespace

TEST_CASE("a transaction scope commits what its body sent") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "scope-commit"));
    std::vector<kcoro::record> batch;
    for (int i = 1; i < 4; ++i) batch.push_back(numbered("tx-out", i));
    std::vector<kcoro::delivery_report> reports(batch.size());

    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.init_transactions();
        co_await producer.init_transactions(); // idempotent
        const kcoro::record first = numbered("tx-out", 0);
        co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
            CHECK(tx.active());
            const kcoro::record_metadata md = co_await tx.send(first);
            CHECK(md.offset >= 0);
            co_await tx.send_batch(batch, reports);
        });
        co_await producer.close();
    });
    for (const auto& r : reports) CHECK_FALSE(r.error);
    const auto read = kcoro::test::read_partition(cluster.bootstrap_servers(), "tx-out", 0, 0, 4);
    REQUIRE(read.size() == 4);
    for (int i = 0; i < 4; ++i) CHECK(read[static_cast<std::size_t>(i)].value == fmt::format("v{}", i));
}

TEST_CASE("sends outside a transaction fail with not_in_transaction, and nothing is sent") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "outside"));
    const kcoro::record r = numbered("tx-out", 0);
    std::vector<kcoro::record> batch{numbered("tx-out", 1), numbered("tx-out", 2)};
    std::vector<kcoro::delivery_report> reports(batch.size());

    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Before any transaction: every form of sending refuses.
        auto [ec, md] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::not_in_transaction);
        CHECK(md.topic == "tx-out");
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> { co_await producer.send(r); });
        CHECK(e.code() == kcoro::errc::not_in_transaction);
        CHECK(std::string(e.what()).find("tx-out") != std::string::npos);
        CHECK(std::string(e.what()).find("no transaction is open") != std::string::npos);
        auto [eec, d] = co_await producer.enqueue(r, asio::as_tuple(asio::deferred));
        CHECK(eec == kcoro::errc::not_in_transaction);
        auto [bec, failed] = co_await producer.send_batch(batch, reports, asio::as_tuple(asio::deferred));
        CHECK(bec == kcoro::errc::not_in_transaction);
        CHECK(failed == 2);

        // A handle kept after its commit refuses too, and so does the producer.
        kcoro::transaction tx = co_await producer.begin_transaction();
        co_await tx.send(r);
        co_await tx.commit();
        CHECK_FALSE(tx.active());
        CHECK(tx.committed());
        auto [tec, tmd] = co_await tx.send(r, asio::as_tuple(asio::deferred));
        CHECK(tec == kcoro::errc::not_in_transaction);
        auto [pec, pmd] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(pec == kcoro::errc::not_in_transaction);
        auto [cec] = co_await tx.commit(asio::as_tuple(asio::deferred));
        CHECK(cec == kcoro::errc::state);
        co_await producer.close();
    });
    // Only the record sent inside the transaction was written.
    const auto read = kcoro::test::read_partition(cluster.bootstrap_servers(), "tx-out", 0, 0, 1);
    REQUIRE(read.size() == 1);
    CHECK(read[0].value == "v0");
}

TEST_CASE("a body that throws aborts the transaction and its exception comes out") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "scope-abort"));
    const kcoro::record r = numbered("tx-out", 0);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        bool caught = false;
        try {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
                co_await tx.send(r);
                throw std::logic_error("transform failed");
            });
        } catch (const std::logic_error& e) {
            caught = std::string(e.what()) == "transform failed";
        }
        CHECK(caught);
        // Aborted, not left open: the producer goes on with a new transaction.
        co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r); });

        // Aborting explicitly inside the scope: the scope says nothing was committed.
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
                co_await tx.send(r);
                co_await tx.abort();
                co_await tx.abort(); // aborting an aborted transaction is harmless
            });
        });
        CHECK(e.code() == kcoro::errc::transaction_aborted);
        co_await producer.close();
    });
}

TEST_CASE("a transaction dropped while open is aborted before the next one begins") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "dropped"));
    const kcoro::record r = numbered("tx-out", 0);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        {
            kcoro::transaction tx = co_await producer.begin_transaction();
            co_await tx.send(r);
            CHECK(tx.active());
        } // no commit: aborted in the background
        auto [sec, md] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(sec == kcoro::errc::not_in_transaction);

        kcoro::transaction tx = co_await producer.begin_transaction();
        // One transaction at a time.
        auto [ec, second] = co_await producer.begin_transaction(asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::state);
        CHECK_FALSE(second.active());
        co_await tx.send(r);
        // Moving a transaction over an open one aborts the one overwritten.
        kcoro::transaction other;
        other = std::move(tx);
        CHECK(other.active());
        co_await other.commit();
        co_await producer.close();
    });
}

TEST_CASE("transactions with completion tokens: callbacks and futures") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "tokens"));
    const kcoro::record r = numbered("tx-out", 0);

    std::optional<kcoro::error_code> init_ec, begin_ec, commit_ec;
    kcoro::transaction held;
    producer.init_transactions([&](kcoro::error_code ec) {
        init_ec = ec;
        producer.begin_transaction([&](kcoro::error_code ec2, kcoro::transaction tx) {
            begin_ec = ec2;
            held = std::move(tx);
            held.send(r, [&](kcoro::error_code, kcoro::record_metadata) {
                held.commit([&](kcoro::error_code ec3) {
                    commit_ec = ec3;
                    io.stop();
                });
            });
        });
    });
    asio::steady_timer guard(io, 30s);
    guard.async_wait([&](kcoro::error_code) { io.stop(); });
    io.run();
    io.restart();
    REQUIRE(commit_ec);
    CHECK_FALSE(*init_ec);
    CHECK_FALSE(*begin_ec);
    CHECK_FALSE(*commit_ec);

    // From synchronous code, with the context running elsewhere.
    auto work = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    kcoro::transaction tx = producer.begin_transaction(asio::use_future).get();
    CHECK(tx.active());
    tx.send(r, asio::use_future).get();
    tx.abort(asio::use_future).get();
    CHECK_FALSE(tx.active());
    producer.close(kcoro::producer::no_timeout, asio::use_future).get();
    work.reset();
    io.stop();
    runner.join();
}

TEST_CASE("an abortable commit error aborts the transaction and reports transaction_aborted") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "abortable"));
    const kcoro::record r = numbered("tx-out", 0);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.init_transactions();
        // EndTxn(commit) refused: librdkafka flags this error "requires abort".
        cluster.push_request_errors(api_end_txn, {static_cast<int>(kcoro::errc::group_authorization_failed)});
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r); });
        });
        CHECK(e.code() == kcoro::errc::transaction_aborted);
        CHECK_FALSE(kcoro::is_fatal(e.code()));
        const std::string what = e.what();
        CHECK(what.find("Group authorization failed") != std::string::npos); // the cause
        CHECK(what.find("commit") != std::string::npos);
        // The producer is fine: the next transaction commits.
        co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r); });
        co_await producer.close();
    });
}

TEST_CASE("an abortable send_offsets error aborts at once") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-in", 1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "offsets-abortable"));
    kcoro::consumer consumer(io, {{"bootstrap.servers", cluster.bootstrap_servers()},
                                  {"group.id", "offsets-abortable"},
                                  {"enable.auto.commit", "false"},
                                  {"auto.offset.reset", "earliest"},
                                  {"log_level", "2"}});
    const kcoro::record r = numbered("tx-out", 0);
    std::vector<kcoro::partition_offset> offsets{{"tx-in", 0, 5}};

    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::transaction tx = co_await producer.begin_transaction();
        co_await tx.send(r);
        const kcoro::group_metadata group = consumer.group_metadata();
        co_await tx.send_offsets(offsets, group); // accepted
        cluster.push_request_errors(api_add_offsets_to_txn,
                                    {static_cast<int>(kcoro::errc::group_authorization_failed)});
        auto [ec] = co_await tx.send_offsets(offsets, group, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::transaction_aborted);
        CHECK_FALSE(tx.active());
        auto [cec] = co_await tx.commit(asio::as_tuple(asio::deferred));
        CHECK(cec == kcoro::errc::transaction_aborted);
        auto [aec] = co_await tx.abort(asio::as_tuple(asio::deferred));
        CHECK_FALSE(aec);
        // An empty set of offsets is nothing to commit.
        kcoro::transaction next = co_await producer.begin_transaction();
        const std::vector<kcoro::message> none;
        co_await next.send_offsets(consumer, none);
        co_await next.commit();
        co_await consumer.close();
        co_await producer.close();
    });
}

TEST_CASE("a fenced producer reports errc::fenced and refuses further use") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "fenced"),
                            {.on_log = [](const kcoro::log_entry&) {}, .on_error = [](const kcoro::client_error&) {}});
    const kcoro::record r = numbered("tx-out", 0);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.init_transactions();
        cluster.push_request_errors(api_end_txn, {static_cast<int>(kcoro::errc::producer_fenced)});
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r); });
        });
        CHECK(e.code() == kcoro::errc::fenced);
        CHECK(std::string(e.what()).find("fenced by a newer instance") != std::string::npos);
        CHECK(kcoro::is_fatal(e.code()));
        CHECK(producer.fatal_error());
        // Every later operation says so.
        const kcoro::error again = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction&) -> asio::awaitable<void> { co_return; });
        });
        CHECK(std::string(again.what()).find("fatal error earlier") != std::string::npos);
        CHECK(again.code() == kcoro::errc::fenced);
        auto [sec, md] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(sec == kcoro::errc::fenced);
        auto [iec] = co_await producer.init_transactions(asio::as_tuple(asio::deferred));
        CHECK(iec == kcoro::errc::fenced);
        co_await producer.close(1s, asio::as_tuple(asio::deferred));
    });
}

TEST_CASE("retriable errors are retried: init goes through a coordinator outage") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    auto props = txn_config(cluster, "outage");
    props.set("socket.connection.setup.timeout.ms", "1000").set("reconnect.backoff.max.ms", "200");
    kcoro::producer producer(io, props, {.on_error = [](const kcoro::client_error&) {}});
    const kcoro::record r = numbered("tx-out", 0);

    cluster.broker_down(1);
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // The coordinator comes back after several of init's attempts have timed out.
        asio::steady_timer later(co_await asio::this_coro::executor, 2500ms);
        later.async_wait([&](kcoro::error_code) { cluster.broker_up(1); });
        co_await producer.init_transactions();
        co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r); });
        co_await producer.close();
    });
}

TEST_CASE("a commit waiting for many deliveries does not deadlock a single-threaded io_context") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io(1);
    auto props = txn_config(cluster, "single-thread");
    // A small local queue: enqueue() waits for room, so the executor must keep completing.
    props.set("queue.buffering.max.messages", "1000");
    kcoro::producer producer(io, props);
    constexpr int count = 20'000;
    std::vector<kcoro::record> records;
    records.reserve(count);
    for (int i = 0; i < count; ++i) records.push_back(numbered("tx-out", i));
    std::vector<kcoro::delivery> deliveries;

    run_bounded(
        io,
        [&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
                for (const auto& r : records) deliveries.push_back(co_await tx.enqueue(r));
                // The commit waits for every delivery, which only this one thread completes.
            });
            for (auto& d : deliveries) {
                auto [ec, md] = co_await d.async_wait(asio::as_tuple(asio::deferred));
                REQUIRE_FALSE(ec);
            }
            co_await producer.close();
        },
        120s);
    CHECK(deliveries.size() == count);
}

TEST_CASE("transactional operations on a producer without transactional.id fail clearly") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::producer producer(io, {{"bootstrap.servers", cluster.bootstrap_servers()}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction&) -> asio::awaitable<void> { co_return; });
        });
        CHECK(e.code() == kcoro::errc::not_configured);
        CHECK(std::string(e.what()).find("transactional.id") != std::string::npos);
        co_await producer.close();
    });
}

TEST_CASE("a cancelled transaction scope is aborted, and the producer goes on") {
    using namespace boost::asio::experimental::awaitable_operators;
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "cancelled"));
    const kcoro::record r = numbered("tx-out", 0);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        const auto ex = co_await asio::this_coro::executor;
        bool body_cancelled = false;
        auto scope = producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
            co_await tx.send(r);
            asio::steady_timer forever(ex, 1h);
            try {
                co_await forever.async_wait(asio::use_awaitable);
            } catch (const boost::system::system_error&) {
                body_cancelled = true;
                throw;
            }
        });
        asio::steady_timer soon(ex, 200ms);
        auto outcome = co_await (std::move(scope) || soon.async_wait(asio::use_awaitable));
        CHECK(outcome.index() == 1); // the timer won
        CHECK(body_cancelled);
        // Its transaction did not stay open: the next one begins and commits.
        co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r); });
        co_await producer.close();
    });
}

TEST_CASE("closing a producer with an open transaction aborts it") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tx-out", 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(cluster, "close-open"));
    const kcoro::record r = numbered("tx-out", 0);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::transaction tx = co_await producer.begin_transaction();
        co_await tx.send(r);
        co_await producer.close();
        CHECK_FALSE(tx.active());
        auto [ec] = co_await tx.commit(asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::transaction_aborted);
        auto [bec, next] = co_await producer.begin_transaction(asio::as_tuple(asio::deferred));
        CHECK(bec == kcoro::errc::client_closed);
    });
}
