// exactly_once_echo: consume-transform-produce, exactly once.
//
//   exactly_once_echo --bootstrap HOST:PORT --input TOPIC --output TOPIC
//                     [--group ID] [--transactional-id ID] [--batch N]
//                     [-P key=value ...] [-C key=value ...]
//
// Reads the input topic as a member of a consumer group, upper-cases each record's value
// and writes it (same key) to the output topic. Each batch of records is one transaction:
// the output records and the input offsets after them are committed together, so a crash
// at any point (kill -9 included) neither loses nor duplicates output, as seen by
// read_committed consumers. A restarted instance with the same --transactional-id fences
// the previous one and aborts whatever transaction it left open. -P and -C pass librdkafka
// properties to the producer and the consumer. SIGINT / SIGTERM stop it cleanly.
//
// Rebalances: a revocation waits for the transaction in progress to end, so offsets of a
// partition are never committed after it moved to another member; records received for a
// partition no longer assigned are dropped (its new owner reads them again). When a
// transaction aborts, the consumer goes back to the committed offsets of its partitions.
// (A record that can never be produced, e.g. one too large for the output topic, would
// make every attempt abort: a real service would divert it to a dead-letter topic.)
//
// Exit status: 0 after SIGINT/SIGTERM, 3 when fenced by a newer instance, 1 on other errors.

#include <kcoro/consumer.hpp>
#include <kcoro/kcoro.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct options {
    std::string bootstrap;
    std::string input;
    std::string output;
    std::string group = "exactly-once-echo";
    std::string transactional_id = "exactly-once-echo";
    std::size_t batch = 500;
    kcoro::config producer_extra;
    kcoro::config consumer_extra;
};

[[noreturn]] void usage(int status) {
    std::fputs("usage: exactly_once_echo --bootstrap HOST:PORT --input TOPIC --output TOPIC\n"
               "                         [--group ID] [--transactional-id ID] [--batch N]\n"
               "                         [-P key=value ...] [-C key=value ...]\n"
               "  Upper-cases each record of the input topic into the output topic, exactly once\n"
               "  (one transaction per batch, input offsets committed with the output).\n"
               "  -P / -C set librdkafka properties of the producer / the consumer.\n",
               status == 0 ? stdout : stderr);
    std::exit(status);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "exactly_once_echo: {} needs a value\n", arg);
                usage(2);
            }
            return argv[++i];
        };
        auto property = [&](kcoro::config& into) {
            const std::string kv = value();
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                fmt::print(stderr, "exactly_once_echo: {} expects key=value, got '{}'\n", arg, kv);
                usage(2);
            }
            into.set(kv.substr(0, eq), kv.substr(eq + 1));
        };
        if (arg == "--bootstrap") o.bootstrap = value();
        else if (arg == "--input") o.input = value();
        else if (arg == "--output") o.output = value();
        else if (arg == "--group") o.group = value();
        else if (arg == "--transactional-id") o.transactional_id = value();
        else if (arg == "--batch") {
            const std::string n = value();
            char* end = nullptr;
            const unsigned long v = std::strtoul(n.c_str(), &end, 10);
            if (n.empty() || *end != '\0' || v == 0 || v > 100'000) {
                fmt::print(stderr, "exactly_once_echo: --batch expects 1..100000, got '{}'\n", n);
                usage(2);
            }
            o.batch = v;
        } else if (arg == "-P") property(o.producer_extra);
        else if (arg == "-C") property(o.consumer_extra);
        else if (arg == "-h" || arg == "--help") usage(0);
        else {
            fmt::print(stderr, "exactly_once_echo: unknown argument '{}'\n", arg);
            usage(2);
        }
    }
    for (auto [name, v] : {std::pair{"--bootstrap", &o.bootstrap}, {"--input", &o.input}, {"--output", &o.output},
                           {"--group", &o.group}, {"--transactional-id", &o.transactional_id}}) {
        if (v->empty()) {
            fmt::print(stderr, "exactly_once_echo: {} is required\n", name);
            usage(2);
        }
    }
    return o;
}

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

/// Lets a rebalance wait until the transaction in progress has ended.
class transaction_gate {
public:
    explicit transaction_gate(asio::any_io_executor ex) : idle_(ex, asio::steady_timer::time_point::max()) {}

    void enter() noexcept { busy_ = true; }
    void leave() {
        busy_ = false;
        idle_.cancel();
    }
    asio::awaitable<void> wait_idle() {
        while (busy_) co_await idle_.async_wait(asio::as_tuple(asio::deferred));
    }

private:
    bool busy_ = false;
    asio::steady_timer idle_; // never expires: leave() cancels the waits
};

struct counters {
    std::size_t records = 0;
    std::size_t transactions = 0;
    std::size_t aborted = 0;
};

