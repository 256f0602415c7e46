#include "test_support.hpp"

#include <kcoro/error.hpp>

#include <librdkafka/rdkafka.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <fcntl.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#if defined(__SANITIZE_THREAD__)
#include <cerrno>
#include <pthread.h>
#include <threads.h>

// librdkafka runs its threads with C11 thrd_create/thrd_join, which glibc 2.34+ implements
// without going through pthread_create/pthread_join: gcc 12's ThreadSanitizer never sees
// those threads start and crashes in their first malloc. These definitions (the
// executable's win over libc's, for librdkafka too) go through the pthread functions,
// which TSan intercepts.
namespace {
struct c11_thread_start {
    thrd_start_t func;
    void* arg;
};
void* run_c11_thread(void* p) {
    const c11_thread_start start = *static_cast<c11_thread_start*>(p);
    delete static_cast<c11_thread_start*>(p);
    return reinterpret_cast<void*>(static_cast<std::intptr_t>(start.func(start.arg)));
}
} // namespace

extern "C" int thrd_create(thrd_t* thread, thrd_start_t func, void* arg) {
    auto* start = new c11_thread_start{func, arg};
    const int rc = pthread_create(thread, nullptr, run_c11_thread, start);
    if (rc == 0) return thrd_success;
    delete start;
    return rc == ENOMEM ? thrd_nomem : thrd_error;
}

// Joins and detaches must be seen too, or TSan takes a reused thread id for a live thread.
extern "C" int thrd_join(thrd_t thread, int* result) {
    void* value = nullptr;
    if (pthread_join(thread, &value) != 0) return thrd_error;
    if (result) *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
    return thrd_success;
}

extern "C" int thrd_detach(thrd_t thread) { return pthread_detach(thread) == 0 ? thrd_success : thrd_error; }

extern "C" void thrd_exit(int result) { pthread_exit(reinterpret_cast<void*>(static_cast<std::intptr_t>(result))); }

// The same for librdkafka's C11 mutexes and condition variables, which glibc implements
// on its internal pthread functions, out of TSan's sight: without these every hand-off
// through librdkafka (a partitioner called on its thread, an event read on ours) would
// look like a race. glibc's mtx_t and cnd_t are its pthread_mutex_t and pthread_cond_t.
namespace {
int c11_result(int rc) {
    switch (rc) {
    case 0: return thrd_success;
    case EBUSY: return thrd_busy;
    case ETIMEDOUT: return thrd_timedout;
    case ENOMEM: return thrd_nomem;
    default: return thrd_error;
    }
}
pthread_mutex_t* native(mtx_t* m) { return reinterpret_cast<pthread_mutex_t*>(m); }
pthread_cond_t* native(cnd_t* c) { return reinterpret_cast<pthread_cond_t*>(c); }
} // namespace

extern "C" int mtx_init(mtx_t* m, int type) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    const int rc = pthread_mutex_init(native(m), &attr);
    pthread_mutexattr_destroy(&attr);
    return c11_result(rc);
}
extern "C" int mtx_lock(mtx_t* m) { return c11_result(pthread_mutex_lock(native(m))); }
extern "C" int mtx_trylock(mtx_t* m) { return c11_result(pthread_mutex_trylock(native(m))); }
extern "C" int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict until) {
    return c11_result(pthread_mutex_timedlock(native(m), until));
}
extern "C" int mtx_unlock(mtx_t* m) { return c11_result(pthread_mutex_unlock(native(m))); }
extern "C" void mtx_destroy(mtx_t* m) { pthread_mutex_destroy(native(m)); }

extern "C" int cnd_init(cnd_t* c) { return c11_result(pthread_cond_init(native(c), nullptr)); }
extern "C" int cnd_signal(cnd_t* c) { return c11_result(pthread_cond_signal(native(c))); }
extern "C" int cnd_broadcast(cnd_t* c) { return c11_result(pthread_cond_broadcast(native(c))); }
extern "C" int cnd_wait(cnd_t* c, mtx_t* m) { return c11_result(pthread_cond_wait(native(c), native(m))); }
extern "C" int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict until) {
    return c11_result(pthread_cond_timedwait(native(c), native(m), until));
}
extern "C" void cnd_destroy(cnd_t* c) { pthread_cond_destroy(native(c)); }
#endif

