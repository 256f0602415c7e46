// The consumer against a real Kafka broker: group coordination, commits accepted during a
// rebalance, offsets_for_times, at-least-once across a crash (a SIGKILLed child process),
// a group spread over three processes. The mock cluster cannot show these faithfully.
#include <kcoro/kcoro.hpp>
#include <kcoro/consumer.hpp>

#include "test_support.hpp"

#include <librdkafka/rdkafka.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::real_bootstrap;
using kcoro::test::run_bounded;
using kcoro::test::unique_topic;

namespace {

kcoro::config group_config(const std::string& bootstrap, const std::string& group) {
    return {{"bootstrap.servers", bootstrap},
            {"group.id", group},
            {"auto.offset.reset", "earliest"},
            {"log_level", "3"},
            // The broker's minimum: a SIGKILLed member is noticed within seconds.
            {"session.timeout.ms", "6000"},
            {"heartbeat.interval.ms", "500"},
            {"topic.metadata.refresh.interval.ms", "1000"}};
}

kcoro::config producer_config() {
    return {{"bootstrap.servers", real_bootstrap()}, {"linger.ms", "5"}, {"acks", "all"}, {"log_level", "3"}};
}

// Creates a topic with raw librdkafka (kcoro has no admin client yet) and waits for it.
void create_topic(const std::string& topic, int partitions) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", real_bootstrap().c_str(), errstr, sizeof errstr);
    std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> rk(
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr), &rd_kafka_destroy);
    REQUIRE(rk);
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, errstr, sizeof errstr);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk.get());
    rd_kafka_CreateTopics(rk.get(), &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000);
    REQUIRE(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    REQUIRE(n == 1);
    CHECK(rd_kafka_topic_result_error(res[0]) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
}

// (Only trivial parameters: GCC 12 may destroy temporaries of a co_await expression twice.)
asio::awaitable<void> produce(const std::string& topic, int count, int partition = -1, int first = 0,
                              std::int64_t ts0_ms = -1) {
    kcoro::producer producer(co_await asio::this_coro::executor, producer_config());
    for (int i = first; i < first + count; ++i) {
        kcoro::record r{.topic = topic, .key = fmt::format("k{}", i), .value = fmt::format("v{}", i)};
        if (partition >= 0) r.partition = partition;
        if (ts0_ms >= 0) r.timestamp = kcoro::timestamp(std::chrono::milliseconds(ts0_ms + 1000 * (i - first)));
        co_await producer.send(r);
    }
    co_await producer.close();
}

std::vector<std::string> one(const std::string& s) { return {s}; }

asio::awaitable<void> wait_until(std::function<bool()> cond) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (!cond()) {
        t.expires_after(20ms);
        co_await t.async_wait(asio::use_awaitable);
    }
}

// ---- child processes: this test binary, started again with KCORO_CONSUMER_CHILD set ----

kcoro::config child_config() {
    return group_config(std::getenv("KCORO_BOOTSTRAP"), std::getenv("KCORO_CHILD_GROUP"));
}

// "alo": receives a batch of 10, processes (marks done) the first 5, commits, says so on
// stdout, then waits to be SIGKILLed in the middle of its batch.
int child_at_least_once() {
    asio::io_context io;
    int rc = 1;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer c(io, child_config(), {.store_offsets_after_processing = true});
        const auto t = one(std::getenv("KCORO_CHILD_TOPIC"));
        c.subscribe(t);
        auto batch = co_await c.receive_batch(10, 30s);
        if (batch.size() != 10) co_return;
        for (std::size_t i = 0; i < 5; ++i) c.mark_done(batch[i]);
        co_await c.commit();
        std::printf("processed %lld\n", static_cast<long long>(batch[4].offset()));
        std::fflush(stdout);
        rc = 0;
        asio::steady_timer forever(io, 120s);
        co_await forever.async_wait(asio::use_awaitable);
    }, asio::detached);
    io.run();
    return rc;
}

