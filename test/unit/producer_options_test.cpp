// Completion tokens, executors and allocators; log/statistics/error sinks; fatal
// errors; partitioners; formatters.
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;

namespace {

kcoro::config test_config(const kcoro::mock_cluster& cluster) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()}, {"linger.ms", "5"}, {"log_level", "3"}};
}

// The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
std::int32_t java_murmur2(std::string_view key) {
    const auto* data = reinterpret_cast<const unsigned char*>(key.data());
    const std::uint32_t length = static_cast<std::uint32_t>(key.size());
    constexpr std::uint32_t seed = 0x9747b28c, m = 0x5bd1e995;
    constexpr int r = 24;
    std::uint32_t h = seed ^ length;
    for (std::uint32_t i = 0; i < length / 4; ++i) {
        const std::uint32_t i4 = i * 4;
        std::uint32_t k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (std::uint32_t(data[i4 + 3]) << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const std::uint32_t tail = length & ~3u;
    switch (length % 4) {
    case 3: h ^= std::uint32_t(data[tail + 2]) << 16; [[fallthrough]];
    case 2: h ^= std::uint32_t(data[tail + 1]) << 8; [[fallthrough]];
    case 1:
        h ^= data[tail];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return static_cast<std::int32_t>(h);
}

// Java's DefaultPartitioner for keyed records: toPositive(murmur2(key)) % partitions.
std::int32_t java_partition(std::string_view key, std::int32_t partitions) {
    return (java_murmur2(key) & 0x7fffffff) % partitions;
}

// Counts what a handler's associated allocator hands out.
template <class T>
struct counting_allocator {
    using value_type = T;
    std::atomic<int>* count;
    explicit counting_allocator(std::atomic<int>* c) noexcept : count(c) {}
    template <class U>
    counting_allocator(const counting_allocator<U>& o) noexcept : count(o.count) {}
    T* allocate(std::size_t n) {
        ++*count;
        return std::allocator<T>().allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
    template <class U>
    bool operator==(const counting_allocator<U>& o) const noexcept { return count == o.count; }
};

} // namespace

TEST_CASE("murmur2 matches the Java client's published test vectors") {
    // From Kafka's UtilsTest.testMurmur2.
    CHECK(java_murmur2("21") == -973932308);
    CHECK(java_murmur2("foobar") == -790332482);
    CHECK(java_murmur2("a-little-bit-long-string") == -985981536);
    CHECK(java_murmur2("a-little-bit-longer-string") == -1486304829);
    CHECK(java_murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971);
    CHECK(java_murmur2("abc") == 479470107);
}

TEST_CASE("the murmur2_random partitioner picks the partitions Java would") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("java", 7);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster), {.partitioning = kcoro::partitioner::murmur2_random});
    std::vector<kcoro::record> records;
    for (int i = 0; i < 50; ++i) records.push_back({.topic = "java", .key = fmt::format("customer-{}", i), .value = "v"});
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> { CHECK(co_await producer.send_batch(records, reports) == 0); });
    for (std::size_t i = 0; i < records.size(); ++i)
        CHECK(reports[i].metadata.partition == java_partition(*records[i].key, 7));
    CHECK(fmt::format("{}", kcoro::partitioner::murmur2_random) == "murmur2_random");
}

TEST_CASE("a custom partitioner decides; one that throws or answers out of range fails the record") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("custom", 4);
    asio::io_context io;
    std::atomic<int> calls{0};
    kcoro::producer producer(io, test_config(cluster),
                             {.partition_with = [&calls](std::string_view topic, std::optional<std::string_view> key,
                                                         std::int32_t count) -> std::int32_t {
                                 ++calls;
                                 if (topic != "custom") return 0;
                                 if (key == "throw") throw std::runtime_error("no partition for you");
                                 if (key == "range") return count + 3;
                                 return key ? static_cast<std::int32_t>(key->size()) % count : count - 1;
                             }});
    std::vector<kcoro::record> records{{.topic = "custom", .key = "abcde", .value = "v"},
                                       {.topic = "custom", .value = "keyless"},
                                       {.topic = "custom", .key = "throw", .value = "v"},
                                       {.topic = "custom", .key = "range", .value = "v"}};
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> { co_await producer.send_batch(records, reports); });
    CHECK(calls.load() >= 3);
    CHECK(reports[0].metadata.partition == 1);
    // Keyless records are placed by librdkafka's sticky partitioning, not the callback.
    CHECK_FALSE(reports[1].error);
    CHECK(reports[2].error);
    CHECK(reports[3].error);
}

