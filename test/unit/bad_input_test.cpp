// Bad input on the mock cluster: each mistake is a typed error naming what was wrong,
// nothing accepted before it is lost, and nothing crashes or hangs. What the other unit
// tests already cover (unknown partition, oversized record, one bad key/value per client,
// closed producer send/send_batch, cancelling send/enqueue/send_batch, close during
// backpressure, delivery.timeout.ms) is not repeated here.
#include <kcoro/consumer.hpp>
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;
using kcoro::test::sleep_for;

namespace {

kcoro::config producer_config(const kcoro::mock_cluster& cluster) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()}, {"linger.ms", "1"}, {"log_level", "3"}};
}

kcoro::config consumer_config(const kcoro::mock_cluster& cluster, const std::string& group) {
    return {{"bootstrap.servers", cluster.bootstrap_servers()},
            {"group.id", group},
            {"auto.offset.reset", "earliest"},
            {"log_level", "3"},
            {"session.timeout.ms", "6000"},
            {"heartbeat.interval.ms", "100"},
            {"fetch.wait.max.ms", "10"}};
}

std::vector<kcoro::partition_offset> from_beginning(const std::string& topic, int partitions = 1) {
    std::vector<kcoro::partition_offset> out;
    for (int p = 0; p < partitions; ++p) out.push_back({topic, p, kcoro::offsets::beginning});
    return out;
}

template <class Make>
void expect_config_error(Make make, kcoro::errc code, const std::string& key) {
    try {
        make();
        FAIL("accepted a bad '" << key << "'");
    } catch (const kcoro::error& e) {
        CHECK_MESSAGE(e.code() == code, key << ": " << e.what());
        CHECK_MESSAGE(std::string(e.what()).find(key) != std::string::npos, e.what());
    }
}

} // namespace

TEST_CASE("bad input: every rejected property names its key, for producer and consumer") {
    asio::io_context io;
    const std::pair<const char*, const char*> bad_values[] = {
        {"linger.ms", "-5"},
        {"linger.ms", "soon"},
        {"compression.type", "zip"},
        {"enable.idempotence", "sure"},
        {"queue.buffering.max.messages", "-1"},
        {"message.max.bytes", "1"},
    };
    for (const auto& [key, value] : bad_values) {
        const kcoro::config cfg{{"bootstrap.servers", "127.0.0.1:1"}, {key, value}};
        expect_config_error([&] { kcoro::producer p(io, cfg); }, kcoro::errc::invalid_config_value, key);
    }
    const std::pair<const char*, const char*> bad_consumer_values[] = {
        {"isolation.level", "dirty"},
        {"session.timeout.ms", "abc"},
        {"enable.auto.commit", "perhaps"},
    };
    for (const auto& [key, value] : bad_consumer_values) {
        const kcoro::config cfg{{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "g"}, {key, value}};
        expect_config_error([&] { kcoro::consumer c(io, cfg); }, kcoro::errc::invalid_config_value, key);
    }
    for (const char* key : {"lingerms", "bootstrap.server", "group id"}) {
        const kcoro::config cfg{{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "g"}, {key, "1"}};
        expect_config_error([&] { kcoro::producer p(io, cfg); }, kcoro::errc::unknown_config_key, key);
        expect_config_error([&] { kcoro::consumer c(io, cfg); }, kcoro::errc::unknown_config_key, key);
    }
    // Properties that conflict: the message names the property to change.
    const kcoro::config acks_conflict{{"bootstrap.servers", "127.0.0.1:1"}, {"acks", "1"}};
    try {
        kcoro::producer p(io, acks_conflict);
        FAIL("idempotence with acks=1 accepted");
    } catch (const kcoro::error& e) {
        CHECK(std::string(e.what()).find("acks") != std::string::npos);
    }
    // A consumer without a group cannot exist in librdkafka 2.0: said up front.
    const kcoro::config no_group{{"bootstrap.servers", "127.0.0.1:1"}};
    try {
        kcoro::consumer c(io, no_group);
        FAIL("consumer without group.id accepted");
    } catch (const kcoro::error& e) {
        CHECK(std::string(e.what()).find("group.id") != std::string::npos);
    }
}

