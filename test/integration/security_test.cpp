// Security against a real broker (issue 8): TLS, SASL (SCRAM-SHA-512, PLAIN), ACLs, and
// secrets that never leak. Needs the broker of `scripts/kafka start --secure`, found
// through KCORO_SECURE_ENV (the path of its cluster.env; scripts/test exports it).
//
// The cases are tables (connections that must work, connections that must be refused) that
// every client runs: producer, consumer and admin.
#include <kcoro/consumer.hpp>
#include <kcoro/kcoro.hpp>
#include <kcoro/security.hpp>

#include "test_support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::run_bounded;
using kcoro::test::secure_cluster;
using kcoro::test::unique_topic;

namespace {

const secure_cluster& cluster() { return secure_cluster::get(); }

/// A connection that must work: listener, user, SASL mechanism.
struct connection {
    std::string name;
    std::string listener;
    std::string user;      // empty for SSL (no client authentication)
    std::string mechanism; // empty: the user's own
};

std::vector<connection> round_trips() {
    return {{"SSL", "SSL", "", ""},
            {"SASL_PLAINTEXT SCRAM-SHA-512", "SASL_PLAINTEXT", "scram", "SCRAM-SHA-512"},
            {"SASL_PLAINTEXT PLAIN", "SASL_PLAINTEXT", "plain", "PLAIN"},
            {"SASL_SSL SCRAM-SHA-512", "SASL_SSL", "scram", "SCRAM-SHA-512"},
            {"SASL_SSL PLAIN", "SASL_SSL", "plain", "PLAIN"}};
}

/// A connection the brokers refuse, and the typed error every pending operation must get.
struct refused {
    std::string name;
    std::function<kcoro::config()> make;
    kcoro::errc expected;
};

std::vector<refused> refused_connections() {
    using kcoro::errc;
    return {
        {"SASL_PLAINTEXT SCRAM-SHA-512, wrong password",
         [] { return cluster().client_config("SASL_PLAINTEXT", "scram").set("sasl.password", "not-the-password"); },
         errc::authentication},
        {"SASL_PLAINTEXT PLAIN, wrong password",
         [] { return cluster().client_config("SASL_PLAINTEXT", "plain").set("sasl.password", "not-the-password"); },
         errc::authentication},
        {"SASL_SSL SCRAM-SHA-512, unknown user",
         [] { return cluster().client_config("SASL_SSL", "scram").set("sasl.username", "nobody"); },
         errc::authentication},
        {"SSL, certificate signed by a CA the client does not trust",
         [] { return cluster().client_config("SSL").set("ssl.ca.location", cluster().other_ca_pem()); }, errc::ssl},
        {"SSL, certificate for another host name",
         [] { return cluster().client_config("SSL_WRONGHOST"); }, errc::ssl},
    };
}

std::string allowed_topic(const std::string& what) { return unique_topic(cluster().allowed_prefix() + what); }
std::string allowed_group(const std::string& what) { return unique_topic(cluster().allowed_prefix() + what); }

/// What a producer reported while trying to send `count` records.
struct outcome {
    std::vector<kcoro::error_code> sends;  // one per record, in order
    std::vector<std::string> send_errors;  // e.what() of the throwing form (the last record)
    std::vector<kcoro::error_code> client_errors;
    std::string logs;                      // every log line and client error text
};

/// Sends `count` records to partition 0 of `topic`, all pending together (the first
/// count-1 with callbacks, the last awaited), and waits for every one. The bound of
/// run_bounded is the test of promptness: the default message.timeout.ms is 5 minutes.
outcome produce(const kcoro::config& cfg, const std::string& topic, int count, std::chrono::seconds limit = 60s) {
    outcome out;
    out.sends.resize(static_cast<std::size_t>(count));
    kcoro::producer_options options;
    options.on_log = [&](const kcoro::log_entry& e) { out.logs += fmt::format("{}\n", e); };
    options.on_error = [&](const kcoro::client_error& e) {
        out.client_errors.push_back(e.code);
        out.logs += fmt::format("{}\n", e);
    };
    asio::io_context io;
    kcoro::producer producer(io, cfg, std::move(options));
    std::vector<kcoro::record> records;
    for (int i = 0; i < count; ++i)
        records.push_back({.topic = topic, .partition = 0, .value = fmt::format("secure-{}", i)});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        int done = 0;
        for (int i = 0; i + 1 < count; ++i)
            producer.send(records[static_cast<std::size_t>(i)],
                          [&out, &done, i](kcoro::error_code ec, const kcoro::record_metadata&) {
                              out.sends[static_cast<std::size_t>(i)] = ec;
                              ++done;
                          });
        try {
            co_await producer.send(records.back());
        } catch (const kcoro::error& e) {
            out.sends.back() = e.code();
            out.send_errors.push_back(e.what());
        }
        ++done;
        asio::steady_timer t(io);
        while (done < count) {
            t.expires_after(20ms);
            co_await t.async_wait(asio::use_awaitable);
        }
    }, limit);
    return out;
}

