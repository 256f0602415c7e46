// kcoro producer benchmark: raw librdkafka against kcoro, in one process, alternating.
//
//   producer_bench [--messages N] [--rounds R] [--coroutines C] [--bootstrap host:port]
//                  [--property key=value]...   (librdkafka properties for every client)
//                  [--only raw|raw-window|batch|coroutines] (profiling: one path; ratios then meaningless)
//
// Each round runs, in turn:
//   raw        librdkafka's C API: rd_kafka_produce with RD_KAFKA_MSG_F_COPY, dr_msg_cb,
//              rd_kafka_poll on QUEUE_FULL, then rd_kafka_flush. Run twice per round,
//              with the default queue.buffering.max.messages and with 1,000,000; the
//              faster counts (raw at its best).
//   raw-window the same, but never more than C records outstanding (rd_kafka_poll until
//              a report frees one): raw at the coroutines path's concurrency, a reference
//              printed apart (raw_window_msgs_per_s); the ratios above use raw at its best.
//   batch      kcoro, one coroutine: send_batch over chunks of the records, a window of
//              chunks in flight, waiting for room on QUEUE_FULL.
//   coroutines kcoro, C coroutines (10,000 by default) each looping on
//              co_await producer.send(record) until N records are sent.
// Throughputs are medians over the rounds. 100-byte values, no keys, one topic with one
// partition on librdkafka's embedded mock cluster unless --bootstrap is given. The same
// properties for every client (idempotence on, as kcoro's default).
//
// Heap allocations: the global operator new (all forms) and aligned_alloc are replaced
// below and counted. A path's count covers its steady state (from 20% to 80% of its
// records), divided by the records sent in that window; the worse path is reported.
// p50/p99: the latency of one co_await producer.send() in the coroutines path (every
// 32nd send is timed: clock reads are slow on some VMs).
//
// The last line printed is the JSON result.
#include "allocation_counter.hpp"

#include <kcoro/kcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
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
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

// ---- the benchmark ---------------------------------------------------------------------

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

struct options {
    std::size_t messages = 1'000'000;
    int rounds = 3;
    int coroutines = 10'000;
    std::string bootstrap; // empty: embedded mock cluster
    std::vector<std::pair<std::string, std::string>> properties;
    std::string only; // profiling aid: run one path ("raw", "raw-window", "batch", "coroutines")
};

std::vector<std::pair<std::string, std::string>> g_extra_properties;

const std::string topic_name = "kcoro-bench";
const std::string payload(100, 'x');

// The properties every client gets: kcoro's defaults made explicit for raw librdkafka.
std::vector<std::pair<std::string, std::string>> common_properties(const std::string& bootstrap) {
    std::vector<std::pair<std::string, std::string>> p{
        {"bootstrap.servers", bootstrap}, {"enable.idempotence", "true"}, {"log_level", "3"}};
    p.insert(p.end(), g_extra_properties.begin(), g_extra_properties.end());
    return p;
}

// ---- raw librdkafka ----

struct raw_state {
    std::size_t delivered = 0;
    std::size_t failed = 0;
};

void raw_dr(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* s = static_cast<raw_state*>(opaque);
    if (m->err) ++s->failed;
    ++s->delivered;
}

// `window`: at most that many records outstanding (0: no limit but librdkafka's queue).
double run_raw(const options& o, const std::string& bootstrap, const char* queue_messages, std::size_t window = 0) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [k, v] : common_properties(bootstrap))
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            throw std::runtime_error(errstr);
    if (queue_messages &&
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", queue_messages, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        throw std::runtime_error(errstr);
    raw_state state;
    rd_kafka_conf_set_opaque(conf, &state);
    rd_kafka_conf_set_dr_msg_cb(conf, raw_dr);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) throw std::runtime_error(errstr);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic_name.c_str(), nullptr);

    const auto start = clock_type::now();
    for (std::size_t i = 0; i < o.messages; ++i) {
        // Capped like the coroutines path: wait for a report when `window` are outstanding.
        while (window && i - state.delivered >= window) rd_kafka_poll(rk, 100);
        for (;;) {
            const int r = rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                           const_cast<char*>(payload.data()), payload.size(), nullptr, 0, nullptr);
            if (r == 0) break;
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                throw std::runtime_error(rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 100); // serves delivery reports, which frees room
        }
    }
    while (state.delivered < o.messages) rd_kafka_flush(rk, 1000);
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    if (state.failed) throw std::runtime_error(fmt::format("raw: {} records failed", state.failed));
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return double(o.messages) / seconds;
}

