// Transactions against a real Kafka broker: transaction markers, read_committed, fencing,
// and the exactly-once echo service killed with SIGKILL and restarted.
#include <kcoro/kcoro.hpp>

#include "test_support.hpp"

#include <librdkafka/rdkafka.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace asio = boost::asio;
using namespace std::chrono_literals;
using kcoro::test::real_bootstrap;
using kcoro::test::run_bounded;
using kcoro::test::unique_topic;

namespace {

// ---- raw librdkafka helpers: the oracle is not the code under test ----------------------------

struct rk_deleter {
    void operator()(rd_kafka_t* rk) const noexcept { rd_kafka_destroy(rk); }
};
using rk_ptr = std::unique_ptr<rd_kafka_t, rk_deleter>;

rk_ptr make_raw(rd_kafka_type_t type, const std::vector<std::pair<std::string, std::string>>& props) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] : props)
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            throw std::runtime_error(fmt::format("{}: {}", k, errstr));
    rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!rk) throw std::runtime_error(errstr);
    return rk_ptr(rk);
}

void create_topic(const std::string& name, int partitions) {
    rk_ptr rk = make_raw(RD_KAFKA_PRODUCER, {{"bootstrap.servers", real_bootstrap()}, {"log_level", "3"}});
    char errstr[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(name.c_str(), partitions, 1, errstr, sizeof errstr);
    if (!nt) throw std::runtime_error(errstr);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk.get());
    rd_kafka_CreateTopics(rk.get(), &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30'000);
    std::string failure;
    if (!ev) {
        failure = "CreateTopics timed out";
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t** res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        if (n != 1 || rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_NO_ERROR)
            failure = n == 1 ? rd_kafka_err2str(rd_kafka_topic_result_error(res[0])) : "no result";
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    if (!failure.empty()) throw std::runtime_error(fmt::format("create topic {}: {}", name, failure));
}

struct read_record {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    std::string key;
    std::string value;
};

// Everything in the topic up to its end (the last stable offset for read_committed).
std::vector<read_record> read_all(const std::string& topic, int partitions, const std::string& isolation,
                                  std::chrono::seconds limit = 60s) {
    rk_ptr rk = make_raw(RD_KAFKA_CONSUMER, {{"bootstrap.servers", real_bootstrap()},
                                             {"group.id", unique_topic("it-reader")},
                                             {"enable.auto.commit", "false"},
                                             {"enable.partition.eof", "true"},
                                             {"isolation.level", isolation},
                                             {"log_level", "3"}});
    rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    const rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) throw std::runtime_error(rd_kafka_err2str(err));
    std::vector<read_record> out;
    std::set<std::int32_t> at_end;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (static_cast<int>(at_end.size()) < partitions) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error(fmt::format("reading {} did not reach its end within {}s", topic, limit.count()));
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_end.insert(m->partition);
        } else if (!m->err) {
            at_end.erase(m->partition);
            out.push_back({m->partition, m->offset,
                           m->key ? std::string(static_cast<const char*>(m->key), m->key_len) : std::string(),
                           m->payload ? std::string(static_cast<const char*>(m->payload), m->len) : std::string()});
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk.get());
    return out;
}

kcoro::config txn_config(const std::string& id) {
    return {{"bootstrap.servers", real_bootstrap()},
            {"transactional.id", id},
            {"transaction.timeout.ms", "10000"},
            {"linger.ms", "5"},
            {"log_level", "3"}};
}

template <class F>
asio::awaitable<kcoro::error> expect_error(F op) {
    try {
        co_await op();
    } catch (const kcoro::error& e) {
        co_return e;
    }
    throw std::runtime_error("expected a kcoro::error");
}

// ---- the echo service as a child process ---------------------------------------------------------

std::string echo_binary() {
    const char* path = std::getenv("KCORO_EXACTLY_ONCE_ECHO");
    if (!path || !*path)
        throw std::runtime_error("KCORO_EXACTLY_ONCE_ECHO is not set (meson test sets it to the example's path)");
    return path;
}