// "member": a group member printing "rec <partition> <offset>" per record received and
// "assigned <n>" after each rebalance; SIGTERM makes it close() and exit.
int child_member() {
    asio::io_context io;
    std::unique_ptr<kcoro::consumer> c;
    auto hook = [&](kcoro::rebalance_event e) -> asio::awaitable<void> {
        if (e.type != kcoro::rebalance_event::kind::assigned) co_return;
        std::printf("assigned %zu\n", c->assignment().size());
        std::fflush(stdout);
        co_return;
    };
    c = std::make_unique<kcoro::consumer>(io, child_config(), kcoro::consumer_options{.on_rebalance = hook});
    const auto t = one(std::getenv("KCORO_CHILD_TOPIC"));
    c->subscribe(t);
    asio::signal_set sigs(io, SIGTERM);
    sigs.async_wait([&](boost::system::error_code, int) {
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            co_await c->close();
            std::printf("closed\n");
            std::fflush(stdout);
            io.stop();
        }, asio::detached);
    });
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        std::vector<kcoro::message> batch;
        for (;;) {
            auto [ec, b] = co_await c->receive_batch(100, 200ms, std::move(batch), asio::as_tuple(asio::deferred));
            if (ec) break;
            for (const auto& m : b) std::printf("rec %d %lld\n", m.partition(), static_cast<long long>(m.offset()));
            std::fflush(stdout);
            batch = std::move(b);
        }
    }, asio::detached);
    io.run();
    return 0;
}

struct child_mode {
    child_mode() {
        const char* mode = std::getenv("KCORO_CONSUMER_CHILD");
        if (!mode) return;
        int rc = 2;
        try {
            rc = std::string(mode) == "alo" ? child_at_least_once() : child_member();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
        }
        std::fflush(stdout);
        std::_Exit(rc);
    }
} child_mode_instance;

// A child process whose stdout lines are collected by a thread.
class child {
public:
    child(const std::string& mode, const std::string& group, const std::string& topic) {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        std::vector<std::string> env_strings{"KCORO_CONSUMER_CHILD=" + mode, "KCORO_CHILD_GROUP=" + group,
                                             "KCORO_CHILD_TOPIC=" + topic, "KCORO_BOOTSTRAP=" + real_bootstrap()};
        for (char** e = environ; *e; ++e)
            if (std::string_view(*e).substr(0, 6) != "KCORO_") env_strings.push_back(*e);
        std::vector<char*> envp;
        for (auto& s : env_strings) envp.push_back(s.data());
        envp.push_back(nullptr);
        std::string exe = "/proc/self/exe";
        char* argv[] = {exe.data(), nullptr};
        REQUIRE(::posix_spawn(&pid_, "/proc/self/exe", &actions, nullptr, argv, envp.data()) == 0);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        reader_ = std::thread([this, fd = fds[0]] {
            FILE* in = ::fdopen(fd, "r");
            char line[256];
            while (std::fgets(line, sizeof line, in)) {
                std::lock_guard lock(mutex_);
                std::string s(line);
                if (!s.empty() && s.back() == '\n') s.pop_back();
                lines_.push_back(std::move(s));
            }
            std::fclose(in);
        });
    }
    ~child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            wait();
        }
        if (reader_.joinable()) reader_.join();
    }
    std::vector<std::string> lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }
    std::string last_line(std::string_view prefix) const {
        std::lock_guard lock(mutex_);
        for (auto it = lines_.rbegin(); it != lines_.rend(); ++it)
            if (it->rfind(prefix, 0) == 0) return *it;
        return {};
    }
    bool has_line(std::string_view prefix) const {
        std::lock_guard lock(mutex_);
        return std::any_of(lines_.begin(), lines_.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
    }
    void signal(int sig) { ::kill(pid_, sig); }
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_ = -1;
    std::thread reader_;
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;
};

} // namespace