kcoro::config kcoro_config(const std::string& bootstrap) {
    kcoro::config c;
    for (const auto& [k, v] : common_properties(bootstrap)) c.set(k, v);
    return c;
}

// Runs `io` until `done` is set by the path, whose completion also stops `io` (a live
// producer keeps the context busy). One io_context::run(), as in a service: a loop of
// run_one() would empty Asio's per-thread recycling cache at every return.
void run_until(asio::io_context& io, const bool& done) {
    while (!done) {
        io.run();
        io.restart();
    }
}

// ---- kcoro (a): batches from one coroutine ----

struct path_result {
    double msgs_per_s = 0;
    double allocs_per_msg = 0;
};

path_result run_batch(const options& o, const std::string& bootstrap, const std::vector<kcoro::record>& records,
                      std::vector<kcoro::delivery_report>& reports) {
    asio::io_context io;
    kcoro::producer producer(io, kcoro_config(bootstrap));
    constexpr std::size_t chunk = 10'000;
    constexpr std::size_t window = 32; // chunks in flight: more than the local queue holds
    steady_window counter(o.messages);
    std::size_t done = 0, failed = 0, in_flight = 0;
    bool finished = false;
    double seconds = 0;
    asio::steady_timer wake(io);

    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        const auto start = clock_type::now();
        for (std::size_t first = 0; first < o.messages; first += chunk) {
            const std::size_t n = std::min(chunk, o.messages - first);
            std::span<const kcoro::record> part(records.data() + first, n);
            producer.send_batch(part, std::span(reports.data() + first, n), [&, n](kcoro::error_code, std::size_t f) {
                counter.on_done(done, done + n);
                done += n;
                failed += f;
                --in_flight;
                wake.cancel();
            });
            ++in_flight;
            while (in_flight >= window) {
                wake.expires_at(clock_type::time_point::max());
                co_await wake.async_wait(asio::as_tuple(asio::deferred));
            }
        }
        while (in_flight > 0) {
            wake.expires_at(clock_type::time_point::max());
            co_await wake.async_wait(asio::as_tuple(asio::deferred));
        }
        seconds = std::chrono::duration<double>(clock_type::now() - start).count();
        co_await producer.close();
    }, [&](std::exception_ptr e) {
        finished = true;
        io.stop();
        if (e) std::rethrow_exception(e);
    });
    run_until(io, finished);
    if (failed) throw std::runtime_error(fmt::format("batch: {} records failed", failed));
    return {double(o.messages) / seconds, counter.per_message()};
}

// ---- kcoro (b): one coroutine per in-flight record ----

struct coroutines_result : path_result {
    std::vector<std::uint32_t> latencies_ns;
};