namespace kcoro::test {

#if defined(__SANITIZE_ADDRESS__)
librdkafka_leak_exempt::librdkafka_leak_exempt() noexcept { __lsan_disable(); }
librdkafka_leak_exempt::~librdkafka_leak_exempt() { __lsan_enable(); }
#else
librdkafka_leak_exempt::librdkafka_leak_exempt() noexcept = default;
librdkafka_leak_exempt::~librdkafka_leak_exempt() = default;
#endif

boost::asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, d);
    co_await timer.async_wait(boost::asio::deferred);
}

boost::asio::awaitable<topic_description> describe_when_ready(admin& client, const std::string& topic) {
    for (int attempt = 0;; ++attempt) {
        auto op = client.describe_topic(topic, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, d] = co_await std::move(op);
        if (!ec || !is_retriable(ec) || attempt == 50) {
            if (ec) throw error(ec, d.message);
            co_return d;
        }
        co_await sleep_for(std::chrono::milliseconds(100));
    }
}

void run_bounded(boost::asio::io_context& io, std::function<boost::asio::awaitable<void>()> main,
                 std::chrono::seconds limit) {
    std::exception_ptr failure;
    bool finished = false;
    boost::asio::steady_timer watchdog(io, limit);
    boost::asio::co_spawn(io, std::move(main), [&](std::exception_ptr e) {
        failure = e;
        finished = true;
        watchdog.cancel();
        // A live client keeps its event wait pending, so run() would not return by itself.
        io.stop();
    });
    bool timed_out = false;
    watchdog.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            timed_out = true;
            io.stop();
        }
    });
    io.run();
    io.restart();
    if (timed_out) throw std::runtime_error(fmt::format("test did not finish within {}s", limit.count()));
    if (!finished) throw std::runtime_error("test coroutine never completed");
    if (failure) std::rethrow_exception(failure);
}

std::vector<consumed> read_partition(const std::string& bootstrap, const std::string& topic, std::int32_t partition,
                                     std::int64_t offset, std::size_t count, std::chrono::seconds limit,
                                     const kcoro::config& extra) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof errstr);
    // librdkafka 2.0's consumer API needs a group even for manual assignment; nothing is committed.
    rd_kafka_conf_set(conf, "group.id", unique_topic("kcoro-test-reader").c_str(), errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    for (const auto& [k, v] : extra.entries()) {
        if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(fmt::format("read_partition: config key '{}' rejected", k));
        }
    }
    std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> rk(
        rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr), &rd_kafka_destroy);
    if (!rk) throw std::runtime_error(errstr);
    std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)> parts(
        rd_kafka_topic_partition_list_new(1), &rd_kafka_topic_partition_list_destroy);
    rd_kafka_topic_partition_list_add(parts.get(), topic.c_str(), partition)->offset = offset;
    if (auto err = rd_kafka_assign(rk.get(), parts.get())) throw std::runtime_error(rd_kafka_err2str(err));

    std::vector<consumed> out;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
        if (!m) continue;
        std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> guard(m, &rd_kafka_message_destroy);
        if (m->err) continue;
        consumed c;
        c.topic = rd_kafka_topic_name(m->rkt);
        c.partition = m->partition;
        c.offset = m->offset;
        if (m->key) c.key.emplace(static_cast<const char*>(m->key), m->key_len);
        if (m->payload) c.value.emplace(static_cast<const char*>(m->payload), m->len);
        c.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char* name;
            const void* val;
            size_t size;
            for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
                header h{name, std::nullopt};
                if (val) h.value.emplace(static_cast<const char*>(val), size);
                c.headers.push_back(std::move(h));
            }
        }
        out.push_back(std::move(c));
    }
    rd_kafka_consumer_close(rk.get());
    if (out.size() < count)
        throw std::runtime_error(fmt::format("read {} of {} records from {}[{}]", out.size(), count, topic, partition));
    return out;
}

