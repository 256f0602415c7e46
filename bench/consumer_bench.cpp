// kcoro consumer benchmark: raw librdkafka against kcoro, in one process, alternating.
//
//   consumer_bench [--messages N] [--rounds R] [--partitions P] [--bootstrap host:port]
//                  [--property key=value]...   (librdkafka properties for every consumer)
//                  [--only raw|batch|single]   (profiling: one path; ratios then meaningless)
//
// N 100-byte records (1,000,000 by default) are produced once, up front, to a topic of P
// partitions (32: the mock cluster keeps only ~5 MB per partition) on librdkafka's embedded
// mock cluster, or on the broker at --bootstrap (where the topic "kcoro-consumer-bench" must
// exist with P partitions; a topic name is reused, so use a fresh broker or delete it).
// Each round then consumes all of them, from the beginning, with a fresh group each time
// (manual assign), by each path in turn:
//   raw_poll   librdkafka's C API: rd_kafka_consumer_poll, one message per call.
//   raw_batch  librdkafka's C API: rd_kafka_consume_batch_queue on the consumer queue,
//              up to 1,000 messages per call.
//              Each of the two runs with librdkafka's default queued.min.messages and with
//              1,000,000 (see raised_min_messages); "raw" is the fastest of the four in each
//              round (raw at its best).
//   kcoro      co_await consumer.receive_batch(1000, 1s, reuse), one coroutine.
//   single     co_await consumer.receive(), one message per co_await.
//              Both with queued.min.messages=1,000,000 (or what --property sets for all).
// Every path reads each message's value size (so the payload is touched) and releases the
// message. The clock runs from the first message to the last (group and connection set-up
// excluded for every path alike). Throughputs are medians over the rounds.
//
// Heap allocations: the global operator new (all forms) and aligned_alloc are counted (as
// in producer_bench.cpp; librdkafka's own C mallocs are not C++ allocations and are the
// same for every path). A kcoro path's count covers its steady state (20% to 80% of its
// messages), divided by those messages; the worse kcoro path is reported.
//
// The last line printed is the JSON result.
#include "allocation_counter.hpp"

#include <kcoro/kcoro.hpp>
#include <kcoro/consumer.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <librdkafka/rdkafka.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

// ---- the benchmark ---------------------------------------------------------------------

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

struct options {
    std::size_t messages = 1'000'000;
    int rounds = 3;
    // The mock cluster keeps about 5 MB per partition (older records are dropped):
    // 1,000,000 x 100 B need at least 22 partitions.
    int partitions = 32;
    std::string bootstrap; // empty: embedded mock cluster
    std::vector<std::pair<std::string, std::string>> properties;
    std::string only; // profiling aid: "raw", "batch" or "single" (ratios then meaningless)
};

const std::string topic_name = "kcoro-consumer-bench";
// librdkafka 2.0 stops fetching every partition once the consumer queue holds
// queued.min.messages (100,000 by default; one fetch response for 32 partitions holds about
// 290,000 of these records) and looks again only when its broker thread next wakes, up to a
// second later. Whichever path drains the queue fast then idles most of that second: the
// measure would be of that pause, not of the path.
const std::string raised_min_messages = "1000000";
const std::string payload(100, 'x');
int g_group_counter = 0;

bool user_sets(const options& o, const std::string& key) {
    return std::any_of(o.properties.begin(), o.properties.end(), [&](const auto& kv) { return kv.first == key; });
}

// raise_min: queued.min.messages=raised_min_messages, unless --property sets it.
std::vector<std::pair<std::string, std::string>> consumer_properties(const options& o, const std::string& bootstrap,
                                                                     bool raise_min) {
    std::vector<std::pair<std::string, std::string>> p{
        {"bootstrap.servers", bootstrap},
        {"group.id", fmt::format("kcoro-consumer-bench-{}-{}", ::getpid(), g_group_counter++)},
        {"enable.auto.commit", "false"},
        {"log_level", "3"}};
    if (raise_min && !user_sets(o, "queued.min.messages")) p.emplace_back("queued.min.messages", raised_min_messages);
    p.insert(p.end(), o.properties.begin(), o.properties.end());
    return p;
}