void run_coroutines(const options& o, const std::string& bootstrap, coroutines_result& out) {
    asio::io_context io;
    kcoro::producer producer(io, kcoro_config(bootstrap));
    steady_window counter(o.messages);
    std::size_t claimed = 0, done = 0;
    int running = o.coroutines;
    bool finished = false;
    constexpr std::size_t latency_sample = 32;
    out.latencies_ns.reserve(o.messages / latency_sample + 1); // no allocation while sending
    const kcoro::record r{.topic = topic_name, .value = payload};
    const auto start = clock_type::now();
    for (int c = 0; c < o.coroutines; ++c)
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            while (claimed < o.messages) {
                const std::size_t i = claimed++;
                // Clock reads are slow on some VMs: time one send in latency_sample.
                if (i % latency_sample == 0) {
                    const auto t0 = clock_type::now();
                    co_await producer.send(r);
                    out.latencies_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(
                        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count(),
                        UINT32_MAX)));
                } else {
                    co_await producer.send(r);
                }
                counter.on_done(done, done + 1);
                ++done;
            }
        }, [&](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
            if (--running == 0) {
                finished = true;
                io.stop();
            }
        });
    run_until(io, finished);
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    out.msgs_per_s = double(o.messages) / seconds;
    out.allocs_per_msg = counter.per_message();
    bool closed = false;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> { co_await producer.close(); }, [&](std::exception_ptr) {
        closed = true;
        io.stop();
    });
    run_until(io, closed);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(fmt::format("{} needs a value", a));
            return argv[++i];
        };
        if (a == "--messages") o.messages = std::stoul(value());
        else if (a == "--rounds") o.rounds = std::stoi(value());
        else if (a == "--coroutines") o.coroutines = std::stoi(value());
        else if (a == "--bootstrap") o.bootstrap = value();
        else if (a == "--only") o.only = value();
        else if (a == "--property") {
            const std::string kv = value();
            const auto eq = kv.find('=');
            if (eq == std::string::npos) throw std::runtime_error("--property needs key=value");
            o.properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
        }
        else throw std::runtime_error(fmt::format("unknown argument {}", a));
    }
    if (o.messages < 10 || o.rounds < 1 || o.coroutines < 1) throw std::runtime_error("bad arguments");
    return o;
}

} // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    g_extra_properties = o.properties;
    std::unique_ptr<kcoro::mock_cluster> cluster;
    std::string bootstrap = o.bootstrap;
    if (bootstrap.empty()) {
        cluster = std::make_unique<kcoro::mock_cluster>(1);
        cluster->create_topic(topic_name, 1);
        bootstrap = cluster->bootstrap_servers();
    }
    // The records of the batch path, built once: kcoro::record copies its value into
    // librdkafka like raw's RD_KAFKA_MSG_F_COPY.
    std::vector<kcoro::record> records(o.messages, kcoro::record{.topic = topic_name, .value = payload});
    std::vector<kcoro::delivery_report> reports(o.messages);

    std::vector<double> raw, raw_window, batch, coros;
    double batch_allocs = 0, coro_allocs = 0;
    coroutines_result last_coroutines;
    for (int round = 0; round < o.rounds; ++round) {
        const bool all = o.only.empty();
        const double raw_default = all || o.only == "raw" ? run_raw(o, bootstrap, nullptr) : 1;
        const double raw_1m = all || o.only == "raw" ? run_raw(o, bootstrap, "1000000") : 1;
        raw.push_back(std::max(raw_default, raw_1m));
        const double raw_capped = all || o.only == "raw-window" ? run_raw(o, bootstrap, nullptr, o.coroutines) : 1;
        raw_window.push_back(raw_capped);
        const path_result b = all || o.only == "batch" ? run_batch(o, bootstrap, records, reports) : path_result{1, 0};
        batch.push_back(b.msgs_per_s);
        coroutines_result c;
        if (all || o.only == "coroutines") run_coroutines(o, bootstrap, c);
        else c.latencies_ns.assign(1, 0);
        coros.push_back(c.msgs_per_s);
        // Allocation counts: the worst round of each path.
        batch_allocs = std::max(batch_allocs, b.allocs_per_msg);
        coro_allocs = std::max(coro_allocs, c.allocs_per_msg);
        fmt::print(stderr,
                   "round {}: raw {:.0f} msg/s (default queue {:.0f}, 1M queue {:.0f}; at most {} outstanding {:.0f}); "
                   "kcoro batch {:.0f} msg/s ({:.4f} allocs/msg); kcoro {} coroutines {:.0f} msg/s ({:.4f} allocs/msg)\n",
                   round + 1, raw.back(), raw_default, raw_1m, o.coroutines, raw_capped, b.msgs_per_s, b.allocs_per_msg,
                   o.coroutines, c.msgs_per_s, c.allocs_per_msg);
        last_coroutines = std::move(c);
    }
    auto& lat = last_coroutines.latencies_ns;
    std::sort(lat.begin(), lat.end());
    const double p50 = lat[lat.size() / 2] / 1000.0;
    const double p99 = lat[lat.size() * 99 / 100] / 1000.0;
    const double raw_m = median(raw), raw_window_m = median(raw_window), batch_m = median(batch), coro_m = median(coros);
    // The fields, then raw capped at C records outstanding and the coroutines path
    // against it: what kcoro costs at the concurrency the coroutines path has.
    fmt::print("{{\"bench\":\"producer\",\"messages\":{},\"raw_msgs_per_s\":{:.0f},\"kcoro_msgs_per_s\":{:.0f},"
               "\"ratio\":{:.3f},\"coroutines_msgs_per_s\":{:.0f},\"coroutines_ratio\":{:.3f},"
               "\"heap_allocs_per_msg\":{:.4f},\"p50_us\":{:.1f},\"p99_us\":{:.1f},"
               "\"raw_window_msgs_per_s\":{:.0f},\"coroutines_window_ratio\":{:.3f}}}\n",
               o.messages, raw_m, batch_m, batch_m / raw_m, coro_m, coro_m / raw_m, std::max(batch_allocs, coro_allocs),
               p50, p99, raw_window_m, coro_m / raw_window_m);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "producer_bench: %s\n", e.what());
    return 1;
}
