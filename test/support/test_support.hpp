// Helpers shared by kcoro's tests.
#pragma once

#include <kcoro/admin.hpp>
#include <kcoro/config.hpp>
#include <kcoro/record.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kcoro::test {

/// True when LeakSanitizer checks this process (scripts/sanitize address).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool leak_checked = true;
#else
inline constexpr bool leak_checked = false;
#endif

/// While alive, LeakSanitizer ignores what this thread allocates, and everything those
/// allocations keep alive. Only for a client whose construction is where librdkafka
/// 2.0.2 allocates an object it later leaks (each use says which); kcoro's own leaks
/// stay visible everywhere else.
class librdkafka_leak_exempt {
public:
    librdkafka_leak_exempt() noexcept;
    ~librdkafka_leak_exempt();
    librdkafka_leak_exempt(const librdkafka_leak_exempt&) = delete;
    librdkafka_leak_exempt& operator=(const librdkafka_leak_exempt&) = delete;
};

/// Runs the coroutine `main()` on `io` until it finishes; fails (throws) if it takes
/// longer than `limit`, so a broken test never hangs the suite. Rethrows what it threw.
/// `main` is a callable (not an awaitable) so that co_spawn keeps a lambda's captures
/// alive for as long as its coroutine runs.
void run_bounded(boost::asio::io_context& io, std::function<boost::asio::awaitable<void>()> main,
                 std::chrono::seconds limit = std::chrono::seconds(60));

/// Waits `d` on the current coroutine's executor, without blocking it.
boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d);

/// describe_topic, retried while it fails with a retriable error (a topic just created
/// reports leader_not_available while its leader is elected), at most 50 times 100 ms
/// apart. Throws kcoro::error with the last error.
boost::asio::awaitable<topic_description> describe_when_ready(admin& client, const std::string& topic);

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
/// (no group), within `limit`. Throws if fewer arrive. `extra` is applied last (e.g.
/// security settings, or a group.id the reader's ACLs allow).
std::vector<consumed> read_partition(const std::string& bootstrap, const std::string& topic, std::int32_t partition,
                                     std::int64_t offset, std::size_t count,
                                     std::chrono::seconds limit = std::chrono::seconds(30),
                                     const kcoro::config& extra = {});

/// A topic name unique to this process and call, so tests never see each other's data.
std::string unique_topic(const std::string& prefix);

/// The bootstrap address of the real broker (KCORO_BOOTSTRAP), or throws: an
/// integration test without a broker fails, it is not skipped.
std::string real_bootstrap();

/// The secure broker started by `scripts/kafka start --secure` (scripts/test exports
/// KCORO_SECURE_ENV, the path of its cluster.env). Throws if it is not there: a security
/// test without the secure broker fails, it is not skipped.
class secure_cluster {
public:
    /// Listeners: "SSL", "SSL_WRONGHOST", "SASL_PLAINTEXT", "SASL_SSL".
    /// Users: "admin" (super user), "scram" (SCRAM-SHA-512), "plain" (PLAIN), "noacl"
    /// (SCRAM-SHA-512 and PLAIN, no ACL); "scram" and "plain" may do anything on topics
    /// and groups named allowed_prefix() + "...".
    static const secure_cluster& get();

    /// A value of cluster.env ("KAFKA_CA_PEM", ...); throws if missing.
    const std::string& var(const std::string& name) const;
    std::string bootstrap(const std::string& listener) const { return var("KAFKA_" + listener + "_BOOTSTRAP"); }
    std::string password(const std::string& user) const;
    std::string ca_pem() const { return var("KAFKA_CA_PEM"); }
    std::string other_ca_pem() const { return var("KAFKA_OTHER_CA_PEM"); }
    std::string allowed_prefix() const { return var("KAFKA_ALLOWED_PREFIX"); }

    /// bootstrap.servers and security settings for `listener` trusting the cluster's CA;
    /// for SASL listeners, `user`'s credentials with `mechanism` (default: the user's own:
    /// PLAIN for "plain", SCRAM-SHA-512 otherwise).
    kcoro::config client_config(const std::string& listener, const std::string& user = {},
                                const std::string& mechanism = {}) const;

    /// Every password in cluster.env: what must never appear in output.
    std::vector<std::string> secrets() const;

private:
    std::map<std::string, std::string> vars_;
};

/// Runs `f` with file descriptor 2 redirected to a temporary file; returns what was
/// written there (by kcoro, librdkafka, or anything else in the process).
std::string capture_stderr(const std::function<void()>& f);

} // namespace kcoro::test