rd_kafka_topic_partition_list_t* all_partitions(const options& o) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(o.partitions);
    for (int p = 0; p < o.partitions; ++p)
        rd_kafka_topic_partition_list_add(list, topic_name.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    return list;
}

std::vector<kcoro::partition_offset> all_partition_offsets(const options& o) {
    std::vector<kcoro::partition_offset> v;
    for (int p = 0; p < o.partitions; ++p) v.push_back({topic_name, p, kcoro::offsets::beginning});
    return v;
}

void produce_all(const options& o, const std::string& bootstrap) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    static std::atomic<std::size_t> failed{0};
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void*) {
        if (m->err) failed.fetch_add(1);
    });
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) throw std::runtime_error(errstr);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic_name.c_str(), nullptr);
    for (std::size_t i = 0; i < o.messages; ++i) {
        const auto partition = static_cast<std::int32_t>(i % static_cast<std::size_t>(o.partitions));
        while (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, const_cast<char*>(payload.data()),
                                payload.size(), nullptr, 0, nullptr) != 0) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                throw std::runtime_error(rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 100);
        }
    }
    while (rd_kafka_outq_len(rk) > 0) rd_kafka_flush(rk, 1000);
    if (failed.load()) throw std::runtime_error(fmt::format("produce: {} records failed", failed.load()));
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
}

// ---- raw librdkafka ----

double run_raw(const options& o, const std::string& bootstrap, bool batch, bool raise_min) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] : consumer_properties(o, bootstrap, raise_min))
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            throw std::runtime_error(errstr);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) throw std::runtime_error(errstr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t* parts = all_partitions(o);
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk);

    std::size_t got = 0, bytes = 0;
    clock_type::time_point start{};
    std::vector<rd_kafka_message_t*> msgs(1000);
    // Bounded: a stalled run fails instead of hanging. The clock is read once per batch or
    // per 1,024 messages only (it is slow on these VMs), so raw is not slowed by the check.
    auto last_progress = clock_type::now();
    std::size_t errors = 0;
    const auto check_stall = [&] {
        if (clock_type::now() - last_progress > std::chrono::seconds(20))
            throw std::runtime_error(fmt::format("raw: stalled at {} of {} messages ({} errors)", got, o.messages, errors));
    };
    while (got < o.messages) {
        if (batch) {
            const ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs.data(), msgs.size());
            if (n < 0) throw std::runtime_error(rd_kafka_err2str(rd_kafka_last_error()));
            const std::size_t before = got;
            for (ssize_t i = 0; i < n; ++i) {
                rd_kafka_message_t* m = msgs[static_cast<std::size_t>(i)];
                if (!m->err) {
                    if (got == 0) start = clock_type::now();
                    bytes += m->len;
                    ++got;
                } else if (++errors < 5) {
                    fmt::print(stderr, "raw: {}\n", rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
            }
            if (got != before)
                last_progress = clock_type::now();
            else
                check_stall();
        } else {
            rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
            if (!m) {
                check_stall();
                continue;
            }
            if (!m->err) {
                if (got == 0) start = clock_type::now();
                bytes += m->len;
                ++got;
                if ((got & 1023) == 0) last_progress = clock_type::now();
            } else {
                if (++errors < 5) fmt::print(stderr, "raw: {}\n", rd_kafka_message_errstr(m));
                check_stall();
            }
            rd_kafka_message_destroy(m);
        }
    }
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    if (bytes != o.messages * payload.size()) throw std::runtime_error("raw: wrong byte count");
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return double(o.messages - 1) / seconds;
}

// ---- kcoro ----

struct path_result {
    double msgs_per_s = 0;
    double allocs_per_msg = 0;
};

kcoro::config kcoro_config(const options& o, const std::string& bootstrap) {
    kcoro::config c;
    for (const auto& [k, v] : consumer_properties(o, bootstrap, true)) c.set(k, v);
    return c;
}

