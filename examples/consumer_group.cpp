// consumer_group: a consumer group member that prints records and commits after processing.
//
//   consumer_group [--bootstrap HOST:PORT] [--topic NAME] [--group ID] [--demo N] [-X key=value ...]
//
// Prints "topic/partition@offset key=... value=..." for each record. Offsets are stored
// only once a record is processed (mark_done) and committed every second and before a
// partition is revoked, so a member that crashes leaves its partitions to the others at
// the first record it had not finished: at-least-once. Start several with the same
// --group to watch the partitions being shared; stop one with Ctrl-C (it leaves the group
// cleanly) and the others take its partitions over.
//
// Without --bootstrap an embedded mock cluster stands in for Kafka and --demo N (default
// 10) records are produced to it first, so the example runs with no broker.

#include <kcoro/kcoro.hpp>
#include <kcoro/consumer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct options {
    std::optional<std::string> bootstrap;
    std::string topic = "orders";
    std::string group = "consumer-group-example";
    int demo = 10;
    kcoro::config extra;
};

[[noreturn]] void usage(int status) {
    std::fputs("usage: consumer_group [--bootstrap HOST:PORT] [--topic NAME] [--group ID] [--demo N]\n"
               "                      [-X key=value ...]\n"
               "  Joins the group, prints each record, commits after processing. Without\n"
               "  --bootstrap it runs against an embedded mock cluster holding N demo records\n"
               "  and exits once it has read them.\n",
               status == 0 ? stdout : stderr);
    std::exit(status);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "consumer_group: {} needs a value\n", arg);
                usage(2);
            }
            return argv[++i];
        };
        if (arg == "--bootstrap")
            o.bootstrap = value();
        else if (arg == "--topic")
            o.topic = value();
        else if (arg == "--group")
            o.group = value();
        else if (arg == "--demo")
            o.demo = std::atoi(value().c_str());
        else if (arg == "-X") {
            const std::string kv = value();
            const auto eq = kv.find('=');
            if (eq == std::string::npos) usage(2);
            o.extra.set(kv.substr(0, eq), kv.substr(eq + 1));
        } else if (arg == "--help" || arg == "-h")
            usage(0);
        else {
            fmt::print(stderr, "consumer_group: unknown argument {}\n", arg);
            usage(2);
        }
    }
    return o;
}

// (Built outside coroutines: GCC 12 miscompiles initializer lists inside them.)
kcoro::config producer_config(const std::string& bootstrap) { return {{"bootstrap.servers", bootstrap}}; }
std::vector<std::string> one(const std::string& s) { return {s}; }

asio::awaitable<void> produce_demo(const std::string& bootstrap, const std::string& topic, int n) {
    kcoro::producer producer(co_await asio::this_coro::executor, producer_config(bootstrap));
    for (int i = 0; i < n; ++i) {
        const kcoro::record r{.topic = topic, .key = fmt::format("order-{}", i), .value = fmt::format("{} EUR", i * 10)};
        co_await producer.send(r);
    }
    co_await producer.close();
}

// The application's work for one record.
void process(const kcoro::message& m) {
    fmt::print("{} key={} value={}\n", m, m.key().value_or("(null)"), m.value().value_or("(null)"));
}

asio::awaitable<void> run(const options& o, kcoro::config conf, int stop_after) {
    auto ex = co_await asio::this_coro::executor;
    kcoro::consumer* self = nullptr;
    kcoro::consumer_options copts{
        // Before partitions go to another member, commit what was processed.
        .on_rebalance = [&](kcoro::rebalance_event e) -> asio::awaitable<void> {
            fmt::print(stderr, "consumer_group: {} {} partition(s)\n",
                       e.type == kcoro::rebalance_event::kind::assigned ? "assigned" : "losing", e.partitions.size());
            if (e.type == kcoro::rebalance_event::kind::revoked) {
                auto [ec] = co_await self->commit(asio::as_tuple(asio::deferred));
                if (ec) fmt::print(stderr, "consumer_group: commit before revocation: {}\n", ec.message());
            }
        },
        .store_offsets_after_processing = true,
    };
    kcoro::consumer consumer(ex, conf, std::move(copts));
    self = &consumer;
    consumer.subscribe(one(o.topic));

    // Ctrl-C / SIGTERM: close() ends the receive below and leaves the group cleanly.
    asio::signal_set signals(ex, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) asio::co_spawn(ex, consumer.close(), asio::detached);
    });

    int seen = 0;
    std::vector<kcoro::message> batch;
    while (stop_after < 0 || seen < stop_after) {
        auto [ec, got] = co_await consumer.receive_batch(500, 1s, std::move(batch), asio::as_tuple(asio::deferred));
        if (ec == asio::error::operation_aborted || ec == kcoro::errc::client_closed) break; // closing
        if (ec) {
            fmt::print(stderr, "consumer_group: {}\n", ec.message());
            continue;
        }
        for (const auto& m : got) {
            process(m);
            consumer.mark_done(m); // stored now, committed by auto-commit (or on revocation/close)
        }
        seen += static_cast<int>(got.size());
        batch = std::move(got);
    }
    batch.clear();
    signals.cancel();
    co_await consumer.close(); // final commit, leave the group (harmless after Ctrl-C's close)
}

} // namespace

int main(int argc, char** argv) {
    const options o = parse(argc, argv);
    std::optional<kcoro::mock_cluster> mock;
    std::string bootstrap;
    if (o.bootstrap) {
        bootstrap = *o.bootstrap;
    } else {
        mock.emplace(1);
        mock->create_topic(o.topic, 3);
        bootstrap = mock->bootstrap_servers();
    }
    kcoro::config conf{{"bootstrap.servers", bootstrap},
                       {"group.id", o.group},
                       {"auto.offset.reset", "earliest"},
                       {"auto.commit.interval.ms", "1000"}};
    for (const auto& [k, v] : o.extra.entries()) conf.set(k, v);

    asio::io_context io;
    int status = 0;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        if (mock) co_await produce_demo(bootstrap, o.topic, o.demo);
        co_await run(o, conf, mock ? o.demo : -1);
    }, [&](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                fmt::print(stderr, "consumer_group: {}\n", ex.what());
            }
            status = 1;
        }
        io.stop();
    });
    io.run();
    return status;
}