TEST_CASE("consumer (broker): commits in a revocation hook succeed; the group resumes from them") {
    const std::string topic = unique_topic("it-cgroup");
    const std::string group = unique_topic("it-cgroup-g");
    create_topic(topic, 4);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await produce(topic, 40);
        auto conf = group_config(real_bootstrap(), group);
        conf.set("enable.auto.commit", "false");
        std::vector<kcoro::error_code> revoke_commits;
        kcoro::consumer* a_ptr = nullptr;
        std::size_t a_received = 0;
        auto hook = [&](kcoro::rebalance_event e) -> asio::awaitable<void> {
            if (e.type != kcoro::rebalance_event::kind::revoked) co_return;
            auto [ec] = co_await a_ptr->commit(asio::as_tuple(asio::deferred));
            revoke_commits.push_back(ec);
        };
        kcoro::consumer a(io, conf, {.on_rebalance = hook});
        a_ptr = &a;
        const auto t = one(topic);
        a.subscribe(t);
        for (int i = 0; i < 10; ++i) {
            (void)co_await a.receive();
            ++a_received;
        }
        // A second member joins: A's revocation hook commits what A received, and the broker
        // (unlike the mock cluster) accepts it from the ending generation.
        kcoro::consumer b(io, conf);
        b.subscribe(t);
        asio::cancellation_signal stop_a;
        std::vector<std::vector<kcoro::message>> keep;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec, batch] = co_await a.receive_batch(
                    100, 100ms, {}, asio::bind_cancellation_slot(stop_a.slot(), asio::as_tuple(asio::use_awaitable)));
                if (ec) break;
                a_received += batch.size();
            }
        }, asio::detached);
        co_await wait_until([&] { return !revoke_commits.empty(); });
        CHECK_FALSE(revoke_commits.front());
        // What A committed is what the group resumes from.
        std::vector<kcoro::topic_partition> all;
        for (std::int32_t p = 0; p < 4; ++p) all.push_back({topic, p});
        const auto committed = co_await a.committed(all, 10s);
        std::int64_t sum = 0;
        for (const auto& po : committed) sum += std::max<std::int64_t>(0, po.offset);
        CHECK(sum >= 10);
        stop_a.emit(asio::cancellation_type::terminal);
        co_await a.close();
        co_await b.close();
    }, 120s);
}

TEST_CASE("consumer (broker): offsets_for_times finds the first record at or after a timestamp") {
    const std::string topic = unique_topic("it-times");
    create_topic(topic, 1);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        const kcoro::timestamp t0(std::chrono::milliseconds(1'700'000'000'000));
        co_await produce(topic, 5, 0, 0, t0.time_since_epoch().count()); // t0, t0+1s, ..., t0+4s
        kcoro::consumer c(io, group_config(real_bootstrap(), unique_topic("it-times-g")));
        const auto ms = [&](std::chrono::milliseconds d) { return (t0 + d).time_since_epoch().count(); };
        std::vector<kcoro::partition_offset> q(1);
        q[0] = {topic, 0, ms(2500ms)};
        auto r = co_await c.offsets_for_times(q, 10s);
        REQUIRE(r.size() == 1);
        CHECK(r[0].offset == 3);
        q[0].offset = ms(0ms);
        r = co_await c.offsets_for_times(q, 10s);
        CHECK(r[0].offset == 0);
        q[0].offset = ms(60s);
        r = co_await c.offsets_for_times(q, 10s);
        CHECK(r[0].offset == kcoro::offsets::end);
        // Consuming from the offset found starts at that record.
        q[0].offset = ms(2500ms);
        r = co_await c.offsets_for_times(q, 10s);
        c.assign(r);
        auto m = co_await c.receive();
        CHECK(m.offset() == 3);
        CHECK(m.value() == "v3");
        const kcoro::topic_partition tp0{topic, 0};
        const auto w = co_await c.watermark_offsets(tp0, 10s);
        CHECK(w.low == 0);
        CHECK(w.high == 5);
        m = {};
        co_await c.close();
    }, 120s);
}

TEST_CASE("consumer (broker): at-least-once after processing survives destroying a member mid-batch") {
    const std::string topic = unique_topic("it-alo-d");
    const std::string group = unique_topic("it-alo-d-g");
    create_topic(topic, 1);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await produce(topic, 20, 0);
        auto conf = group_config(real_bootstrap(), group);
        conf.set("auto.commit.interval.ms", "100");
        const auto t = one(topic);
        {
            kcoro::consumer c(io, conf, {.store_offsets_after_processing = true});
            c.subscribe(t);
            auto batch = co_await c.receive_batch(10, 30s);
            REQUIRE(batch.size() == 10);
            for (std::size_t i = 0; i < 6; ++i) c.mark_done(batch[i]);
            // Destroyed without close(), in the middle of its batch: 6..9 were received,
            // never processed.
        }
        kcoro::consumer next(io, conf, {.store_offsets_after_processing = true});
        next.subscribe(t);
        auto m = co_await next.receive();
        CHECK(m.offset() == 6); // nothing processed is redone, nothing unprocessed skipped
        m = {};
        co_await next.close();
    }, 120s);
}

