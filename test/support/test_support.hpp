// Helpers shared by kcoro's tests.
#pragma once

#include <kcoro/record.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kcoro::test {

/// Runs the coroutine `main()` on `io` until it finishes; fails (throws) if it takes
/// longer than `limit`, so a broken test never hangs the suite. Rethrows what it threw.
/// `main` is a callable (not an awaitable) so that co_spawn keeps a lambda's captures
/// alive for as long as its coroutine runs.
void run_bounded(boost::asio::io_context& io, std::function<boost::asio::awaitable<void>()> main,
                 std::chrono::seconds limit = std::chrono::seconds(60));

/// A record as read back with librdkafka's plain consumer API.
struct consumed {
    std::string topic;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    std::optional<std::string> key;
    std::optional<std::string> value;
    std::vector<header> headers;
    std::int64_t timestamp_ms = -1;
};

/// Reads `count` records of one partition from `offset` with a raw librdkafka consumer
/// (no group), within `limit`. Throws if fewer arrive.
std::vector<consumed> read_partition(const std::string& bootstrap, const std::string& topic, std::int32_t partition,
                                     std::int64_t offset, std::size_t count,
                                     std::chrono::seconds limit = std::chrono::seconds(30));

/// A topic name unique to this process and call, so tests never see each other's data.
std::string unique_topic(const std::string& prefix);

/// The bootstrap address of the real broker (KCORO_BOOTSTRAP), or throws: an
/// integration test without a broker fails, it is not skipped.
std::string real_bootstrap();

} // namespace kcoro::test
