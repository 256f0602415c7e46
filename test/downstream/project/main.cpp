// Sends one record with co_await producer.send() on the embedded mock cluster.
#include <kcoro/kcoro.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <fmt/format.h>

#include <exception>

namespace asio = boost::asio;

int main() {
    kcoro::mock_cluster cluster(1);
    cluster.create_topic("downstream", 1);
    asio::io_context io;
    kcoro::producer producer(io, {{"bootstrap.servers", cluster.bootstrap_servers()}});
    int status = 1;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        const kcoro::record r{.topic = "downstream", .key = "k", .value = "from a downstream project"};
        const kcoro::record_metadata md = co_await producer.send(r);
        fmt::print("delivered to {}\n", md);
        co_await producer.close();
        status = (md.topic == "downstream" && md.offset == 0) ? 0 : 1;
    }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
    io.run();
    return status;
}
