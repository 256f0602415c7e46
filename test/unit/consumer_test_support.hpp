// Helpers shared by the consumer's unit tests (mock cluster).
#pragma once

#include <kcoro/kcoro.hpp>
#include <kcoro/consumer.hpp>

#include "test_support.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;

namespace consumer_tests {

inline kcoro::config consumer_config(const kcoro::mock_cluster& cluster, const std::string& group) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()},
            {"group.id", group},
            {"auto.offset.reset", "earliest"},
            {"log_level", "3"},
            // Fast group protocol on the mock cluster.
            {"session.timeout.ms", "6000"},
            {"heartbeat.interval.ms", "100"},
            {"topic.metadata.refresh.interval.ms", "500"},
            {"fetch.wait.max.ms", "10"}};
}

// (GCC 12 cannot compile initializer lists inside coroutines: configs are built outside.)
inline kcoro::config producer_config(const kcoro::mock_cluster& cluster) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()}, {"linger.ms", "1"}, {"log_level", "3"}};
}

struct tp_lit {
    const char* topic;
    std::int32_t partition;
};
struct po_lit {
    const char* topic;
    std::int32_t partition;
    std::int64_t offset;
};
inline std::vector<std::string> topics(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }
inline std::vector<kcoro::topic_partition> parts(std::initializer_list<tp_lit> l) {
    std::vector<kcoro::topic_partition> out;
    for (const auto& x : l) out.push_back({x.topic, x.partition});
    return out;
}
inline std::vector<kcoro::partition_offset> offs(std::initializer_list<po_lit> l) {
    std::vector<kcoro::partition_offset> out;
    for (const auto& x : l) out.push_back({x.topic, x.partition, x.offset});
    return out;
}

inline kcoro::record numbered(const std::string& topic, std::optional<std::int32_t> partition, int i) {
    return kcoro::record{
        .topic = topic, .partition = partition, .key = fmt::format("k{}", i), .value = fmt::format("v{}", i)};
}

inline asio::awaitable<void> produce(const kcoro::mock_cluster& cluster, const std::string& topic, int count,
                              std::optional<std::int32_t> partition = std::nullopt, int first = 0) {
    kcoro::producer producer(co_await asio::this_coro::executor, producer_config(cluster));
    for (int i = first; i < first + count; ++i) {
        const kcoro::record r = numbered(topic, partition, i);
        co_await producer.send(r);
    }
    co_await producer.close();
}

inline void produce_sync(const kcoro::mock_cluster& cluster, const std::string& topic, int count,
                  std::optional<std::int32_t> partition = std::nullopt, int first = 0) {
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> { co_await produce(cluster, topic, count, partition, first); });
}

/// Produces `count` numbered records with one send_batch (so a fetch brings many of them
/// at once), record i to partition i % partitions.
inline void produce_batch_sync(const kcoro::mock_cluster& cluster, const std::string& topic, int count,
                               int partitions = 1) {
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::producer producer(co_await asio::this_coro::executor, producer_config(cluster));
        std::vector<kcoro::record> records;
        for (int i = 0; i < count; ++i) records.push_back(numbered(topic, i % partitions, i));
        std::vector<kcoro::delivery_report> reports(records.size());
        const std::size_t failed = co_await producer.send_batch(records, reports);
        co_await producer.close();
        if (failed != 0) throw std::runtime_error(fmt::format("produce_batch_sync: {} records failed", failed));
    });
}

/// Polls `cond` every 20 ms until it holds (the test's run_bounded limit bounds the wait).
inline asio::awaitable<void> wait_until(std::function<bool()> cond) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (!cond()) {
        t.expires_after(20ms);
        co_await t.async_wait(asio::use_awaitable);
    }
}

} // namespace consumer_tests

using namespace consumer_tests;