/// What a consumer received: values, or the error that ended the receive.
struct received {
    std::vector<std::string> values;
    kcoro::error_code error;
    std::string error_text;
    std::string logs; // with sinks: every log line and client error text
};

/// Joins `group`, subscribes to `topic` and receives `count` messages from the beginning,
/// or stops at the first error. With `sinks`, log lines and client errors go to out.logs
/// (else the consumer prints them to stderr itself).
received consume(kcoro::config cfg, const std::string& topic, const std::string& group, int count,
                 std::chrono::seconds limit = 60s, bool sinks = false) {
    cfg.set("group.id", group);
    cfg.set("auto.offset.reset", "earliest");
    received out;
    kcoro::consumer_options options;
    if (sinks) {
        options.on_log = [&](const kcoro::log_entry& e) { out.logs += fmt::format("{}\n", e); };
        options.on_error = [&](const kcoro::client_error& e) { out.logs += fmt::format("{}\n", e); };
    }
    asio::io_context io;
    kcoro::consumer consumer(io, cfg, std::move(options));
    consumer.subscribe({topic});
    run_bounded(io, [&]() -> asio::awaitable<void> {
        while (static_cast<int>(out.values.size()) < count) {
            try {
                const kcoro::message m = co_await consumer.receive();
                out.values.emplace_back(m.value().value_or(""));
            } catch (const kcoro::error& e) {
                out.error = e.code();
                out.error_text = e.what();
                break;
            }
        }
        co_await consumer.close(asio::as_tuple(asio::use_awaitable));
    }, limit);
    return out;
}

/// Writes `count` records through the harness's PLAINTEXT listener (a super user).
void seed_topic(const std::string& topic, int count) {
    const kcoro::config cfg{{"bootstrap.servers", cluster().var("KAFKA_BOOTSTRAP")}};
    const auto out = produce(cfg, topic, count);
    for (const auto& ec : out.sends) REQUIRE_MESSAGE(!ec, ec.message());
}

void check_no_secret(const std::string& text, const std::string& where) {
    for (const auto& secret : cluster().secrets()) {
        INFO(where);
        CHECK_MESSAGE(text.find(secret) == std::string::npos, "a password appears in ", where);
    }
}

std::vector<std::string> expected_values(int count) {
    std::vector<std::string> v;
    for (int i = 0; i < count; ++i) v.push_back(fmt::format("secure-{}", i));
    return v;
}

// ---- admin -----------------------------------------------------------------------------

/// What an admin client reported while creating `topic` (2 partitions) and describing it.
struct admin_outcome {
    kcoro::error_code created;
    std::string create_error; // e.what() when create_topic threw
    int partitions = -1;      // from describe_topic once the topic is ready
    std::string logs;         // every log line and client error text
};

admin_outcome create_and_describe(const kcoro::config& cfg, const std::string& topic, std::chrono::seconds limit = 60s) {
    admin_outcome out;
    kcoro::admin_options options;
    options.on_log = [&](const kcoro::log_entry& e) { out.logs += fmt::format("{}\n", e); };
    options.on_error = [&](const kcoro::client_error& e) { out.logs += fmt::format("{}\n", e); };
    asio::io_context io;
    kcoro::admin admin(io, cfg, std::move(options));
    run_bounded(io, [&]() -> asio::awaitable<void> {
        try {
            const kcoro::new_topic t{.name = topic, .partitions = 2};
            co_await admin.create_topic(t);
        } catch (const kcoro::error& e) {
            out.created = e.code();
            out.create_error = e.what();
        }
        if (!out.created) {
            try {
                const auto d = co_await kcoro::test::describe_when_ready(admin, topic);
                out.partitions = static_cast<int>(d.partitions.size());
            } catch (const kcoro::error&) {
                // partitions stays -1
            }
        }
        co_await admin.close(5s, asio::as_tuple(asio::use_awaitable));
    }, limit);
    return out;
}

} // namespace

