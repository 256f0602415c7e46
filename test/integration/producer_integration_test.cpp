// The producer against a real Kafka broker: what the mock cluster cannot show
// (real CreateTime metadata, interoperability with librdkafka's plain consumer).
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::real_bootstrap;
using kcoro::test::run_bounded;
using kcoro::test::unique_topic;

namespace {

kcoro::config broker_config() {
    return {{"bootstrap.servers", real_bootstrap()}, {"linger.ms", "5"}, {"acks", "all"}, {"log_level", "3"}};
}

} // namespace

TEST_CASE("send yields the metadata a plain librdkafka consumer reads back") {
    const std::string topic = unique_topic("it-plain");
    asio::io_context io;
    kcoro::producer producer(io, broker_config());
    std::vector<kcoro::record_metadata> sent;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 5; ++i) {
            const kcoro::record r{.topic = topic, .partition = 0, .value = fmt::format("value-{}", i)};
            sent.push_back(co_await producer.send(r));
        }
    }, 90s);

    REQUIRE(sent.size() == 5);
    auto back = kcoro::test::read_partition(real_bootstrap(), topic, 0, 0, 5);
    for (int i = 0; i < 5; ++i) {
        CHECK(sent[i].topic == topic);
        CHECK(sent[i].partition == 0);
        CHECK(sent[i].offset == i);
        // A real broker keeps the producer's CreateTime: the metadata reports it.
        CHECK(sent[i].timestamp_type == kcoro::timestamp_type::create_time);
        CHECK(back[i].offset == sent[i].offset);
        CHECK(back[i].timestamp_ms == sent[i].timestamp.time_since_epoch().count());
        CHECK(back[i].value == fmt::format("value-{}", i));
    }
}

TEST_CASE("key, value, headers and timestamp interoperate byte-exact with librdkafka's consumer") {
    const std::string topic = unique_topic("it-interop");
    asio::io_context io;
    kcoro::producer producer(io, broker_config());

    std::string all_bytes;
    for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
    const kcoro::record r{.topic = topic,
                          .partition = 0,
                          .key = std::string("k\0\xff", 3),
                          .value = all_bytes,
                          .headers = {{"h", "1"}, {"h", std::string("\0\x01", 2)}, {"null", std::nullopt}, {"", ""}},
                          .timestamp = kcoro::timestamp(1'700'000'000'123ms)};
    const kcoro::record empty{.topic = topic, .partition = 0, .key = "", .value = ""};
    const kcoro::record tombstone{.topic = topic, .partition = 0, .key = "gone"};
    kcoro::record_metadata md;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        md = co_await producer.send(r);
        co_await producer.send(empty);
        co_await producer.send(tombstone);
    }, 90s);

    CHECK(md.timestamp == kcoro::timestamp(1'700'000'000'123ms));
    auto back = kcoro::test::read_partition(real_bootstrap(), topic, 0, md.offset, 3);
    CHECK(back[0].key == r.key);
    CHECK(back[0].value == all_bytes);
    CHECK(back[0].timestamp_ms == 1'700'000'000'123);
    CHECK(back[0].headers == r.headers);
    CHECK(back[1].key == "");   // empty, not null
    CHECK(back[1].value == ""); // empty, not null
    CHECK(back[2].key == "gone");
    CHECK_FALSE(back[2].value.has_value()); // a tombstone stays null
}

TEST_CASE("keyed records land on one partition in order; flush delivers them all") {
    const std::string topic = unique_topic("it-keyed");
    asio::io_context io;
    kcoro::producer producer(io, broker_config());
    constexpr int count = 2000;
    std::vector<kcoro::record> records;
    for (int i = 0; i < count; ++i)
        records.push_back({.topic = topic, .key = "same-key", .value = std::to_string(i)});
    std::vector<kcoro::record_metadata> mds(count);
    int failures = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < count; ++i)
            producer.send(records[i], [&, i](kcoro::error_code ec, kcoro::record_metadata m) {
                if (ec) ++failures;
                mds[i] = m;
            });
        co_await producer.flush(60s);
    }, 120s);
    CHECK(failures == 0);
    for (int i = 1; i < count; ++i) {
        CHECK(mds[i].partition == mds[0].partition);
        CHECK(mds[i].offset == mds[i - 1].offset + 1);
    }
    auto back = kcoro::test::read_partition(real_bootstrap(), topic, mds[0].partition, mds[0].offset, count);
    for (int i = 0; i < count; ++i) CHECK(back[i].value == std::to_string(i));
}

TEST_CASE("a partition the topic does not have is a typed error naming it") {
    const std::string topic = unique_topic("it-badpart");
    asio::io_context io;
    kcoro::producer producer(io, broker_config());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record ok{.topic = topic, .partition = 0, .value = "ok"}; // auto-creates, 1 partition
        co_await producer.send(ok);
        const kcoro::record bad{.topic = topic, .partition = 5, .value = "x"};
        try {
            co_await producer.send(bad);
            FAIL("sent to a partition the topic does not have");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::unknown_partition);
            CHECK(std::string(e.what()).find("partition 5") != std::string::npos);
            CHECK(std::string(e.what()).find(topic) != std::string::npos);
        }
    }, 90s);
}

TEST_CASE("a broker that refuses connections makes sends time out with a typed error") {
    // Nothing listens on port 1 of loopback; delivery.timeout.ms bounds the wait.
    asio::io_context io;
    kcoro::producer producer(io, {{"bootstrap.servers", "127.0.0.1:1"},
                                  {"message.timeout.ms", "1500"},
                                  {"log_level", "0"}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record r{.topic = "nowhere", .value = "lost?"};
        auto [ec, md] = co_await producer.send(r, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::message_timed_out);
        CHECK(md.topic == "nowhere");
    }, 30s);
}
