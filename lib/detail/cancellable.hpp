// Per-operation cancellation for the cold operations that finish on a worker thread or in
// a librdkafka result (flush, close, commit). They cannot be recalled: a record accepted is
// still delivered, a commit sent is still applied, a close still closes. Cancellation only
// ends the wait: terminal, partial or total cancellation through the handler's slot
// completes the handler at once with operation_aborted, and the operation's own completion
// later finds the handler gone.
#pragma once

#include <kcoro/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>

namespace kcoro::detail {

class cancellable_wait {
public:
    using handler_type = boost::asio::any_completion_handler<void(error_code)>;

    /// Set once the wait was cancelled: an operation that can stop early may look at it.
    bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

    /// Connects `handler`'s cancellation slot (if any) and returns the handler to give the
    /// operation instead: invoking it completes `handler` unless cancellation did first.
    /// `executor`: the client's, on which the returned handler is invoked (the real one
    /// goes on to its own associated executor, as Asio's post does).
    static std::pair<handler_type, std::shared_ptr<cancellable_wait>> wrap(handler_type handler,
                                                                           boost::asio::any_io_executor executor) {
        auto slot = boost::asio::get_associated_cancellation_slot(handler);
        if (!slot.is_connected()) return {std::move(handler), nullptr};
        auto self = std::make_shared<cancellable_wait>();
        // (Boost 1.81's move assignment of any_completion_handler recurses forever: swap.)
        handler_type(std::move(handler)).swap(self->handler_);
        self->executor_ = std::move(executor);
        // Runs where the signal is emitted (the caller's executor); the stale handler left
        // in the slot after completion only holds this small state, and finds it empty.
        slot.assign([self](boost::asio::cancellation_type_t type) {
            using ct = boost::asio::cancellation_type;
            if ((type & (ct::terminal | ct::partial | ct::total)) == ct::none) return;
            self->cancelled_.store(true, std::memory_order_release);
            self->finish(boost::asio::error::operation_aborted);
        });
        return {handler_type([self](error_code ec) { self->finish(ec); }), self};
    }

private:
    void finish(error_code ec) {
        handler_type h;
        {
            std::lock_guard lock(mutex_);
            h.swap(handler_);
        }
        if (h) boost::asio::post(executor_, boost::asio::append(std::move(h), ec));
    }

    std::mutex mutex_;
    handler_type handler_;
    boost::asio::any_io_executor executor_;
    std::atomic<bool> cancelled_{false};
};

} // namespace kcoro::detail