class service {
public:
    service(std::vector<std::string> args, std::filesystem::path log) : args_(std::move(args)), log_(std::move(log)) {}
    service(const service&) = delete;
    service& operator=(const service&) = delete;
    ~service() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    void start() {
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        std::vector<char*> argv;
        const std::string binary = echo_binary();
        argv.push_back(const_cast<char*>(binary.c_str()));
        for (auto& a : args_) argv.push_back(a.data());
        argv.push_back(nullptr);
        const int rc = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) throw std::runtime_error(fmt::format("spawn {}: {}", binary, std::strerror(rc)));
        ++starts_;
    }

    /// Sends `sig` and waits for the process; returns its wait status.
    int stop(int sig) {
        ::kill(pid_, sig);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
        pid_ = -1;
        exited_status_ = status;
        return false;
    }

    int starts() const noexcept { return starts_; }
    std::optional<int> exited_status() const noexcept { return exited_status_; }
    std::string log_tail() const {
        std::ifstream in(log_);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string s = ss.str();
        return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
    }

private:
    std::vector<std::string> args_;
    std::filesystem::path log_;
    pid_t pid_ = -1;
    int starts_ = 0;
    std::optional<int> exited_status_;
};

// Input "n-<i>" becomes "N-<i>": the numbers found in the output, each with its count.
std::map<int, int> numbers_in(const std::vector<read_record>& records) {
    std::map<int, int> seen;
    for (const auto& r : records) {
        REQUIRE(r.value.rfind("N-", 0) == 0);
        seen[std::stoi(r.value.substr(2))]++;
    }
    return seen;
}

asio::awaitable<void> produce_numbers(kcoro::producer& producer, const std::string& topic, int first, int count) {
    std::vector<kcoro::record> records;
    for (int i = first; i < first + count; ++i)
        records.push_back(kcoro::record{.topic = topic, .key = fmt::format("k{}", i), .value = fmt::format("n-{}", i)});
    std::vector<kcoro::delivery_report> reports(records.size());
    const std::size_t failed = co_await producer.send_batch(records, reports);
    REQUIRE(failed == 0);
}

} // namespace