TEST_CASE("producer and consumer round trip over every secured listener") {
    for (const auto& c : round_trips()) {
        CAPTURE(c.name);
        const kcoro::config cfg = cluster().client_config(c.listener, c.user, c.mechanism);
        const std::string topic = allowed_topic("rt");
        outcome out;
        received back;
        const std::string err = kcoro::test::capture_stderr([&] {
            out = produce(cfg, topic, 3);
            back = consume(cfg, topic, allowed_group("rt"), 3);
        });
        for (const auto& ec : out.sends) CHECK_MESSAGE(!ec, ec.message());
        CHECK(out.client_errors.empty());
        CHECK_MESSAGE(!back.error, back.error_text);
        CHECK(back.values == expected_values(3));
        check_no_secret(out.logs, "logs");
        check_no_secret(err, "stderr");
    }
}

TEST_CASE("admin requests round trip over every secured listener") {
    for (const auto& c : round_trips()) {
        CAPTURE(c.name);
        admin_outcome out;
        const std::string err = kcoro::test::capture_stderr(
            [&] { out = create_and_describe(cluster().client_config(c.listener, c.user, c.mechanism), allowed_topic("admin")); });
        CHECK_MESSAGE(!out.created, out.create_error);
        CHECK(out.partitions == 2);
        check_no_secret(out.logs, "logs");
        check_no_secret(err, "stderr");
    }
}

TEST_CASE("creating a topic without the ACL fails with topic_authorization_failed naming the topic") {
    const std::string topic = unique_topic("kcoro-denied-admin");
    const auto out = create_and_describe(cluster().client_config("SASL_SSL", "scram"), topic);
    CHECK(out.created == kcoro::errc::topic_authorization_failed);
    CHECK_MESSAGE(out.create_error.find(topic) != std::string::npos, out.create_error);
    check_no_secret(out.create_error, "exception");
}

// Without kcoro's handling the request would end only at its request timeout (30 s), as
// timed_out: run_bounded's 20 s bound is the test of promptness.
TEST_CASE("refused connections: a pending admin request fails promptly with the typed error") {
    for (const auto& r : refused_connections()) {
        CAPTURE(r.name);
        admin_outcome out;
        const std::string err =
            kcoro::test::capture_stderr([&] { out = create_and_describe(r.make(), allowed_topic("refused"), 20s); });
        CHECK_MESSAGE(out.created == r.expected, out.created.message(), " ", out.create_error);
        CHECK(out.partitions == -1);
        check_no_secret(out.create_error, "exception");
        check_no_secret(out.logs, "logs");
        check_no_secret(err, "stderr");
    }
}

// The README's example ("Connecting to a secured cluster"), with this cluster's user,
// topic and group names.
asio::awaitable<void> readme_round_trip(std::string bootstrap, std::string ca_pem, std::string password,
                                        std::string user, std::string topic, std::string group_id, std::string& out) {
    kcoro::config cfg{{"bootstrap.servers", bootstrap}};
    kcoro::security::use_sasl_ssl(cfg, {.mechanism = "SCRAM-SHA-512", .username = user, .password = password},
                                  {.ca_location = ca_pem});

    kcoro::producer producer(co_await asio::this_coro::executor, cfg);
    const kcoro::record order{.topic = topic, .value = "order #1001"};
    const kcoro::record_metadata md = co_await producer.send(order);
    co_await producer.close();

    kcoro::config group = cfg;
    group.set("group.id", group_id).set("auto.offset.reset", "earliest");
    kcoro::consumer consumer(co_await asio::this_coro::executor, group);
    consumer.subscribe({topic});
    const kcoro::message m = co_await consumer.receive();
    out = fmt::format("sent {}, read {}: {}", md, m, m.value().value_or(""));
    co_await consumer.close();
}