TEST_CASE("every completion token works: deferred, as_tuple, redirect_error, use_future, callbacks") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("tokens", 1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const kcoro::record r{.topic = "tokens", .value = "t"};
    const kcoro::record bad{.topic = "tokens", .partition = 3, .value = "x"};
    std::vector<kcoro::delivery_report> reports(1);
    const std::vector<kcoro::record> one{r};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.send(r); // learn the partition count
        auto op = producer.send(r, asio::deferred); // nothing happens until awaited
        auto md = co_await std::move(op);
        CHECK(md.offset == 1);
        auto [ec, md2] = co_await producer.send(bad, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::unknown_partition);
        kcoro::error_code redirected;
        co_await producer.send(bad, asio::redirect_error(asio::use_awaitable, redirected));
        CHECK(redirected == kcoro::errc::unknown_partition);
        auto [bec, failed] = co_await producer.send_batch(one, reports, asio::as_tuple(asio::deferred));
        CHECK_FALSE(bec);
        CHECK(failed == 0);
        kcoro::delivery d = co_await producer.enqueue(r, asio::deferred);
        auto dmd = co_await d.async_wait(asio::deferred);
        CHECK(dmd.offset == 3);
        kcoro::error_code batch_redirected;
        co_await producer.send_batch(one, reports, asio::redirect_error(asio::use_awaitable, batch_redirected));
        CHECK_FALSE(batch_redirected);
    });

    // use_future and plain callbacks, from a thread that is not the executor's.
    std::thread runner([&] {
        auto guard = asio::make_work_guard(io);
        io.run_for(20s);
    });
    CHECK(producer.send(r, asio::use_future).get().offset == 5);
    CHECK_THROWS_AS(producer.send(bad, asio::use_future).get(), boost::system::system_error);
    CHECK(producer.send_batch(one, reports, asio::use_future).get() == 0);
    kcoro::delivery d = producer.enqueue(r, asio::use_future).get();
    CHECK(d.async_wait(asio::use_future).get().offset == 7);
    std::promise<kcoro::error_code> p;
    producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) { p.set_value(ec); });
    CHECK_FALSE(p.get_future().get());
    producer.flush(5s, asio::use_future).get();
    io.stop();
    runner.join();
}

TEST_CASE("send() without a token: awaited, made an awaitable, or started with a completion token") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("plain", 2);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const kcoro::record r{.topic = "plain", .partition = 1, .value = "v"};
    kcoro::record_view view("plain", "w");
    view.partition = 0;
    const kcoro::record bad{.topic = "plain", .partition = 7, .value = "x"};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record_metadata md = co_await producer.send(r);
        CHECK(md.topic == "plain");
        CHECK(md.partition == 1);
        CHECK(md.offset == 0);
        CHECK((co_await producer.send(view)).partition == 0);
        // A failure is a kcoro::error naming the topic and partition.
        try {
            co_await producer.send(bad);
            FAIL("a send to a partition that does not exist succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::unknown_partition);
            CHECK(std::string(e.what()).find("topic 'plain' partition 7") != std::string::npos);
        }
        // Where an awaitable is needed: kept for later, or composed.
        asio::awaitable<kcoro::record_metadata> later = producer.send(r);
        CHECK((co_await std::move(later)).offset == 1);
        using namespace asio::experimental::awaitable_operators;
        const auto [a, b] = co_await (asio::awaitable<kcoro::record_metadata>(producer.send(r)) &&
                                      asio::awaitable<kcoro::record_metadata>(producer.send(view)));
        CHECK(a.partition == 1);
        CHECK(b.partition == 0);
        // Started with a token, its signature is void(std::exception_ptr, record_metadata).
        auto [none, ok] = co_await producer.send(r)(asio::as_tuple(asio::deferred));
        CHECK_FALSE(none);
        CHECK(ok.offset == 3);
        auto [failure, about] = co_await producer.send(bad)(asio::as_tuple(asio::deferred));
        REQUIRE(failure);
        CHECK_THROWS_AS(std::rethrow_exception(failure), kcoro::error);
        CHECK(about.partition == 7);
        // delivery::wait() is the same kind of operation.
        kcoro::delivery d = co_await producer.enqueue(r);
        CHECK((co_await d.wait()).offset == 4);
    });
    // co_spawn takes the awaitable too.
    auto spawned = asio::co_spawn(io, asio::awaitable<kcoro::record_metadata>(producer.send(r)), asio::use_future);
    io.restart();
    io.run_for(10s);
    REQUIRE(spawned.wait_for(0s) == std::future_status::ready);
    CHECK(spawned.get().offset == 5);
}

