// One thread per client for librdkafka's calls that block and have no asynchronous
// form (flush, transaction steps, destroy). The executor never runs them.
#pragma once

#include <boost/asio/any_completion_handler.hpp>

#include <memory>
#include <thread>

namespace kcoro::detail {

class worker_thread {
public:
    worker_thread() = default;
    worker_thread(const worker_thread&) = delete;
    worker_thread& operator=(const worker_thread&) = delete;
    /// Finishes the queued jobs, then joins (or detaches when called from the worker
    /// itself, which happens when a job drops the last reference to the client).
    ~worker_thread();

    /// Move-only, so jobs can carry completion handlers.
    using job = boost::asio::any_completion_handler<void()>;

    /// Runs `job` on the worker thread (started on first use), after earlier jobs.
    void run(job j);

    /// Finishes the queued jobs and joins now (a no-op on the worker itself).
    void stop() noexcept;

    /// True on the worker thread.
    bool on_worker() const noexcept;

private:
    struct state;
    std::shared_ptr<state> state_;
    std::thread thread_;
};

} // namespace kcoro::detail