TEST_CASE("the README's secured round trip works") {
    const auto& k = cluster();
    const std::string topic = allowed_topic("readme");
    std::string out;
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await readme_round_trip(k.bootstrap("SASL_SSL"), k.ca_pem(), k.password("scram"), "scram", topic,
                                   allowed_group("readme"), out);
    }, 90s);
    CHECK(out == fmt::format("sent {}/0@0, read {}/0@0: order #1001", topic, topic));
}

TEST_CASE("the typed helpers of kcoro/security.hpp connect") {
    const auto& k = cluster();
    kcoro::config cfg{{"bootstrap.servers", k.bootstrap("SASL_SSL")}};
    kcoro::security::use_sasl_ssl(cfg, {.mechanism = "SCRAM-SHA-512", .username = "scram", .password = k.password("scram")},
                                  {.ca_location = k.ca_pem()});
    CHECK(cfg.get("security.protocol") == "SASL_SSL");
    CHECK(cfg.get("ssl.endpoint.identification.algorithm") == "https");
    CHECK(fmt::format("{}", cfg).find(k.password("scram")) == std::string::npos);
    const auto out = produce(cfg, allowed_topic("helper"), 1);
    CHECK_MESSAGE(!out.sends[0], out.sends[0].message());

    kcoro::config plain{{"bootstrap.servers", k.bootstrap("SASL_PLAINTEXT")}};
    kcoro::security::use_sasl_plaintext(plain, {.mechanism = "PLAIN", .username = "plain", .password = k.password("plain")});
    const auto out2 = produce(plain, allowed_topic("helper"), 1);
    CHECK_MESSAGE(!out2.sends[0], out2.sends[0].message());

    kcoro::config tls{{"bootstrap.servers", k.bootstrap("SSL")}};
    kcoro::security::use_ssl(tls, {.ca_location = k.ca_pem()});
    const auto out3 = produce(tls, allowed_topic("helper"), 1);
    CHECK_MESSAGE(!out3.sends[0], out3.sends[0].message());

    // Host name verification is on by default: the wrong-host listener is refused.
    kcoro::config wrong{{"bootstrap.servers", k.bootstrap("SSL_WRONGHOST")}};
    kcoro::security::use_ssl(wrong, {.ca_location = k.ca_pem()});
    const auto out4 = produce(wrong, allowed_topic("helper"), 1);
    CHECK(out4.sends[0] == kcoro::errc::ssl);
}

// librdkafka 2.0 retries refused connections for ever and would time queued records out
// after message.timeout.ms (5 minutes by default): kcoro fails them at the first refusal.
TEST_CASE("refused connections: every pending record fails promptly with the typed error") {
    for (const auto& r : refused_connections()) {
        CAPTURE(r.name);
        const kcoro::config cfg = r.make();
        const std::string topic = allowed_topic("refused");
        outcome out;
        const std::string err = kcoro::test::capture_stderr([&] { out = produce(cfg, topic, 5, 60s); });
        for (const auto& ec : out.sends) CHECK_MESSAGE(ec == r.expected, ec.message());
        bool reported = false;
        for (const auto& ec : out.client_errors) reported = reported || ec == r.expected;
        CHECK_MESSAGE(reported, out.logs);
        REQUIRE(out.send_errors.size() == 1);
        // The exception names the topic and says why (librdkafka's text: which broker, what failed).
        CHECK_MESSAGE(out.send_errors[0].find(topic) != std::string::npos, out.send_errors[0]);
        CHECK_MESSAGE(out.send_errors[0].find(r.expected == kcoro::errc::ssl ? "SSL" : "SASL") != std::string::npos,
                      out.send_errors[0]);
        check_no_secret(out.logs, "logs");
        check_no_secret(err, "stderr");
        for (const auto& what : out.send_errors) check_no_secret(what, "exception");
    }
}

TEST_CASE("refused connections: send_batch and enqueue report the typed error for each record") {
    const auto r = refused_connections().front();
    asio::io_context io;
    kcoro::producer producer(io, r.make(), {.on_error = [](const kcoro::client_error&) {}});
    std::vector<kcoro::record> records;
    for (int i = 0; i < 4; ++i) records.push_back({.topic = allowed_topic("batch"), .partition = 0, .value = "x"});
    std::vector<kcoro::delivery_report> reports(records.size());
    run_bounded(io, [&]() -> asio::awaitable<void> {
        auto [ec, failed] = co_await producer.send_batch(records, std::span<kcoro::delivery_report>(reports),
                                                         asio::as_tuple(asio::use_awaitable));
        CHECK(ec == r.expected);
        CHECK(failed == records.size());

        // enqueue(): accepted at once; each delivery then reports the refusal.
        std::vector<kcoro::delivery> pending;
        for (const auto& rec : records) pending.push_back(co_await producer.enqueue(rec));
        for (auto& d : pending) {
            auto [dec, md] = co_await d.async_wait(asio::as_tuple(asio::use_awaitable));
            CHECK_MESSAGE(dec == r.expected, dec.message());
        }
    }, 60s);
    for (const auto& rep : reports) CHECK_MESSAGE(rep.error == r.expected, rep.error.message());
}