TEST_CASE("bad input: empty key and value arrive empty, distinct from null ones") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("empties", 1);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    const kcoro::record empty{.topic = "empties", .key = "", .value = ""};
    const kcoro::record null{.topic = "empties"};
    const kcoro::record_view empty_view("empties", std::string_view{}, std::string_view{});
    // Batches hand runs of records to librdkafka in one call: the same distinction holds there.
    const std::vector<kcoro::record> owned_batch{empty, null};
    const std::vector<kcoro::record_view> view_batch{empty_view, kcoro::record_view("empties", std::nullopt)};
    std::vector<kcoro::delivery_report> reports(2);
    run_bounded(io, [&]() -> asio::awaitable<void> {
        CHECK((co_await producer.send(empty)).offset == 0);
        CHECK((co_await producer.send(null)).offset == 1);
        CHECK((co_await producer.send(empty_view)).offset == 2);
        CHECK(co_await producer.send_batch(owned_batch, reports) == 0);
        CHECK(co_await producer.send_batch(view_batch, reports) == 0);
    });
    const auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "empties", 0, 0, 7);
    REQUIRE(back.size() == 7);
    for (std::size_t i : {0, 2, 3, 5}) {
        CHECK(back[i].key == std::optional<std::string>(""));
        CHECK(back[i].value == std::optional<std::string>(""));
    }
    for (std::size_t i : {1, 4}) {
        CHECK_FALSE(back[i].key.has_value());
        CHECK_FALSE(back[i].value.has_value());
    }
    CHECK_FALSE(back[6].key.has_value());
    CHECK_FALSE(back[6].value.has_value());
}

TEST_CASE("bad input: a negative partition is a typed error naming topic and partition") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("negative", 2);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    const kcoro::record ok{.topic = "negative", .partition = 1, .value = "ok"};
    const kcoro::record bad{.topic = "negative", .partition = -5, .value = "x"};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.send(ok);
        kcoro::delivery accepted = co_await producer.enqueue(ok); // accepted before the failure
        try {
            co_await producer.send(bad);
            FAIL("sent to partition -5");
        } catch (const kcoro::error& e) {
            CHECK((e.code() == kcoro::errc::unknown_partition || e.code() == kcoro::errc::invalid_argument));
            const std::string what = e.what();
            CHECK_MESSAGE(what.find("'negative' partition -5") != std::string::npos, what);
        }
        CHECK((co_await accepted.wait()).offset == 1);
    });
}

TEST_CASE("bad input: headers with NUL, non-UTF-8 bytes, empty and repeated keys arrive byte-exact") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("odd-headers", 1);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    const std::vector<kcoro::header> odd = {
        {"nul", std::string("a\0b\0", 4)},
        {"latin1-\xe9", std::string("\xff\xfe\x80", 3)}, // not UTF-8, in key and value
        {"", std::string("empty key")},
        {"rep", std::string("1")},
        {"rep", std::nullopt},
        {"rep", std::string("")},
    };
    const kcoro::record owned{.topic = "odd-headers", .value = "v", .headers = odd};
    std::vector<kcoro::header_view> odd_views;
    for (const auto& h : odd)
        odd_views.push_back({h.key, h.value ? std::optional<std::string_view>(*h.value) : std::nullopt});
    kcoro::record_view viewed("odd-headers", "v");
    viewed.headers = odd_views;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.send(owned);
        co_await producer.send(viewed);
    });
    const auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "odd-headers", 0, 0, 2);
    CHECK(back[0].headers == odd);
    CHECK(back[1].headers == odd);

    // And through kcoro's consumer.
    kcoro::consumer consumer(io, consumer_config(cluster, "odd-headers"));
    consumer.assign(from_beginning("odd-headers"));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 2; ++i) {
            const kcoro::message m = co_await consumer.receive();
            const auto hs = m.headers();
            REQUIRE(hs.size() == odd.size());
            for (std::size_t j = 0; j < hs.size(); ++j) {
                CHECK(hs[j].key == odd[j].key);
                CHECK(hs[j].value.has_value() == odd[j].value.has_value());
                if (hs[j].value && odd[j].value) CHECK(*hs[j].value == *odd[j].value);
            }
            CHECK(m.last_header("rep") == std::optional<std::optional<std::string_view>>(std::string_view("")));
        }
        co_await consumer.close();
    });
}

