#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
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

} // namespace

TEST_CASE("send yields metadata that matches what a consumer reads back") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("plain", 1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));

    std::vector<kcoro::record_metadata> sent;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
            const kcoro::record r{.topic = "plain", .value = fmt::format("value-{}", i)};
            sent.push_back(co_await producer.send(r));
        }
    });

    REQUIRE(sent.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(sent[i].topic == "plain");
        CHECK(sent[i].partition == 0);
        CHECK(sent[i].offset == i);
        // librdkafka 2.0's mock broker answers every produce with LogAppendTime 1234,
        // which the metadata reports as the broker's time (a real broker sends -1 for
        // CreateTime topics: the integration suite checks create_time there).
        CHECK(sent[i].timestamp_type == kcoro::timestamp_type::log_append_time);
    }
    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "plain", 0, 0, 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(back[i].offset == sent[i].offset);
        CHECK(back[i].value == fmt::format("value-{}", i));
        CHECK_FALSE(back[i].key.has_value());
        CHECK(back[i].headers.empty());
        CHECK(back[i].timestamp_ms > 1'600'000'000'000); // stamped by the producer at enqueue
    }
}

TEST_CASE("key, value and repeated headers arrive byte-exact") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("keyed", 1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));

    const std::string binary_key("k\0ey\xff", 5);
    const std::string binary_value("\x00\x01\x02value\x80", 9);
    kcoro::record r{.topic = "keyed",
                    .key = binary_key,
                    .value = binary_value,
                    .headers = {{"trace", "abc"}, {"trace", std::string("\0z", 2)}, {"empty", std::nullopt}},
                    .timestamp = kcoro::timestamp(1'700'000'000'123ms)};
    kcoro::record_metadata md;
    run_bounded(io, [&]() -> asio::awaitable<void> { md = co_await producer.send(r); });

    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "keyed", 0, md.offset, 1);
    CHECK(back[0].key == binary_key);
    CHECK(back[0].value == binary_value);
    CHECK(back[0].timestamp_ms == 1'700'000'000'123);
    REQUIRE(back[0].headers.size() == 3);
    CHECK(back[0].headers == r.headers);
}

TEST_CASE("a record_view is sent without copying, null value as tombstone") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("views", 1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));

    const std::string value = "viewed bytes";
    const kcoro::header_view headers[] = {{"h", "v"}};
    kcoro::record_view with_value("views", value, "key-1");
    with_value.headers = headers;
    kcoro::record_view tombstone("views", std::nullopt, "key-1");
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.send(with_value);
        co_await producer.send(tombstone);
    });
    auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "views", 0, 0, 2);
    CHECK(back[0].value == value);
    CHECK(back[0].key == "key-1");
    REQUIRE(back[0].headers.size() == 1);
    CHECK(back[0].headers[0] == kcoro::header{"h", "v"});
    CHECK_FALSE(back[1].value.has_value());
}

TEST_CASE("an explicit partition is respected and keys pick stable partitions") {
    kcoro::mock_cluster cluster(3);
    cluster.create_topic("parts", 4);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record explicit_partition{.topic = "parts", .partition = 2, .value = "x"};
        auto md = co_await producer.send(explicit_partition);
        CHECK(md.partition == 2);
        const kcoro::record keyed{.topic = "parts", .key = "same-key", .value = "1"};
        auto a = co_await producer.send(keyed);
        auto b = co_await producer.send(keyed);
        CHECK(a.partition == b.partition);
        CHECK(b.offset == a.offset + 1);
    });
}

TEST_CASE("delivery handlers run on the executor's thread, never on librdkafka's") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    const auto io_thread = std::this_thread::get_id();
    int completed = 0;
    const kcoro::record r{.topic = "threads", .value = "v"};
    for (int i = 0; i < 100; ++i)
        producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) {
            CHECK_FALSE(ec);
            CHECK(std::this_thread::get_id() == io_thread);
            ++completed;
        });
    run_bounded(io, [&]() -> asio::awaitable<void> { co_await producer.flush(); });
    CHECK(completed == 100);
}

TEST_CASE("a handler is never invoked from inside send()") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    bool inside = true;
    bool called_inside = false;
    kcoro::record bad{.topic = "", .value = "x"}; // fails at once: empty topic name
    producer.send(bad, [&](kcoro::error_code ec, kcoro::record_metadata) {
        CHECK(ec == kcoro::errc::invalid_topic);
        called_inside = inside;
    });
    inside = false;
    run_bounded(io, [&]() -> asio::awaitable<void> { co_await producer.flush(1s); });
    CHECK_FALSE(called_inside);
}