TEST_CASE("refused connections: sends waiting for room in a full local queue get the typed error too") {
    // Two records fit in librdkafka's queue; the other ten wait in kcoro for room.
    kcoro::config cfg = refused_connections().front().make();
    cfg.set("queue.buffering.max.messages", "2");
    outcome out;
    const std::string err = kcoro::test::capture_stderr([&] { out = produce(cfg, allowed_topic("full"), 12, 60s); });
    for (const auto& ec : out.sends) CHECK_MESSAGE(ec == kcoro::errc::authentication, ec.message());
    check_no_secret(out.logs, "logs");
    check_no_secret(err, "stderr");
}

TEST_CASE("refused connections: a pending receive fails promptly with the typed error") {
    for (const auto& r : refused_connections()) {
        CAPTURE(r.name);
        received out;
        const std::string err = kcoro::test::capture_stderr(
            [&] { out = consume(r.make(), allowed_topic("refused"), allowed_group("refused"), 1, 60s); });
        CHECK_MESSAGE(out.error == r.expected, out.error.message(), " ", out.error_text);
        CHECK(out.values.empty());
        check_no_secret(out.error_text, "exception");
        check_no_secret(err, "stderr");
    }
}

TEST_CASE("producing without an ACL fails every record with topic_authorization_failed naming the topic") {
    for (const char* user : {"scram", "noacl"}) {
        CAPTURE(std::string(user));
        // "scram" may write only to topics prefixed "sec-"; "noacl" to nothing.
        const std::string topic = unique_topic(std::string("kcoro-denied-") + user);
        const kcoro::config cfg = cluster().client_config("SASL_PLAINTEXT", user);
        const auto out = produce(cfg, topic, 3, 60s);
        for (const auto& ec : out.sends)
            CHECK_MESSAGE(ec == kcoro::errc::topic_authorization_failed, ec.message());
        REQUIRE(out.send_errors.size() == 1);
        CHECK_MESSAGE(out.send_errors[0].find(topic) != std::string::npos, out.send_errors[0]);
        check_no_secret(out.logs, "logs");
    }
}

TEST_CASE("consuming without a topic ACL fails the receive with topic_authorization_failed naming the topic") {
    const std::string topic = unique_topic("kcoro-denied-read");
    seed_topic(topic, 1);
    const auto out = consume(cluster().client_config("SASL_SSL", "scram"), topic, allowed_group("denied"), 1);
    CHECK_MESSAGE(out.error == kcoro::errc::topic_authorization_failed, out.error.message(), " ", out.error_text);
    CHECK_MESSAGE(out.error_text.find(topic) != std::string::npos, out.error_text);
    CHECK(out.values.empty());
}

TEST_CASE("joining a group without the group ACL fails the receive with group_authorization_failed") {
    const std::string topic = allowed_topic("nogroup");
    seed_topic(topic, 1);
    const std::string group = unique_topic("kcoro-denied-group");
    const auto out = consume(cluster().client_config("SASL_PLAINTEXT", "scram"), topic, group, 1);
    CHECK_MESSAGE(out.error == kcoro::errc::group_authorization_failed, out.error.message(), " ", out.error_text);
    CHECK_MESSAGE(out.error_text.find(group) != std::string::npos, out.error_text);
    CHECK(out.values.empty());
}