TEST_CASE("exactly-once echo: every input record appears exactly once in the output despite SIGKILLs") {
    constexpr int total = 10'000;
    constexpr int partitions = 4;
    constexpr int kills = 4;
    const std::string input = unique_topic("it-eos-in");
    const std::string output = unique_topic("it-eos-out");
    const std::string group = unique_topic("it-eos-group");
    create_topic(input, partitions);
    create_topic(output, partitions);

    const unsigned seed = std::random_device{}();
    MESSAGE("random seed ", seed);
    std::mt19937 random(seed);
    const auto log_dir = std::filesystem::temp_directory_path();

    // Two instances share the group (so kills cause rebalances); each has its own id.
    auto args_for = [&](const std::string& id) {
        return std::vector<std::string>{"--bootstrap", real_bootstrap(), "--input", input, "--output", output,
                                        "--group", group, "--transactional-id", id, "--batch", "50",
                                        // A killed member is noticed after 6 s (the broker's minimum).
                                        "-C", "session.timeout.ms=6000", "-C", "heartbeat.interval.ms=500",
                                        "-P", "transaction.timeout.ms=10000", "-P", "linger.ms=5"};
    };
    std::vector<std::unique_ptr<service>> services;
    for (const char* name : {"a", "b"}) {
        const std::string id = fmt::format("{}-{}", group, name);
        services.push_back(std::make_unique<service>(
            args_for(id), log_dir / fmt::format("kcoro-eos-{}-{}-{}.log", ::getpid(), group, name)));
    }
    auto logs = [&] {
        std::string all;
        for (auto& s : services) all += fmt::format("--- service log ---\n{}\n", s->log_tail());
        return all;
    };

    asio::io_context io;
    kcoro::producer input_producer(io, {{"bootstrap.servers", real_bootstrap()}, {"linger.ms", "5"}});
    constexpr int chunk = total / (kills + 1);
    int produced = 0;
    auto produce_chunk = [&] {
        run_bounded(io, [&]() -> asio::awaitable<void> { co_await produce_numbers(input_producer, input, produced, chunk); });
        produced += chunk;
    };

    // Blocks until the output holds every number produced so far (read_committed), bounded.
    auto wait_for_output = [&](std::chrono::seconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            const auto seen = numbers_in(read_all(output, partitions, "read_committed"));
            if (static_cast<int>(seen.size()) >= produced) return;
            INFO(logs());
            for (auto& s : services) REQUIRE(s->running());
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(500ms);
        }
    };

    produce_chunk();
    for (auto& s : services) s->start();
    int killed = 0;
    for (int round = 0; round < kills; ++round) {
        // The group has settled and caught up; then a new chunk, and a kill at a random
        // point while it is being processed (in the middle of a transaction, mostly).
        wait_for_output(60s);
        produce_chunk();
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(20, 400)(random)));
        auto& victim = *services[std::uniform_int_distribution<std::size_t>(0, services.size() - 1)(random)];
        INFO(logs());
        REQUIRE(victim.running());
        const int status = victim.stop(SIGKILL);
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
        ++killed;
        victim.start();
    }
    CHECK(produced == total);
    CHECK(killed >= 3);

    wait_for_output(120s);
    std::map<int, int> seen;
    // A clean stop, then the final word: exactly once each.
    for (auto& s : services) {
        const int status = s->stop(SIGTERM);
        INFO(logs());
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    const auto records = read_all(output, partitions, "read_committed");
    seen = numbers_in(records);
    int missing = 0, duplicated = 0;
    for (int i = 0; i < total; ++i) {
        auto it = seen.find(i);
        if (it == seen.end())
            ++missing;
        else if (it->second != 1)
            ++duplicated;
    }
    INFO(logs());
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    CHECK(records.size() == static_cast<std::size_t>(total));
    CHECK(seen.size() == static_cast<std::size_t>(total));
    // What the killed instances had written in transactions they never committed is there,
    // aborted, for read_uncommitted readers only.
    const auto everything = read_all(output, partitions, "read_uncommitted");
    CHECK(everything.size() >= records.size());
    MESSAGE(fmt::format("{} records of aborted transactions in the output", everything.size() - records.size()));
    run_bounded(io, [&]() -> asio::awaitable<void> { co_await input_producer.close(); });
}

TEST_CASE("read_committed consumers never see aborted transactions; read_uncommitted ones do") {
    const std::string topic = unique_topic("it-tx-abort");
    create_topic(topic, 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(unique_topic("it-tx-abort-id")));
    std::vector<kcoro::record> committed, aborted_scope, aborted_explicit;
    for (int i = 0; i < 5; ++i) {
        committed.push_back(kcoro::record{.topic = topic, .partition = 0, .value = fmt::format("committed-{}", i)});
        aborted_scope.push_back(kcoro::record{.topic = topic, .partition = 0, .value = fmt::format("scope-{}", i)});
        aborted_explicit.push_back(kcoro::record{.topic = topic, .partition = 0, .value = fmt::format("abort-{}", i)});
    }
    std::vector<kcoro::delivery_report> reports(5);

    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.init_transactions();
        // A body that throws: aborted, although every record was delivered.
        bool thrown = false;
        try {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
                co_await tx.send_batch(aborted_scope, reports);
                throw std::runtime_error("changed my mind");
            });
        } catch (const std::runtime_error&) {
            thrown = true;
        }
        CHECK(thrown);
        co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
            co_await tx.send_batch(committed, reports);
        });
        // The lower-level form, aborted explicitly.
        kcoro::transaction tx = co_await producer.begin_transaction();
        co_await tx.send_batch(aborted_explicit, reports);
        co_await tx.abort();
        co_await producer.close();
    });

    std::vector<std::string> values_committed, values_uncommitted;
    for (const auto& r : read_all(topic, 1, "read_committed")) values_committed.push_back(r.value);
    for (const auto& r : read_all(topic, 1, "read_uncommitted")) values_uncommitted.push_back(r.value);
    std::vector<std::string> expected_committed, expected_all;
    for (const auto& r : aborted_scope) expected_all.push_back(*r.value);
    for (const auto& r : committed) {
        expected_all.push_back(*r.value);
        expected_committed.push_back(*r.value);
    }
    for (const auto& r : aborted_explicit) expected_all.push_back(*r.value);
    CHECK(values_committed == expected_committed);
    CHECK(values_uncommitted == expected_all);
}