TEST_CASE("consumer (broker): at-least-once after processing survives a SIGKILLed member mid-batch") {
    const std::string topic = unique_topic("it-alo-k");
    const std::string group = unique_topic("it-alo-k-g");
    create_topic(topic, 1);
    asio::io_context io;
    run_bounded(io, [&]() -> asio::awaitable<void> { co_await produce(topic, 20, 0); }, 60s);
    std::int64_t last_processed = -1;
    {
        child victim("alo", group, topic);
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (!victim.has_line("processed ") && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
        const auto lines = victim.lines();
        REQUIRE(!lines.empty());
        last_processed = std::stoll(lines.front().substr(10));
        victim.signal(SIGKILL); // mid-batch: 5..9 received, not processed
        const int status = victim.wait();
        CHECK(WIFSIGNALED(status));
    }
    CHECK(last_processed == 4);
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer next(io, group_config(real_bootstrap(), group), {.store_offsets_after_processing = true});
        const auto t = one(topic);
        next.subscribe(t);
        auto m = co_await next.receive(); // after the dead member's session times out
        CHECK(m.offset() == last_processed + 1);
        m = {};
        co_await next.close();
    }, 120s);
}

TEST_CASE("consumer (broker): a group over three processes shares partitions; a member leaves") {
    const std::string topic = unique_topic("it-procs");
    const std::string group = unique_topic("it-procs-g");
    create_topic(topic, 6);
    asio::io_context io;
    child c1("member", group, topic);
    child c2("member", group, topic);
    std::vector<std::pair<int, std::int64_t>> mine;
    auto records_of = [](const child& c) {
        std::vector<std::pair<int, std::int64_t>> out;
        for (const auto& l : c.lines()) {
            int p;
            long long o;
            if (std::sscanf(l.c_str(), "rec %d %lld", &p, &o) == 2) out.push_back({p, o});
        }
        return out;
    };
    run_bounded(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer me(io, group_config(real_bootstrap(), group));
        const auto t = one(topic);
        me.subscribe(t);
        asio::cancellation_signal stop;
        bool stopped = false;
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec, batch] = co_await me.receive_batch(
                    100, 100ms, {}, asio::bind_cancellation_slot(stop.slot(), asio::as_tuple(asio::use_awaitable)));
                if (ec) break;
                for (const auto& m : batch) mine.push_back({m.partition(), m.offset()});
            }
            stopped = true;
        }, asio::detached);
        // Three members, two partitions each.
        co_await wait_until([&] {
            return me.assignment().size() == 2 && c1.last_line("assigned") == "assigned 2" &&
                   c2.last_line("assigned") == "assigned 2";
        });
        co_await produce(topic, 300);
        const auto total = [&] { return mine.size() + records_of(c1).size() + records_of(c2).size(); };
        co_await wait_until([&] { return total() >= 300; });
        // One member leaves cleanly; the others take its partitions over.
        c2.signal(SIGTERM);
        co_await wait_until([&] { return c2.has_line("closed"); });
        co_await wait_until([&] { return me.assignment().size() == 3 && c1.last_line("assigned") == "assigned 3"; });
        co_await produce(topic, 300, -1, 300);
        co_await wait_until([&] { return total() >= 600; });
        asio::steady_timer settle(io, 1s); // duplicates, if any, would show up now
        co_await settle.async_wait(asio::use_awaitable);
        std::set<std::pair<int, std::int64_t>> seen;
        std::size_t dupes = 0;
        std::vector<std::pair<int, std::int64_t>> everything = mine;
        const auto from_c1 = records_of(c1);
        const auto from_c2 = records_of(c2);
        everything.insert(everything.end(), from_c1.begin(), from_c1.end());
        everything.insert(everything.end(), from_c2.begin(), from_c2.end());
        for (const auto& r : everything) dupes += seen.insert(r).second ? 0 : 1;
        CHECK(dupes == 0);
        CHECK(seen.size() == 600);
        CHECK_FALSE(records_of(c1).empty());
        CHECK_FALSE(records_of(c2).empty());
        CHECK_FALSE(mine.empty());
        stop.emit(asio::cancellation_type::terminal);
        co_await wait_until([&] { return stopped; });
        co_await me.close();
    }, 180s);
    c1.signal(SIGTERM);
    c1.wait();
}