TEST_CASE("secrets never appear in formatted configs or config errors") {
    const auto& k = cluster();
    for (const char* listener : {"SASL_PLAINTEXT", "SASL_SSL"})
        for (const char* user : {"admin", "scram", "plain", "noacl"}) {
            const kcoro::config cfg = k.client_config(listener, user);
            check_no_secret(fmt::format("{}", cfg), "fmt of config");
            check_no_secret(cfg.describe(), "describe()");
            CHECK(cfg.describe().find("sasl.password=[redacted]") != std::string::npos);
        }

    // Properties librdkafka rejects, or values it rejects, with a secret value: the error
    // names the key and never echoes the value (for the producer and the consumer).
    const std::string secret = k.password("scram");
    const std::vector<kcoro::config::entry> bad = {
        {"sasl.passwrod", secret}, // a typo: unknown key
        {"ssl.key.pem", "-----BEGIN PRIVATE KEY-----\n" + secret + "\n-----END PRIVATE KEY-----\n"},
        {"ssl.key.password", secret},
        {"sasl.oauthbearer.config", "principal=" + secret},
        {"ssl.keystore.password", secret},
        {"ssl.keystore.location", "/nonexistent/" + secret + ".p12"},
    };
    for (const auto& [key, value] : bad) {
        CAPTURE(key);
        kcoro::config cfg = k.client_config("SASL_SSL", "scram");
        cfg.set(key, value);
        if (kcoro::config::is_secret(key)) check_no_secret(fmt::format("{}", cfg), "fmt of config");
        asio::io_context io;
        const std::string err = kcoro::test::capture_stderr([&] {
            try {
                kcoro::producer p(io, cfg);
            } catch (const kcoro::error& e) {
                check_no_secret(e.what(), "producer config error");
            }
            try {
                kcoro::config c = cfg;
                c.set("group.id", allowed_group("conf"));
                kcoro::consumer consumer(io, c);
            } catch (const kcoro::error& e) {
                check_no_secret(e.what(), "consumer config error");
            }
        });
        check_no_secret(err, "stderr");
    }
    // The unknown key is named.
    try {
        kcoro::config cfg = k.client_config("SASL_SSL", "scram");
        cfg.set("sasl.passwrod", secret);
        asio::io_context io;
        kcoro::producer p(io, cfg);
        FAIL("an unknown key was accepted");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::unknown_config_key);
        CHECK(std::string(e.what()).find("sasl.passwrod") != std::string::npos);
    }
}

TEST_CASE("librdkafka's debug logs and kcoro's stderr output never show a password") {
    for (const auto& c : round_trips()) {
        if (c.user.empty()) continue;
        CAPTURE(c.name);
        kcoro::config cfg = cluster().client_config(c.listener, c.user, c.mechanism);
        cfg.set("debug", "generic,broker,security,protocol,conf");
        cfg.set("log_level", "7");
        outcome out;
        received read;
        const std::string topic = allowed_topic("debug");
        const std::string err = kcoro::test::capture_stderr([&] {
            out = produce(cfg, topic, 1);
            read = consume(cfg, topic, allowed_group("debug"), 1, 60s, true);
        });
        CHECK_MESSAGE(!out.sends[0], out.sends[0].message());
        CHECK_MESSAGE(!read.error, read.error_text);
        CHECK(out.logs.find("SASL") != std::string::npos); // the capture works: it saw the handshake
        CHECK(read.logs.find("SASL") != std::string::npos);
        check_no_secret(out.logs, "debug logs");
        check_no_secret(read.logs, "consumer debug logs");
        check_no_secret(err, "stderr");

        // Without sinks the producer and the consumer print to stderr themselves; with a
        // wrong password (which contains the right one) they print the refusals.
        kcoro::config wrong = cfg;
        wrong.set("sasl.password", "also-a-secret-" + cluster().password(c.user));
        received back;
        const std::string err2 = kcoro::test::capture_stderr([&] {
            asio::io_context io;
            kcoro::producer p(io, wrong);
            const kcoro::record r{.topic = allowed_topic("debug"), .partition = 0, .value = "x"};
            run_bounded(io, [&]() -> asio::awaitable<void> {
                auto [ec, md] = co_await p.send(r, asio::as_tuple(asio::use_awaitable));
                CHECK(ec == kcoro::errc::authentication);
            }, 60s);
            back = consume(wrong, allowed_topic("debug"), allowed_group("debug"), 1);
        });
        CHECK(back.error == kcoro::errc::authentication);
        CHECK(err2.find("SASL") != std::string::npos);
        check_no_secret(err2, "stderr without a log sink");
        check_no_secret(back.error_text, "consumer exception");
    }
}