// After an abort: the batch's partitions are read again from the group's committed offsets.
asio::awaitable<void> rewind(kcoro::consumer& consumer, const std::vector<kcoro::message>& batch) {
    std::vector<kcoro::topic_partition> parts;
    for (const auto& m : batch) {
        kcoro::topic_partition tp = m.topic_partition();
        if (std::find(parts.begin(), parts.end(), tp) == parts.end()) parts.push_back(std::move(tp));
    }
    const std::vector<kcoro::partition_offset> committed = co_await consumer.committed(parts, 30s);
    const std::vector<kcoro::topic_partition> assigned = consumer.assignment();
    for (const auto& c : committed) {
        const kcoro::topic_partition tp{c.topic, c.partition};
        if (std::find(assigned.begin(), assigned.end(), tp) == assigned.end()) continue; // another member's now
        kcoro::partition_offset to = c;
        if (to.offset < 0) to.offset = kcoro::offsets::beginning; // nothing committed yet (auto.offset.reset)
        consumer.seek(to);
    }
}

asio::awaitable<void> echo(const options& o, const bool& stopping, counters& count) {
    const auto ex = co_await asio::this_coro::executor;

    kcoro::config producer_props = o.producer_extra;
    producer_props.set("bootstrap.servers", o.bootstrap).set("transactional.id", o.transactional_id);
    kcoro::producer producer(ex, producer_props);
    // Fences an older instance with this id and aborts the transaction it left open,
    // before this one reads anything.
    co_await producer.init_transactions();

    kcoro::config consumer_props = o.consumer_extra;
    consumer_props.set("bootstrap.servers", o.bootstrap)
        .set("group.id", o.group)
        .set("enable.auto.commit", "false")     // offsets are committed by the transactions
        .set("isolation.level", "read_committed") // never transform aborted input
        .set("auto.offset.reset", "earliest");
    transaction_gate gate(ex);
    kcoro::consumer_options copts;
    copts.on_rebalance = [&gate](kcoro::rebalance_event e) -> asio::awaitable<void> {
        if (e.type != kcoro::rebalance_event::kind::assigned) co_await gate.wait_idle();
    };
    kcoro::consumer consumer(ex, consumer_props, std::move(copts));
    const std::vector<std::string> topics{o.input};
    consumer.subscribe(topics);
    fmt::print("exactly_once_echo: ready ({} -> {}, transactional.id {})\n", o.input, o.output, o.transactional_id);
    std::fflush(stdout);

    std::vector<kcoro::record> out;
    std::vector<kcoro::delivery_report> reports;
    while (!stopping) {
        std::vector<kcoro::message> batch;
        try {
            batch = co_await consumer.receive_batch(o.batch, 200ms);
        } catch (const kcoro::error& e) {
            if (kcoro::is_fatal(e.code())) throw;
            fmt::print(stderr, "exactly_once_echo: receive: {}\n", e.what());
            continue;
        }
        // A rebalance may have run since these were fetched: keep what is still ours.
        const std::vector<kcoro::topic_partition> assigned = consumer.assignment();
        std::erase_if(batch, [&](const kcoro::message& m) {
            return std::find(assigned.begin(), assigned.end(), m.topic_partition()) == assigned.end();
        });
        if (batch.empty()) continue;

        gate.enter(); // from here until the transaction ended, revocations wait
        out.clear();
        for (const auto& m : batch) {
            kcoro::record r{.topic = o.output};
            if (auto k = m.key()) r.key = std::string(*k);
            if (auto v = m.value()) r.value = upper(*v);
            out.push_back(std::move(r));
        }
        reports.assign(out.size(), kcoro::delivery_report{});
        bool aborted = false;
        try {
            co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
                co_await tx.send_batch(out, reports);
                co_await tx.send_offsets(consumer, batch);
            });
            count.records += batch.size();
            ++count.transactions;
        } catch (const kcoro::error& e) {
            if (kcoro::is_fatal(e.code())) {
                gate.leave();
                throw; // fenced: a newer instance owns this transactional.id
            }
            fmt::print(stderr, "exactly_once_echo: transaction aborted, reading the input again: {}\n", e.what());
            ++count.aborted;
            aborted = true;
        }
        if (aborted) {
            try {
                co_await rewind(consumer, batch);
            } catch (const kcoro::error& e) {
                gate.leave();
                fmt::print(stderr, "exactly_once_echo: cannot rewind the input: {}\n", e.what());
                throw;
            }
        }
        gate.leave();
    }
    co_await consumer.close();
    co_await producer.close();
}

} // namespace

int main(int argc, char** argv) {
    const options opts = parse(argc, argv);
    asio::io_context io;
    bool stopping = false;
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](kcoro::error_code ec, int) {
        if (!ec) stopping = true;
    });
    counters count;
    int status = 0;
    asio::co_spawn(io, echo(opts, stopping, count), [&](std::exception_ptr e) {
        signals.cancel();
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const kcoro::error& err) {
            fmt::print(stderr, "exactly_once_echo: {}\n", err.what());
            status = err.code() == kcoro::errc::fenced ? 3 : 1;
        } catch (const std::exception& err) {
            fmt::print(stderr, "exactly_once_echo: {}\n", err.what());
            status = 1;
        }
    });
    io.run();
    fmt::print(stderr, "exactly_once_echo: {} records echoed in {} transactions ({} aborted)\n", count.records,
               count.transactions, count.aborted);
    return status;
}