TEST_CASE("bad input: a header key with a NUL byte is refused, naming the topic; nothing else is lost") {
    // librdkafka takes header names as C strings: "a\0b" would silently become "a".
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("nul-key", 1);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    const kcoro::record before{.topic = "nul-key", .value = "before"};
    const kcoro::record bad{.topic = "nul-key", .value = "x", .headers = {{std::string("a\0b", 3), "v"}}};
    const kcoro::header_view bad_view_header{std::string_view("k\0", 2), std::nullopt};
    kcoro::record_view bad_view("nul-key", "x");
    bad_view.headers = std::span(&bad_view_header, 1);
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::delivery accepted = co_await producer.enqueue(before); // accepted before the failure
        try {
            co_await producer.send(bad);
            FAIL("a header key with a NUL byte was sent");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::invalid_argument);
            CHECK(std::string(e.what()).find("'nul-key'") != std::string::npos);
        }
        auto [ec, md] = co_await producer.send(bad_view, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::invalid_argument);
        auto [eec, d] = co_await producer.enqueue(bad, asio::as_tuple(asio::deferred));
        CHECK(eec == kcoro::errc::invalid_argument);
        CHECK((co_await accepted.wait()).offset == 0);
        co_await producer.flush(10s);
    });
    const auto back = kcoro::test::read_partition(cluster.bootstrap_servers(), "nul-key", 0, 0, 1);
    CHECK(back[0].value == "before");
}

TEST_CASE("bad input: a closed producer fails every operation with client_closed") {
    kcoro::mock_cluster cluster(1);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    const kcoro::record r{.topic = "closed-p", .value = "v"};
    const kcoro::record_view v("closed-p", "v");
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.close(5s);
        auto [sec, smd] = co_await producer.send(v, asio::as_tuple(asio::deferred));
        CHECK(sec == kcoro::errc::client_closed);
        CHECK(smd.topic == "closed-p");
        auto [eec, d] = co_await producer.enqueue(r, asio::as_tuple(asio::deferred));
        CHECK(eec == kcoro::errc::client_closed);
        CHECK_FALSE(d.valid());
        try {
            co_await producer.enqueue(r);
            FAIL("enqueue on a closed producer succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::client_closed);
            CHECK(std::string(e.what()).find("closed-p") != std::string::npos);
        }
        auto [fec] = co_await producer.flush(1s, asio::as_tuple(asio::deferred));
        CHECK(fec == kcoro::errc::client_closed);
        CHECK(producer.in_flight() == 0);
        CHECK_FALSE(producer.fatal_error());
    });
}

TEST_CASE("bad input: a closed consumer fails every operation with client_closed") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("closed-c", 1);
    asio::io_context io;
    kcoro::consumer consumer(io, consumer_config(cluster, "closed-c"));
    consumer.assign(from_beginning("closed-c"));
    const std::vector<std::string> topics{"closed-c"};
    const kcoro::topic_partition tp{"closed-c", 0};
    const std::vector<kcoro::topic_partition> tps{tp};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await consumer.close();
        auto [rec, m] = co_await consumer.receive(asio::as_tuple(asio::deferred));
        CHECK(rec == kcoro::errc::client_closed);
        try {
            co_await consumer.receive();
            FAIL("receive on a closed consumer succeeded");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::client_closed);
        }
        auto [bec, batch] = co_await consumer.receive_batch(10, 10ms, {}, asio::as_tuple(asio::deferred));
        CHECK(bec == kcoro::errc::client_closed);
        CHECK(batch.empty());
        auto [cec] = co_await consumer.commit(asio::as_tuple(asio::deferred));
        CHECK(cec == kcoro::errc::client_closed);
        auto [oec] = co_await consumer.commit(from_beginning("closed-c"), asio::as_tuple(asio::deferred));
        CHECK(oec == kcoro::errc::client_closed);
        auto [qec, committed] = co_await consumer.committed(tps, 1s, asio::as_tuple(asio::deferred));
        CHECK(qec == kcoro::errc::client_closed);
        auto [wec, w] = co_await consumer.watermark_offsets(tp, 1s, asio::as_tuple(asio::deferred));
        CHECK(wec == kcoro::errc::client_closed);
        co_await consumer.close(); // twice is harmless
    });
    // The synchronous calls throw the same typed error.
    auto expect_closed = [](auto f, const char* what) {
        try {
            f();
            FAIL(what << " on a closed consumer succeeded");
        } catch (const kcoro::error& e) {
            CHECK_MESSAGE(e.code() == kcoro::errc::client_closed, what);
        }
    };
    expect_closed([&] { consumer.subscribe(topics); }, "subscribe");
    expect_closed([&] { consumer.assign(from_beginning("closed-c")); }, "assign");
    expect_closed([&] { consumer.pause(tps); }, "pause");
    expect_closed([&] { (void)consumer.assignment(); }, "assignment");
    expect_closed([&] { (void)consumer.position(tps); }, "position");
}