TEST_CASE("handlers run on their associated executor and use their associated allocator") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    asio::io_context other; // a different context, run by another thread
    kcoro::producer producer(io, test_config(cluster));
    const kcoro::record r{.topic = "assoc", .value = "v"};
    std::atomic<int> allocations{0};
    std::atomic<int> on_other{0};
    std::thread::id other_thread;
    std::promise<void> started;
    auto other_guard = asio::make_work_guard(other);
    std::thread other_runner([&] {
        other_thread = std::this_thread::get_id();
        started.set_value();
        other.run();
    });
    started.get_future().wait();
    const std::vector<kcoro::record> rs(10, r);
    std::vector<kcoro::delivery_report> reports(rs.size());
    for (int i = 0; i < 20; ++i)
        producer.send(r, asio::bind_executor(other, asio::bind_allocator(counting_allocator<void>(&allocations),
                                                                         [&](kcoro::error_code ec, kcoro::record_metadata) {
                                                                             CHECK_FALSE(ec);
                                                                             if (std::this_thread::get_id() == other_thread)
                                                                                 ++on_other;
                                                                         })));
    producer.send_batch(rs, reports, asio::bind_executor(other, [&](kcoro::error_code, std::size_t) {
                            if (std::this_thread::get_id() == other_thread) ++on_other;
                        }));
    auto strand = asio::make_strand(io);
    bool on_strand = false;
    producer.send(r, asio::bind_executor(strand, [&](kcoro::error_code, kcoro::record_metadata) {
                      on_strand = strand.running_in_this_thread();
                  }));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.flush(10s);
        asio::steady_timer t(co_await asio::this_coro::executor, 100ms);
        co_await t.async_wait(asio::deferred);
    });
    other_guard.reset();
    other_runner.join();
    CHECK(on_other.load() == 21);
    CHECK(allocations.load() >= 20);
    CHECK(on_strand);
}

TEST_CASE("a multi-threaded io_context: many coroutines send at once") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("mt", 4);
    asio::thread_pool pool(4);
    kcoro::producer producer(pool.get_executor(), test_config(cluster));
    const kcoro::record r{.topic = "mt", .value = "v"};
    std::atomic<int> ok{0};
    std::atomic<int> done{0};
    constexpr int coroutines = 32, each = 100;
    for (int c = 0; c < coroutines; ++c)
        asio::co_spawn(pool, [&]() -> asio::awaitable<void> {
            for (int i = 0; i < each; ++i) {
                auto md = co_await producer.send(r);
                if (md.offset >= 0) ++ok;
            }
            std::vector<kcoro::record> batch(50, r);
            std::vector<kcoro::delivery_report> reports(batch.size());
            if (co_await producer.send_batch(batch, reports) == 0) ok += 50;
            kcoro::delivery d = co_await producer.enqueue(r);
            co_await d.wait();
            ++ok;
        }, [&](std::exception_ptr e) {
            CHECK_FALSE(e);
            ++done;
        });
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (done.load() < coroutines && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
    CHECK(done.load() == coroutines);
    CHECK(ok.load() == coroutines * (each + 51));
    producer.close(5s, asio::use_future).get();
    pool.join();
}

TEST_CASE("logs, statistics and error events reach the sinks on the executor") {
    asio::io_context io;
    const auto io_thread = std::this_thread::get_id();
    int logs = 0, stats = 0, errors = 0;
    bool all_on_executor = true;
    std::string json;
    kcoro::client_error last_error;
    std::string last_error_text;
    // Nothing listens on this port: connection failures are reported as error events.
    kcoro::producer producer(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"statistics.interval.ms", "100"},
                                  {"log_level", "7"}, {"debug", "broker"}},
                             {.on_log =
                                  [&](const kcoro::log_entry& e) {
                                      all_on_executor &= std::this_thread::get_id() == io_thread;
                                      CHECK_FALSE(e.facility.empty());
                                      ++logs;
                                  },
                              .on_statistics =
                                  [&](std::string_view j) {
                                      all_on_executor &= std::this_thread::get_id() == io_thread;
                                      json = j;
                                      ++stats;
                                  },
                              .on_error =
                                  [&](const kcoro::client_error& e) {
                                      all_on_executor &= std::this_thread::get_id() == io_thread;
                                      last_error = e;
                                      last_error_text = fmt::format("{}", e);
                                      ++errors;
                                  }});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        for (int i = 0; i < 100 && (stats < 2 || errors == 0 || logs == 0); ++i) {
            t.expires_after(50ms);
            co_await t.async_wait(asio::deferred);
        }
    });
    CHECK(all_on_executor);
    CHECK(logs > 0);
    CHECK(stats >= 2);
    CHECK(json.find("\"type\": \"producer\"") != std::string::npos);
    CHECK(errors > 0);
    CHECK(last_error.code);
    CHECK_FALSE(last_error.fatal);
    CHECK(last_error_text.find("error: ") == 0);
}