std::string unique_topic(const std::string& prefix) {
    static std::atomic<int> counter{0};
    return fmt::format("{}-{}-{}", prefix, ::getpid(), counter++);
}

std::string real_bootstrap() {
    const char* b = std::getenv("KCORO_BOOTSTRAP");
    if (!b || !*b)
        throw std::runtime_error("KCORO_BOOTSTRAP is not set: integration tests need the broker started by "
                                 "scripts/kafka (scripts/test does this)");
    return b;
}

const secure_cluster& secure_cluster::get() {
    static const secure_cluster cluster = [] {
        const char* path = std::getenv("KCORO_SECURE_ENV");
        if (!path || !*path)
            throw std::runtime_error("KCORO_SECURE_ENV is not set: security tests need the cluster.env of the broker "
                                     "started by `scripts/kafka start --secure` (scripts/test does this)");
        std::ifstream in(path);
        if (!in) throw std::runtime_error(fmt::format("KCORO_SECURE_ENV: cannot read '{}'", path));
        secure_cluster c;
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty() || line[0] == '#') continue;
            const auto eq = line.find('=');
            if (eq == std::string::npos) continue;
            std::string value = line.substr(eq + 1);
            // scripts/kafka single-quotes values that are not plain ('\'' for a quote)
            if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
                value = value.substr(1, value.size() - 2);
                for (std::size_t p; (p = value.find("'\\''")) != std::string::npos;) value.replace(p, 4, "'");
            }
            c.vars_[line.substr(0, eq)] = value;
        }
        if (c.vars_["KAFKA_SECURE"] != "1")
            throw std::runtime_error(fmt::format("KCORO_SECURE_ENV: '{}' is not a --secure cluster", path));
        return c;
    }();
    return cluster;
}

const std::string& secure_cluster::var(const std::string& name) const {
    const auto it = vars_.find(name);
    if (it == vars_.end() || it->second.empty())
        throw std::runtime_error(fmt::format("KCORO_SECURE_ENV: no {}", name));
    return it->second;
}

std::string secure_cluster::password(const std::string& user) const {
    std::string upper = user;
    for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return var("KAFKA_" + upper + "_PASSWORD");
}

kcoro::config secure_cluster::client_config(const std::string& listener, const std::string& user,
                                            const std::string& mechanism) const {
    kcoro::config c{{"bootstrap.servers", bootstrap(listener)}};
    const bool tls = listener == "SSL" || listener == "SSL_WRONGHOST" || listener == "SASL_SSL";
    const bool sasl = listener.rfind("SASL_", 0) == 0;
    c.set("security.protocol", listener == "SSL_WRONGHOST" ? "SSL" : listener);
    if (tls) c.set("ssl.ca.location", ca_pem());
    if (sasl) {
        const std::string u = user.empty() ? "scram" : user;
        c.set("sasl.mechanism", !mechanism.empty() ? mechanism : u == "plain" ? "PLAIN" : "SCRAM-SHA-512");
        c.set("sasl.username", var("KAFKA_" + std::string(u == "admin" ? "ADMIN" : u == "plain" ? "PLAIN"
                                                          : u == "noacl" ? "NOACL" : "SCRAM") + "_USER"));
        c.set("sasl.password", password(u));
    }
    return c;
}

std::vector<std::string> secure_cluster::secrets() const {
    std::vector<std::string> out;
    for (const auto& [k, v] : vars_)
        if (k.find("PASSWORD") != std::string::npos && !v.empty()) out.push_back(v);
    return out;
}

std::string capture_stderr(const std::function<void()>& f) {
    std::fflush(stderr);
    char path[] = "/tmp/kcoro-stderr-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) throw std::runtime_error("capture_stderr: mkstemp failed");
    ::unlink(path);
    const int saved = ::dup(2);
    ::dup2(fd, 2);
    std::exception_ptr failure;
    try {
        f();
    } catch (...) {
        failure = std::current_exception();
    }
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::string out;
    ::lseek(fd, 0, SEEK_SET);
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    if (failure) std::rethrow_exception(failure);
    return out;
}

} // namespace kcoro::test