TEST_CASE("two producers with one transactional.id: the older is fenced and refuses further use") {
    const std::string topic = unique_topic("it-tx-fence");
    create_topic(topic, 1);
    const std::string id = unique_topic("it-tx-fence-id");
    asio::io_context io;
    kcoro::producer older(io, txn_config(id),
                          {.on_log = [](const kcoro::log_entry&) {}, .on_error = [](const kcoro::client_error&) {}});
    kcoro::producer newer(io, txn_config(id));
    const kcoro::record r1{.topic = topic, .partition = 0, .value = "older"};
    const kcoro::record r2{.topic = topic, .partition = 0, .value = "newer"};

    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await older.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r1); });
        co_await newer.init_transactions(); // fences `older`
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await older.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r1); });
        });
        CHECK(e.code() == kcoro::errc::fenced);
        CHECK(kcoro::is_fatal(e.code()));
        const kcoro::error again = co_await expect_error([&]() -> asio::awaitable<void> {
            co_await older.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r1); });
        });
        CHECK(again.code() == kcoro::errc::fenced);
        auto [sec, md] = co_await older.send(r1, asio::as_tuple(asio::deferred));
        CHECK(sec == kcoro::errc::fenced);
        CHECK(older.fatal_error());
        // The newer one works.
        co_await newer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> { co_await tx.send(r2); });
        co_await older.close(2s, asio::as_tuple(asio::deferred));
        co_await newer.close();
    });
    std::vector<std::string> values;
    for (const auto& r : read_all(topic, 1, "read_committed")) values.push_back(r.value);
    CHECK(values == std::vector<std::string>{"older", "newer"});
}

TEST_CASE("a commit waiting for deliveries does not deadlock a single-threaded io_context (real broker)") {
    const std::string topic = unique_topic("it-tx-single");
    create_topic(topic, 1);
    asio::io_context io(1);
    auto props = txn_config(unique_topic("it-tx-single-id"));
    props.set("queue.buffering.max.messages", "1000"); // enqueue waits for room: the executor must keep going
    kcoro::producer producer(io, props);
    constexpr int count = 20'000;
    std::vector<kcoro::record> records;
    for (int i = 0; i < count; ++i)
        records.push_back(kcoro::record{.topic = topic, .partition = 0, .value = fmt::format("r-{}", i)});
    std::vector<kcoro::delivery> deliveries;
    run_bounded(
        io,
        [&]() -> asio::awaitable<void> {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
                for (const auto& r : records) deliveries.push_back(co_await tx.enqueue(r));
            });
            for (auto& d : deliveries) CHECK(d.ready());
            co_await producer.close();
        },
        180s);
    CHECK(read_all(topic, 1, "read_committed").size() == count);
}

TEST_CASE("a transactional producer refuses to send outside a transaction, and nothing is written") {
    const std::string topic = unique_topic("it-tx-outside");
    create_topic(topic, 1);
    asio::io_context io;
    kcoro::producer producer(io, txn_config(unique_topic("it-tx-outside-id")));
    const kcoro::record r{.topic = topic, .partition = 0, .value = "stray"};
    run_bounded(io, [&]() -> asio::awaitable<void> {
        co_await producer.init_transactions();
        const kcoro::error e = co_await expect_error([&]() -> asio::awaitable<void> { co_await producer.send(r); });
        CHECK(e.code() == kcoro::errc::not_in_transaction);
        CHECK(std::string(e.what()).find(topic) != std::string::npos);
        co_await producer.close();
    });
    CHECK(read_all(topic, 1, "read_uncommitted").empty());
}