TEST_CASE("bad input: cancelling receive and receive_batch loses nothing") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("cancel-rx", 1);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster));
    kcoro::consumer consumer(io, consumer_config(cluster, "cancel-rx"));
    consumer.assign(from_beginning("cancel-rx"));
    std::vector<kcoro::record> records;
    for (int i = 0; i < 5; ++i) records.push_back({.topic = "cancel-rx", .value = fmt::format("{}", i)});
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        // A receive waiting on an empty partition.
        asio::cancellation_signal rx_signal;
        kcoro::error_code rx_ec;
        bool rx_done = false;
        consumer.receive(asio::bind_cancellation_slot(rx_signal.slot(), [&](kcoro::error_code ec, kcoro::message) {
            rx_ec = ec;
            rx_done = true;
        }));
        co_await sleep_for(50ms);
        CHECK_FALSE(rx_done);
        rx_signal.emit(asio::cancellation_type::terminal);
        co_await sleep_for(10ms);
        CHECK(rx_done);
        CHECK(rx_ec == asio::error::operation_aborted);

        // A batch that has some messages and waits for more: cancelled, its messages go
        // back to the buffer and the next receive_batch gets them all, in order.
        CHECK(co_await producer.send_batch(records, reports) == 0);
        asio::cancellation_signal batch_signal;
        kcoro::error_code batch_ec;
        bool batch_done = false;
        consumer.receive_batch(100, 30s, {}, asio::bind_cancellation_slot(batch_signal.slot(),
                                                                             [&](kcoro::error_code ec, std::vector<kcoro::message> got) {
                                                                                 batch_ec = ec;
                                                                                 CHECK(got.empty());
                                                                                 batch_done = true;
                                                                             }));
        co_await sleep_for(200ms); // the five records are fetched into the waiting batch
        CHECK_FALSE(batch_done);
        batch_signal.emit(asio::cancellation_type::terminal);
        co_await sleep_for(10ms);
        CHECK(batch_done);
        CHECK(batch_ec == asio::error::operation_aborted);
        auto again = co_await consumer.receive_batch(100, 1s);
        REQUIRE(again.size() == 5);
        for (int i = 0; i < 5; ++i) CHECK(again[static_cast<std::size_t>(i)].value() == fmt::format("{}", i));
        co_await consumer.close();
    });
}

TEST_CASE("bad input: cancelling flush and commit ends the wait; nothing accepted is lost") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("cancel-flush", 1);
    // The consumer's cluster answers slowly, so its commit is still pending when cancelled.
    kcoro::mock_cluster slow(1);
    slow.create_topic("cancel-commit", 1);
    slow.set_round_trip_time(1, 400ms);
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster), {.on_error = [](const kcoro::client_error&) {}});
    kcoro::consumer consumer(io, consumer_config(slow, "cancel-commit"));
    consumer.assign(from_beginning("cancel-commit"));
    const kcoro::record r{.topic = "cancel-flush", .value = "held"};
    const std::vector<kcoro::partition_offset> offsets{{"cancel-commit", 0, 0}};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.send(r); // the producer knows the partition and its leader
        cluster.broker_down(1);
        co_await sleep_for(100ms); // the mock cluster applies it asynchronously
        kcoro::delivery held = co_await producer.enqueue(r); // accepted before the failure

        // A flush waiting for a delivery that cannot happen yet.
        asio::cancellation_signal flush_signal;
        kcoro::error_code flush_ec;
        bool flush_done = false;
        producer.flush(kcoro::producer::no_timeout,
                       asio::bind_cancellation_slot(flush_signal.slot(), [&](kcoro::error_code ec) {
                           flush_ec = ec;
                           flush_done = true;
                       }));
        co_await sleep_for(100ms);
        CHECK_FALSE(flush_done);
        flush_signal.emit(asio::cancellation_type::terminal);
        co_await sleep_for(20ms);
        CHECK(flush_done);
        CHECK(flush_ec == asio::error::operation_aborted);

        // A commit waiting for the slow coordinator.
        asio::cancellation_signal commit_signal;
        kcoro::error_code commit_ec;
        bool commit_done = false;
        consumer.commit(offsets, asio::bind_cancellation_slot(commit_signal.slot(), [&](kcoro::error_code ec) {
                            commit_ec = ec;
                            commit_done = true;
                        }));
        co_await sleep_for(50ms);
        CHECK_FALSE(commit_done);
        commit_signal.emit(asio::cancellation_type::terminal);
        co_await sleep_for(20ms);
        CHECK(commit_done);
        CHECK(commit_ec == asio::error::operation_aborted);

        // The record held back is still delivered once the broker is back.
        cluster.broker_up(1);
        const auto md = co_await held.wait();
        CHECK(md.offset == 1);
        co_await producer.close(10s);
        co_await consumer.close();
    }, 60s);
}

