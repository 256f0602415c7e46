// echo_producer: turns lines of standard input into Kafka records.
//
//   echo_producer [--bootstrap HOST:PORT] [--topic NAME] [-X key=value ...]
//
// Each line becomes one record; a line "key<TAB>value" sets the record's key. Each
// delivery prints "topic/partition@offset". Without --bootstrap, an embedded mock
// cluster (librdkafka's, in this process) stands in for Kafka, so no broker is needed.
//
// Standard input is read on a thread of its own (a blocking read must not stall the
// executor, and regular files cannot be waited on with epoll); each line is handed to
// the executor, which sends it. At most `max_in_flight` records wait for delivery at
// once, so memory stays bounded however long the input is.

#include <kcoro/kcoro.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <thread>

namespace asio = boost::asio;

namespace {

constexpr std::ptrdiff_t max_in_flight = 10'000;

struct options {
    std::optional<std::string> bootstrap;
    std::string topic = "echo";
    kcoro::config extra;
};

[[noreturn]] void usage(int status) {
    std::fputs("usage: echo_producer [--bootstrap HOST:PORT] [--topic NAME] [-X key=value ...]\n"
               "  Sends each line of standard input as a record (\"key<TAB>value\" sets a key)\n"
               "  and prints topic/partition@offset for each delivery. Without --bootstrap it\n"
               "  runs against an embedded mock cluster.\n",
               status == 0 ? stdout : stderr);
    std::exit(status);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                fmt::print(stderr, "echo_producer: {} needs a value\n", arg);
                usage(2);
            }
            return argv[++i];
        };
        if (arg == "--bootstrap") o.bootstrap = value();
        else if (arg == "--topic") o.topic = value();
        else if (arg == "-X") {
            const std::string kv = value();
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                fmt::print(stderr, "echo_producer: -X expects key=value, got '{}'\n", kv);
                usage(2);
            }
            o.extra.set(kv.substr(0, eq), kv.substr(eq + 1));
        } else if (arg == "-h" || arg == "--help") usage(0);
        else {
            fmt::print(stderr, "echo_producer: unknown argument '{}'\n", arg);
            usage(2);
        }
    }
    if (o.topic.empty()) {
        std::fputs("echo_producer: --topic must not be empty\n", stderr);
        usage(2);
    }
    return o;
}

kcoro::record to_record(const std::string& topic, std::string line) {
    kcoro::record r{.topic = topic};
    if (const auto tab = line.find('\t'); tab != std::string::npos) {
        r.key = line.substr(0, tab);
        line.erase(0, tab + 1);
    }
    r.value = std::move(line);
    return r;
}

int run(const options& opts) {
    std::optional<kcoro::mock_cluster> cluster;
    std::string bootstrap;
    if (opts.bootstrap) {
        bootstrap = *opts.bootstrap;
    } else {
        cluster.emplace(1);
        cluster->create_topic(opts.topic, 3);
        bootstrap = cluster->bootstrap_servers();
        fmt::print(stderr, "echo_producer: no --bootstrap given, using an embedded mock cluster at {}\n", bootstrap);
    }

    kcoro::config props = opts.extra;
    props.set("bootstrap.servers", bootstrap);
    asio::io_context io;
    kcoro::producer producer(io, props);

    std::counting_semaphore<max_in_flight> room(max_in_flight);
    std::size_t delivered = 0, failed = 0;

    auto send_line = [&](std::string line) {
        auto r = std::make_shared<kcoro::record>(to_record(opts.topic, std::move(line)));
        // The record must live until its delivery: the handler keeps it.
        producer.send(*r, [&, r](kcoro::error_code ec, kcoro::record_metadata md) {
            room.release();
            if (ec) {
                ++failed;
                fmt::print(stderr, "echo_producer: {}: {}\n", md, ec.message());
            } else {
                ++delivered;
                fmt::print("{}\n", md);
            }
        });
    };

    // When the input ends, deliver everything and close; run() returns afterwards.
    auto finish = [&] {
        producer.close(std::chrono::seconds(30), [&](kcoro::error_code ec) {
            if (ec) fmt::print(stderr, "echo_producer: close: {}\n", ec.message());
        });
    };

    std::thread reader([&] {
        std::string line;
        while (std::getline(std::cin, line)) {
            room.acquire(); // bounded in-flight records: waits for deliveries
            asio::post(io, [&send_line, l = std::move(line)]() mutable { send_line(std::move(l)); });
        }
        asio::post(io, finish);
    });

    try {
        io.run();
    } catch (...) {
        reader.detach(); // it may be blocked on stdin; the process is ending
        throw;
    }
    reader.join();
    std::fflush(stdout);
    fmt::print(stderr, "echo_producer: {} delivered, {} failed\n", delivered, failed);
    return failed == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    const options opts = parse(argc, argv);
    try {
        return run(opts);
    } catch (const kcoro::error& e) {
        fmt::print(stderr, "echo_producer: {}\n", e.what());
        return 1;
    }
}