TEST_CASE("a fatal idempotence error fails pending and later sends with errc::fatal and its reason") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("fatal", 1);
    asio::io_context io;
    std::vector<kcoro::client_error> fatal_events;
    kcoro::producer producer(io, test_config(cluster), {.on_error = [&](const kcoro::client_error& e) {
                                                             if (e.fatal) fatal_events.push_back(e);
                                                         }});
    const kcoro::record r{.topic = "fatal", .value = "v"};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.send(r); // idempotent producer id acquired
        // The broker reports a sequence gap: with idempotence (not transactional) that
        // is fatal for librdkafka.
        cluster.push_request_errors(0, {45 /* OUT_OF_ORDER_SEQUENCE_NUMBER */});
        auto [ec, md] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::fatal);
        CHECK(kcoro::is_fatal(ec));
        CHECK(producer.fatal_error());
        CHECK_FALSE(producer.fatal_reason().empty());
        try {
            co_await producer.send(r);
            FAIL("send after a fatal error succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::fatal);
            CHECK(std::string(e.what()).find(producer.fatal_reason()) != std::string::npos);
        }
        std::vector<kcoro::record> batch(3, r);
        std::vector<kcoro::delivery_report> reports(3);
        auto [bec, failed] = co_await producer.send_batch(batch, reports, asio::as_tuple(asio::deferred));
        CHECK(bec == kcoro::errc::fatal);
        CHECK(failed == 3);
    });
    REQUIRE_FALSE(fatal_events.empty());
    CHECK(fatal_events.front().code == producer.fatal_error());
}

TEST_CASE("records, views, metadata, reports and errors format") {
    const kcoro::record r{.topic = "t", .partition = 2, .key = "k", .value = "value", .headers = {{"h", "x"}}};
    CHECK(fmt::format("{}", r) == "record{topic=t, partition=2, key=1B, value=5B, headers=[h]}");
    kcoro::record_view v("t", std::nullopt, "key");
    CHECK(fmt::format("{}", v) == "record{topic=t, key=3B, value=null}");
    const kcoro::record_metadata md{.topic = "t", .partition = 1, .offset = 42};
    CHECK(fmt::format("{}", md) == "t/1@42");
    CHECK(fmt::format("{}", kcoro::delivery_report{{}, md}) == "t/1@42");
    CHECK(fmt::format("{}", kcoro::delivery_report{kcoro::errc::message_timed_out, md}) ==
          fmt::format("t/1: {}", kcoro::make_error_code(kcoro::errc::message_timed_out).message()));
    CHECK(fmt::format("{}", kcoro::log_entry{3, "FAIL", "down"}) == "[3] FAIL: down");
    CHECK_FALSE(fmt::format("{}", kcoro::errc::queue_full).empty());
}

TEST_CASE("bad configuration names the key; idempotence is on by default") {
    asio::io_context io;
    try {
        kcoro::producer p(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"acks", "sometimes"}});
        FAIL("accepted acks=sometimes");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::invalid_config_value);
        CHECK(std::string(e.what()).find("'acks'") != std::string::npos);
    }
    try {
        kcoro::producer p(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"no.such.key", "1"}});
        FAIL("accepted an unknown key");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::unknown_config_key);
        CHECK(std::string(e.what()).find("'no.such.key'") != std::string::npos);
    }
    // Idempotence requires acks=all: an explicit acks=1 conflicts with the default.
    CHECK_THROWS_AS(kcoro::producer(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"acks", "1"}}), kcoro::error);
    CHECK_NOTHROW(kcoro::producer(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"acks", "1"}, {"enable.idempotence", "false"}}));
}
