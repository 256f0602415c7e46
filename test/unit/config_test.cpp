#include <kcoro/config.hpp>
#include <kcoro/error.hpp>
#include <kcoro/producer.hpp>

#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>

TEST_CASE("config keeps librdkafka property names and replaces on set") {
    kcoro::config c{{"bootstrap.servers", "a:1"}, {"linger.ms", "5"}};
    c.set("linger.ms", "10");
    CHECK(c.get("linger.ms") == "10");
    CHECK(c.entries().size() == 2);
    CHECK_FALSE(c.get("acks").has_value());
    CHECK(c.erase("linger.ms"));
    CHECK_FALSE(c.contains("linger.ms"));
}

TEST_CASE("config output redacts secrets") {
    kcoro::config c{{"sasl.username", "alice"},
                    {"sasl.password", "hunter2-secret-value"},
                    {"ssl.key.password", "pem-pass-value"}};
    const std::string shown = fmt::format("{}", c);
    CHECK(shown.find("alice") != std::string::npos);
    CHECK(shown.find("hunter2-secret-value") == std::string::npos);
    CHECK(shown.find("pem-pass-value") == std::string::npos);
    CHECK(shown.find("[redacted]") != std::string::npos);
}

TEST_CASE("an unknown config key is rejected with its name") {
    boost::asio::io_context io;
    try {
        kcoro::producer p(io, {{"bootstrap.servers", "127.0.0.1:1"}, {"no.such.property", "1"}});
        FAIL("the producer accepted an unknown property");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::unknown_config_key);
        CHECK(std::string(e.what()).find("no.such.property") != std::string::npos);
    }
}

TEST_CASE("an invalid config value is rejected with the key's name") {
    boost::asio::io_context io;
    try {
        kcoro::producer p(io, {{"linger.ms", "not-a-number"}});
        FAIL("the producer accepted an invalid value");
    } catch (const kcoro::error& e) {
        CHECK(e.code() == kcoro::errc::invalid_config_value);
        CHECK(std::string(e.what()).find("linger.ms") != std::string::npos);
    }
}

TEST_CASE("errors carry librdkafka's text and classify") {
    const kcoro::error_code ec = kcoro::errc::queue_full;
    CHECK(ec.message().find("Queue full") != std::string::npos);
    CHECK(kcoro::is_retriable(ec));
    CHECK_FALSE(kcoro::is_fatal(ec));
    CHECK(kcoro::is_fatal(kcoro::errc::producer_fenced));
    CHECK_FALSE(kcoro::is_retriable(kcoro::errc::message_too_large));
    CHECK(kcoro::make_error_code(kcoro::errc::unknown_config_key).message() == "unknown configuration property");
    CHECK(fmt::format("{}", kcoro::errc::unknown_topic) == "Local: Unknown topic");
    const kcoro::error e(kcoro::errc::unknown_partition, "send to topic 't' partition 9");
    CHECK(std::string(e.what()).find("partition 9") != std::string::npos);
}

TEST_CASE("every secret-bearing librdkafka property is redacted, and only those") {
    // librdkafka 2.0's sensitive properties (CONFIGURATION.md), and the C-API-only ssl_key.
    for (const char* key : {"sasl.password", "ssl.key.password", "ssl.key.pem", "ssl_key", "ssl.keystore.password",
                            "sasl.oauthbearer.config", "sasl.oauthbearer.client.secret"}) {
        CAPTURE(key);
        CHECK(kcoro::config::is_secret(key));
        const kcoro::config c{{key, "the-secret-value"}};
        CHECK(fmt::format("{}", c) == fmt::format("{}=[redacted]", key));
        CHECK(c.describe().find("the-secret-value") == std::string::npos);
    }
    for (const char* key : {"sasl.username", "sasl.mechanism", "security.protocol", "ssl.ca.location",
                            "ssl.certificate.location", "bootstrap.servers"})
        CHECK_FALSE(kcoro::config::is_secret(key));
}
