#include "test_support.hpp"

#include <kcoro/error.hpp>

#include <librdkafka/rdkafka.h>

#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <unistd.h>

namespace kcoro::test {

void run_bounded(boost::asio::io_context& io, std::function<boost::asio::awaitable<void>()> main,
                 std::chrono::seconds limit) {
    std::exception_ptr failure;
    bool finished = false;
    boost::asio::steady_timer watchdog(io, limit);
    boost::asio::co_spawn(io, std::move(main), [&](std::exception_ptr e) {
        failure = e;
        finished = true;
        watchdog.cancel();
        // A live client keeps its event wait pending, so run() would not return by itself.
        io.stop();
    });
    bool timed_out = false;
    watchdog.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            timed_out = true;
            io.stop();
        }
    });
    io.run();
    io.restart();
    if (timed_out) throw std::runtime_error(fmt::format("test did not finish within {}s", limit.count()));
    if (!finished) throw std::runtime_error("test coroutine never completed");
    if (failure) std::rethrow_exception(failure);
}

std::vector<consumed> read_partition(const std::string& bootstrap, const std::string& topic, std::int32_t partition,
                                     std::int64_t offset, std::size_t count, std::chrono::seconds limit) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof errstr);
    // librdkafka 2.0's consumer API needs a group even for manual assignment; nothing is committed.
    rd_kafka_conf_set(conf, "group.id", unique_topic("kcoro-test-reader").c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> rk(
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr), &rd_kafka_destroy);
    if (!rk) throw std::runtime_error(errstr);
    std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)> parts(
        rd_kafka_topic_partition_list_new(1), &rd_kafka_topic_partition_list_destroy);
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), partition)->offset = offset;
    if (auto err = rd_kafka_assign(rk.get(), parts.get())) throw std::runtime_error(rd_kafka_err2str(err));

    std::vector<consumed> out;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
        if (!m) continue;
        std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> guard(m, &rd_kafka_message_destroy);
        if (m->err) continue;
        consumed c;
        c.topic = rd_kafka_topic_name(m->rkt);
        c.partition = m->partition;
        c.offset = m->offset;
        if (m->key) c.key.emplace(static_cast<const char*>(m->key), m->key_len);
        if (m->payload) c.value.emplace(static_cast<const char*>(m->payload), m->len);
        c.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char* name;
            const void* val;
            size_t size;
            for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
                header h{name, std::nullopt};
                if (val) h.value.emplace(static_cast<const char*>(val), size);
                c.headers.push_back(std::move(h));
            }
        }
        out.push_back(std::move(c));
    }
    rd_kafka_consumer_close(rk.get());
    if (out.size() < count)
        throw std::runtime_error(fmt::format("read {} of {} records from {}[{}]", out.size(), count, topic, partition));
    return out;
}

std::string unique_topic(const std::string& prefix) {
    static std::atomic<int> counter{0};
    return fmt::format("{}-{}-{}", prefix, ::getpid(), counter++);
}

std::string real_bootstrap() {
    const char* b = std::getenv("KCORO_BOOTSTRAP");
    if (!b || !*b)
        throw std::runtime_error("KCORO_BOOTSTRAP is not set: integration tests need the broker started by "
                                 "scripts/kafka (scripts/test does this)");
    return b;
}

} // namespace kcoro::test