TEST_CASE("flush waits for every outstanding delivery, even with a long linger") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("linger.ms", "60000");
    kcoro::producer producer(io, cfg);
    std::vector<kcoro::record> records(500, kcoro::record{.topic = "flushed", .value = "payload"});
    int delivered = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (auto& r : records)
            producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) {
                if (!ec) ++delivered;
            });
        CHECK(producer.in_flight() > 0);
        co_await producer.flush(20s);
        CHECK(delivered == 500);
        CHECK(producer.in_flight() == 0);
    }, 30s);
}

TEST_CASE("an unknown partition fails with a typed error naming topic and partition") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("two", 2);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Let the producer learn the topic's partition count first.
        const kcoro::record ok{.topic = "two", .partition = 0, .value = "ok"};
        co_await producer.send(ok);
        const kcoro::record bad{.topic = "two", .partition = 7, .value = "x"};
        auto [ec, md] = co_await producer.send(bad, asio::as_tuple(asio::use_awaitable));
        CHECK(ec == kcoro::errc::unknown_partition);
        CHECK(md.topic == "two");
        CHECK(md.partition == 7);
        try {
            co_await producer.send(bad);
            FAIL("sent to a partition that does not exist");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::unknown_partition);
            const std::string what = e.what();
            CHECK(what.find("'two'") != std::string::npos);
            CHECK(what.find("partition 7") != std::string::npos);
        }
    });
}

TEST_CASE("an oversized record fails at once and nothing accepted before it is lost") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("big", 1);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("message.max.bytes", "10000");
    kcoro::producer producer(io, cfg);
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::record small{.topic = "big", .value = "before"};
        const kcoro::record oversized{.topic = "big", .value = std::string(20000, 'x')};
        kcoro::delivery first = co_await producer.enqueue(small); // accepted before the failure
        auto [ec, md] = co_await producer.send(oversized, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::message_too_large);
        CHECK(md.topic == "big");
        auto ok = co_await first.wait();
        CHECK(ok.offset == 0);
    });
}

TEST_CASE("synchronous callers can use use_future") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("sync", 1);
    asio::io_context io;
    kcoro::producer producer(io, test_config(cluster));
    std::thread runner([&] {
        auto guard = asio::make_work_guard(io);
        io.run_for(30s);
    });
    const kcoro::record r{.topic = "sync", .value = "blocking"};
    auto md = producer.send(r, asio::use_future).get();
    CHECK(md.offset == 0);
    producer.flush(5s, asio::use_future).get();
    producer.close(5s, asio::use_future).get();
    io.stop();
    runner.join();
}

TEST_CASE("close delivers what is queued; later sends fail with client_closed") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    auto cfg = test_config(cluster);
    cfg.set("linger.ms", "1000");
    kcoro::producer producer(io, cfg);
    std::vector<kcoro::record> records(50, kcoro::record{.topic = "closing", .value = "v"});
    int delivered = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (auto& r : records)
            producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) {
                if (!ec) ++delivered;
            });
        co_await producer.close(10s);
        CHECK(delivered == 50);
        const kcoro::record late{.topic = "closing", .value = "late"};
        auto [ec, md] = co_await producer.send(late, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::client_closed);
        co_await producer.close(); // twice is harmless
    });
}

TEST_CASE("destroying a producer with sends in flight completes them and never hangs") {
    kcoro::mock_cluster cluster(1);
    cluster.set_round_trip_time(1, 2000ms); // nothing can be delivered before destruction
    asio::io_context io;
    int aborted = 0, delivered = 0;
    std::vector<kcoro::record> records(20, kcoro::record{.topic = "doomed", .value = "v"});
    {
        kcoro::producer producer(io, test_config(cluster));
        for (auto& r : records)
            producer.send(r, [&](kcoro::error_code ec, kcoro::record_metadata) {
                if (ec) ++aborted;
                else ++delivered;
            });
    }
    run_bounded(io, []() -> asio::awaitable<void> { co_return; }, 30s);
    io.run_for(10s); // the background close finishes on its own
    CHECK(aborted + delivered == 20);
    CHECK(aborted > 0);
}
