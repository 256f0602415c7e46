// Bad input against a real broker (KCORO_BOOTSTRAP): what the mock cluster cannot show
// (it creates every topic on first use). The invalid partition and the refused connection
// are in producer_integration_test.cpp.
#include <kcoro/consumer.hpp>
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

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

TEST_CASE("bad input: a topic the cluster does not have (auto-creation off) is a typed error naming it") {
    const std::string missing = unique_topic("it-missing");
    const std::string existing = unique_topic("it-existing");
    asio::io_context io;
    // The broker would create the topic on first use; the client asks it not to.
    kcoro::producer producer(io, {{"bootstrap.servers", real_bootstrap()},
                                  {"allow.auto.create.topics", "false"},
                                  {"topic.metadata.propagation.max.ms", "1000"},
                                  {"message.timeout.ms", "10000"},
                                  {"log_level", "0"}});
    kcoro::producer creator(io, {{"bootstrap.servers", real_bootstrap()}, {"log_level", "3"}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // Something accepted before the failure is not lost.
        const kcoro::record first{.topic = existing, .value = "kept"};
        co_await creator.send(first);
        kcoro::delivery kept = co_await producer.enqueue(first); // accepted before the failure
        const kcoro::record bad{.topic = missing, .value = "x"};
        try {
            co_await producer.send(bad);
            FAIL("sent to a topic that does not exist");
        } catch (const kcoro::error& e) {
            CHECK((e.code() == kcoro::errc::unknown_topic || e.code() == kcoro::errc::unknown_topic_or_partition));
            CHECK(std::string(e.what()).find(missing) != std::string::npos);
            MESSAGE(std::string(e.what()));
        }
        const auto md = co_await kept.wait();
        CHECK(md.offset == 1);
        co_await producer.close(10s);
        co_await creator.close(10s);
    }, 60s);
}

TEST_CASE("bad input: a consumer assigned a topic that does not exist gets a typed error naming it") {
    const std::string missing = unique_topic("it-missing-c");
    asio::io_context io;
    kcoro::consumer consumer(io, {{"bootstrap.servers", real_bootstrap()},
                                  {"group.id", unique_topic("it-missing-group")},
                                  {"allow.auto.create.topics", "false"},
                                  {"topic.metadata.refresh.interval.ms", "500"},
                                  {"log_level", "0"}});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const std::vector<std::string> topics{missing};
        consumer.subscribe(topics);
        try {
            auto m = co_await consumer.receive();
            FAIL("received from a topic that does not exist");
        } catch (const kcoro::error& e) {
            CHECK((e.code() == kcoro::errc::unknown_topic || e.code() == kcoro::errc::unknown_topic_or_partition));
            CHECK(std::string(e.what()).find(missing) != std::string::npos);
            MESSAGE(std::string(e.what()));
        }
        co_await consumer.close();
    }, 60s);
}
