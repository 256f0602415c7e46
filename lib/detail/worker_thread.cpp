#include "worker_thread.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>

namespace kcoro::detail {

// Shared with the thread, so that a detached worker outlives its owner safely.
struct worker_thread::state {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<job> jobs;
    bool stopping = false;

    void loop() {
        std::unique_lock lock(mutex);
        for (;;) {
            wake.wait(lock, [&] { return stopping || !jobs.empty(); });
            if (jobs.empty()) return; // stopping, and nothing left to do
            auto next = std::move(jobs.front());
            jobs.pop_front();
            lock.unlock();
            std::move(next)();
            next = {}; // drop what the job captured before taking the lock again
            lock.lock();
        }
    }
};

void worker_thread::run(job j) {
    if (!state_) {
        state_ = std::make_shared<state>();
        thread_ = std::thread([s = state_] { s->loop(); });
    }
    {
        std::lock_guard lock(state_->mutex);
        if (state_->stopping) return; // stopped for good: the job is dropped here, unrun
        state_->jobs.push_back(std::move(j));
    }
    state_->wake.notify_one();
}

bool worker_thread::on_worker() const noexcept { return thread_.get_id() == std::this_thread::get_id(); }

void worker_thread::stop() noexcept {
    if (!state_ || on_worker()) return;
    {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
    }
    state_->wake.notify_one();
    if (thread_.joinable()) thread_.join();
}

worker_thread::~worker_thread() {
    if (!state_) return;
    {
        std::lock_guard lock(state_->mutex);
        state_->stopping = true;
    }
    state_->wake.notify_one();
    if (!thread_.joinable()) return;
    if (on_worker())
        thread_.detach();
    else
        thread_.join();
}

} // namespace kcoro::detail