path_result run_kcoro(const options& o, const std::string& bootstrap, bool batch) {
    asio::io_context io(1);
    path_result out;
    bool done = false;
    std::exception_ptr failure;
    const kcoro::config conf = kcoro_config(o, bootstrap);
    const auto assignment = all_partition_offsets(o);
    // Bounded: with no message for 20 s, the driver below cancels the pending receive (the
    // coroutine's cancellation slot), and the run fails instead of hanging.
    std::size_t got = 0;
    asio::cancellation_signal stop;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        kcoro::consumer consumer(io, conf);
        consumer.assign(assignment);
        steady_window window(o.messages);
        std::size_t bytes = 0;
        clock_type::time_point start{};
        if (batch) {
            std::vector<kcoro::message> b;
            int empty = 0;
            while (got < o.messages) {
                b = co_await consumer.receive_batch(1000, std::chrono::seconds(1), std::move(b));
                if (b.empty() && ++empty > 20) throw std::runtime_error(fmt::format("kcoro: stalled at {}", got));
                if (got == 0 && !b.empty()) start = clock_type::now();
                for (const auto& m : b) bytes += m.value_bytes().size();
                window.on_done(got, got + b.size());
                got += b.size();
            }
            b.clear();
        } else {
            while (got < o.messages) {
                kcoro::message m = co_await consumer.receive();
                if (got == 0) start = clock_type::now();
                bytes += m.value_bytes().size();
                window.on_done(got, got + 1);
                ++got;
            }
        }
        const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
        if (bytes != o.messages * payload.size()) throw std::runtime_error("kcoro: wrong byte count");
        out.msgs_per_s = double(o.messages - 1) / seconds;
        out.allocs_per_msg = window.per_message();
        co_await consumer.close();
    }, asio::bind_cancellation_slot(stop.slot(), [&](std::exception_ptr e) {
        failure = e;
        done = true;
        io.stop(); // the watchdog's timer would keep run() going
    }));
    // The watchdog: a timer on the same context, so that the run is one io_context::run()
    // (as in a service) and Asio's per-thread recycling cache lives through it; a loop of
    // run_one() would empty that cache at every return.
    asio::steady_timer watchdog(io);
    struct watch {
        asio::steady_timer& timer;
        const std::size_t& got;
        const bool& done;
        asio::cancellation_signal& stop;
        std::size_t seen = 0;
        clock_type::time_point last_progress = clock_type::now();

        void arm() {
            timer.expires_after(std::chrono::seconds(1));
            timer.async_wait([this](boost::system::error_code ec) { check(ec); });
        }
        void check(boost::system::error_code ec) {
            if (ec || done) return;
            if (got != seen) {
                seen = got;
                last_progress = clock_type::now();
            } else if (clock_type::now() - last_progress > std::chrono::seconds(20)) {
                stop.emit(asio::cancellation_type::terminal);
                last_progress = clock_type::time_point::max() - std::chrono::hours(1); // once
            }
            arm();
        }
    } watchdog_state{watchdog, got, done, stop};
    watchdog_state.arm();
    io.run();
    if (failure) {
        if (got < o.messages) fmt::print(stderr, "kcoro: stalled at {} of {} messages\n", got, o.messages);
        std::rethrow_exception(failure);
    }
    return out;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(fmt::format("{} needs a value", a));
            return argv[++i];
        };
        if (a == "--messages") o.messages = std::stoul(next());
        else if (a == "--rounds") o.rounds = std::stoi(next());
        else if (a == "--partitions") o.partitions = std::stoi(next());
        else if (a == "--bootstrap") o.bootstrap = next();
        else if (a == "--only") o.only = next();
        else if (a == "--property") {
            const std::string kv = next();
            const auto eq = kv.find('=');
            if (eq == std::string::npos) throw std::runtime_error("--property needs key=value");
            o.properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        } else throw std::runtime_error(fmt::format("unknown argument {}", a));
    }
    if (o.messages < 10 || o.rounds < 1 || o.partitions < 1) throw std::runtime_error("bad arguments");
    // The mock cluster keeps about 5 MiB per partition (librdkafka 2.0's rdkafka_mock.c) and
    // drops older records: ask for more and the consumers would wait for records that are gone.
    constexpr std::size_t mock_records_per_partition = 40'000; // x ~110 B on the log, with headroom
    if (o.bootstrap.empty() && o.messages > mock_records_per_partition * static_cast<std::size_t>(o.partitions))
        throw std::runtime_error(fmt::format("the mock cluster keeps about {} records of 100 B per partition: "
                                             "--messages {} needs --partitions {} or more",
                                             mock_records_per_partition, o.messages,
                                             (o.messages + mock_records_per_partition - 1) / mock_records_per_partition));
    return o;
}

} // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    std::unique_ptr<kcoro::mock_cluster> cluster;
    std::string bootstrap = o.bootstrap;
    if (bootstrap.empty()) {
        cluster = std::make_unique<kcoro::mock_cluster>(1);
        cluster->create_topic(topic_name, o.partitions);
        bootstrap = cluster->bootstrap_servers();
    }
    produce_all(o, bootstrap);
    fmt::print(stderr, "produced {} records to {} partitions\n", o.messages, o.partitions);

    std::vector<double> raw, kbatch, ksingle;
    std::size_t raw_batch_wins = 0, raw_raised_wins = 0;
    double allocs = 0;
    for (int round = 0; round < o.rounds; ++round) {
        const bool all = o.only.empty();
        const bool run_raw_paths = all || o.only == "raw";
        // Raw at its best: each API with librdkafka's default queued.min.messages and raised.
        const double rp_default = run_raw_paths ? run_raw(o, bootstrap, false, false) : 1;
        const double rp_raised = run_raw_paths ? run_raw(o, bootstrap, false, true) : 1;
        const double rb_default = run_raw_paths ? run_raw(o, bootstrap, true, false) : 1;
        const double rb_raised = run_raw_paths ? run_raw(o, bootstrap, true, true) : 1;
        const double rp = std::max(rp_default, rp_raised), rb = std::max(rb_default, rb_raised);
        raw.push_back(std::max(rp, rb));
        if (rb > rp) ++raw_batch_wins;
        if (std::max(rp_raised, rb_raised) > std::max(rp_default, rb_default)) ++raw_raised_wins;
        const path_result b = all || o.only == "batch" ? run_kcoro(o, bootstrap, true) : path_result{1, 0};
        const path_result s = all || o.only == "single" ? run_kcoro(o, bootstrap, false) : path_result{1, 0};
        kbatch.push_back(b.msgs_per_s);
        ksingle.push_back(s.msgs_per_s);
        allocs = std::max({allocs, b.allocs_per_msg, s.allocs_per_msg});
        fmt::print(stderr,
                   "round {}: raw consumer_poll {:.0f} msg/s (default queued.min.messages {:.0f}, raised {:.0f}), "
                   "raw consume_batch_queue {:.0f} msg/s (default {:.0f}, raised {:.0f}); kcoro receive_batch {:.0f} "
                   "msg/s ({:.4f} allocs/msg); kcoro receive {:.0f} msg/s ({:.4f} allocs/msg)\n",
                   round + 1, rp, rp_default, rp_raised, rb, rb_default, rb_raised, b.msgs_per_s, b.allocs_per_msg,
                   s.msgs_per_s, s.allocs_per_msg);
    }
    fmt::print(stderr,
               "raw at its best: rd_kafka_consume_batch_queue won {} of {} rounds, the raised queued.min.messages "
               "{} of {}\n",
               raw_batch_wins, o.rounds, raw_raised_wins, o.rounds);
    const double raw_m = median(raw), batch_m = median(kbatch), single_m = median(ksingle);
    fmt::print("{{\"bench\":\"consumer\",\"messages\":{},\"raw_msgs_per_s\":{:.0f},\"kcoro_msgs_per_s\":{:.0f},"
               "\"ratio\":{:.3f},\"kcoro_single_msgs_per_s\":{:.0f},\"single_ratio\":{:.3f},"
               "\"heap_allocs_per_msg\":{:.4f}}}\n",
               o.messages, raw_m, batch_m, batch_m / raw_m, single_m, single_m / raw_m, allocs);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "consumer_bench: %s\n", e.what());
    return 1;
}
