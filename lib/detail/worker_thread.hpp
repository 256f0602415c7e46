// One thread per client for librdkafka's calls that block and have no asynchronous
// form (flush, transaction steps, destroy). The executor never runs them.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

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

/// A worker job's reference to its client, and work on the client's executor. The last
/// reference to a client must never be dropped on the worker: the client's destructor
/// destroys timers and descriptors of the executor's context, which may be gone as soon as
/// the job stops counting as work. Destroying the hold therefore hands the reference back
/// to the executor, so the client dies there (or with the context's pending handlers).
template <class Client>
class worker_hold {
public:
    worker_hold(std::shared_ptr<Client> client, const boost::asio::any_io_executor& executor)
        : client_(std::move(client)), work_(executor) {}
    worker_hold(worker_hold&&) noexcept = default;
    worker_hold& operator=(worker_hold&&) = delete;
    ~worker_hold() {
        if (!client_) return;
        try {
            boost::asio::post(work_.get_executor(), [client = std::move(client_)] {});
        } catch (...) {
            // Out of memory: the reference is dropped here after all.
        }
    }

    Client* operator->() const noexcept { return client_.get(); }
    Client& operator*() const noexcept { return *client_; }
    /// For handlers posted to the executor, which may drop the reference themselves.
    const std::shared_ptr<Client>& shared() const noexcept { return client_; }

private:
    std::shared_ptr<Client> client_;
    boost::asio::executor_work_guard<boost::asio::any_io_executor> work_;
};

} // namespace kcoro::detail