TEST_CASE("bad input: cancelling close ends the wait; the close still completes every operation") {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("cancel-close", 1);
    cluster.broker_down(1); // nothing can be delivered
    asio::io_context io;
    kcoro::producer producer(io, producer_config(cluster), {.on_error = [](const kcoro::client_error&) {}});
    const kcoro::record r{.topic = "cancel-close", .value = "stuck"};
    int completed = 0;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 10; ++i) producer.send(r, [&](kcoro::error_code, kcoro::record_metadata) { ++completed; });
        asio::cancellation_signal signal;
        kcoro::error_code close_ec;
        bool close_done = false;
        producer.close(1s, asio::bind_cancellation_slot(signal.slot(), [&](kcoro::error_code ec) {
                           close_ec = ec;
                           close_done = true;
                       }));
        co_await sleep_for(50ms);
        signal.emit(asio::cancellation_type::terminal);
        co_await sleep_for(20ms);
        CHECK(close_done);
        CHECK(close_ec == asio::error::operation_aborted);
        // The close goes on and keeps its deadline: every send completes.
        auto [ec] = co_await producer.close(10s, asio::as_tuple(asio::deferred));
        CHECK(ec == kcoro::errc::timed_out);
        co_await sleep_for(50ms);
        CHECK(completed == 10);
        const kcoro::record late{.topic = "cancel-close", .value = "late"};
        auto [lec, lmd] = co_await producer.send(late, asio::as_tuple(asio::deferred));
        CHECK(lec == kcoro::errc::client_closed);
    }, 30s);
}

TEST_CASE("bad input: a broker address that refuses connections: typed errors, bounded waits") {
    // Nothing listens on port 1 of loopback.
    asio::io_context io;
    kcoro::producer producer(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"delivery.timeout.ms", "800"}, {"log_level", "0"}},
                             {.on_error = [](const kcoro::client_error&) {}});
    kcoro::consumer consumer(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"group.id", "refused"}, {"log_level", "0"}});
    const kcoro::record r{.topic = "nowhere", .key = "k1", .value = "v"};
    std::vector<kcoro::record> batch(3, r);
    std::vector<kcoro::delivery_report> reports(batch.size());
    const std::vector<kcoro::topic_partition> tps{{"nowhere", 0}};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        try {
            co_await producer.send(r);
            FAIL("delivered to a refused address");
        } catch (const kcoro::error& e) {
            CHECK(e.code() == kcoro::errc::message_timed_out);
            CHECK(std::string(e.what()).find("'nowhere'") != std::string::npos);
        }
        auto [bec, failed] = co_await producer.send_batch(batch, reports, asio::as_tuple(asio::deferred));
        CHECK(bec == kcoro::errc::message_timed_out);
        CHECK(failed == 3);
        for (const auto& rep : reports) {
            CHECK(rep.error == kcoro::errc::message_timed_out);
            CHECK(rep.metadata.topic == "nowhere");
            CHECK(rep.metadata.offset == -1); // not librdkafka's -1001
        }
        auto [fec] = co_await producer.flush(1s, asio::as_tuple(asio::deferred));
        CHECK_FALSE(fec); // nothing left to flush: every record has its outcome
        // The consumer's queries are bounded by their timeouts.
        auto [qec, offs] = co_await consumer.committed(tps, 500ms, asio::as_tuple(asio::deferred));
        CHECK(qec);
        auto [wec, w] = co_await consumer.watermark_offsets(tps[0], 500ms, asio::as_tuple(asio::deferred));
        CHECK(wec);
        co_await producer.close(1s);
        co_await consumer.close();
    }, 30s);
}
