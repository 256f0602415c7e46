// kcoro internals: a pending receive (one message or a batch), as the compiled core sees it.
//
// A receive_op lives from initiation until it completes (a message arrived, a batch
// filled or timed out, an error, cancellation, close). Its memory comes from the
// consumer's recycling pool (or from the handler's associated allocator when it has one),
// so a steady stream of receives allocates nothing. The consumer completes each op once,
// after unlinking it under its lock.
#pragma once

#include <kcoro/error.hpp>
#include <kcoro/message.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace kcoro::detail {

class consumer_impl;

class receive_op {
public:
    receive_op* next = nullptr;
    receive_op* prev = nullptr;
    bool linked = false;
    /// 0 for a single-message receive; otherwise the batch's capacity.
    std::size_t max_messages = 0;
    std::chrono::steady_clock::time_point deadline{};
    /// The result: one message, or the batch collected so far; and, once given an error to
    /// complete with at the end of a drain turn, that error.
    message single{};
    std::vector<message> batch{};
    error_code ec{};

    bool is_batch() const noexcept { return max_messages != 0; }

    /// Completes the handler with (ec, result) and frees the op. `may_run_inline`: the
    /// caller runs on the consumer's executor outside any initiating function.
    void complete(error_code ec, bool may_run_inline) { complete_fn_(this, ec, may_run_inline); }

    /// Frees the op without invoking its handler (the execution context is gone).
    void release() { release_fn_(this); }

protected:
    using complete_fn = void (*)(receive_op*, error_code, bool);
    using release_fn = void (*)(receive_op*);
    receive_op(complete_fn c, release_fn r) noexcept : complete_fn_(c), release_fn_(r) {}
    ~receive_op() = default;

private:
    complete_fn complete_fn_;
    release_fn release_fn_;
};

// Implemented in the compiled core.
void* allocate_op(consumer_impl& impl, std::size_t size);
void deallocate_op(consumer_impl& impl, void* p, std::size_t size) noexcept;
const boost::asio::any_io_executor& io_executor(const consumer_impl& impl) noexcept;
void cancel_receive(consumer_impl& impl, receive_op* op);

/// A receive_op bound to a handler of signature void(error_code, Result), where Result is
/// message or std::vector<message>.
template <class Handler, class Result>
class receive_op_impl final : public receive_op {
    using handler_allocator = boost::asio::associated_allocator_t<Handler>;
    static constexpr bool uses_pool = std::is_same_v<handler_allocator, std::allocator<void>>;
    using handler_executor = boost::asio::associated_executor_t<Handler, boost::asio::any_io_executor>;
    using op_allocator = typename std::allocator_traits<handler_allocator>::template rebind_alloc<receive_op_impl>;

public:
    static receive_op_impl* create(Handler&& handler, consumer_impl& impl) {
        if constexpr (uses_pool) {
            void* mem = allocate_op(impl, sizeof(receive_op_impl));
            try {
                return ::new (mem) receive_op_impl(std::move(handler), impl);
            } catch (...) {
                deallocate_op(impl, mem, sizeof(receive_op_impl));
                throw;
            }
        } else {
            op_allocator alloc(boost::asio::get_associated_allocator(handler));
            receive_op_impl* mem = std::allocator_traits<op_allocator>::allocate(alloc, 1);
            try {
                return ::new (static_cast<void*>(mem)) receive_op_impl(std::move(handler), impl);
            } catch (...) {
                std::allocator_traits<op_allocator>::deallocate(alloc, mem, 1);
                throw;
            }
        }
    }

    /// Connects the handler's cancellation slot; call once the op is set up.
    void connect_cancellation() {
        auto slot = boost::asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.template emplace<cancel_handler>(cancel_handler{this, &impl_});
    }

private:
    struct cancel_handler {
        receive_op* op;
        consumer_impl* impl;
        // Any cancellation type applies: a receive that has not completed has taken
        // nothing from the consumer (a partial batch goes back to the local buffer).
        void operator()(boost::asio::cancellation_type_t type) const {
            if (type != boost::asio::cancellation_type::none) cancel_receive(*impl, op);
        }
    };

    receive_op_impl(Handler&& handler, consumer_impl& impl)
        : receive_op(&do_complete, &do_release), impl_(impl), handler_(std::move(handler)) {
        const auto& io_ex = io_executor(impl_);
        auto ex = boost::asio::get_associated_executor(handler_, io_ex);
        if constexpr (std::is_same_v<handler_executor, boost::asio::any_io_executor>) runs_on_io_ = (ex == io_ex);
        if (!runs_on_io_) work_.emplace(ex);
    }

    static void do_complete(receive_op* base, error_code ec, bool may_run_inline) {
        auto* self = static_cast<receive_op_impl*>(base);
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.clear();

        Handler handler(std::move(self->handler_));
        std::optional<boost::asio::executor_work_guard<handler_executor>> work;
        if (self->work_) work.emplace(std::move(*self->work_));
        Result result;
        if constexpr (std::is_same_v<Result, message>)
            result = std::move(self->single);
        else
            result = std::move(self->batch);
        const bool invoke_here = may_run_inline && self->runs_on_io_;
        const boost::asio::any_io_executor io_ex = io_executor(self->impl_);
        // Free before invoking, so the handler can start the next receive with this memory.
        destroy(self);

        if (invoke_here)
            std::move(handler)(ec, std::move(result));
        else if (may_run_inline)
            boost::asio::dispatch(io_ex, boost::asio::append(std::move(handler), ec, std::move(result)));
        else
            boost::asio::post(io_ex, boost::asio::append(std::move(handler), ec, std::move(result)));
    }

    static void do_release(receive_op* base) {
        auto* self = static_cast<receive_op_impl*>(base);
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.clear();
        destroy(self);
    }

    static void destroy(receive_op_impl* self) {
        if constexpr (uses_pool) {
            consumer_impl& impl = self->impl_;
            self->~receive_op_impl();
            deallocate_op(impl, self, sizeof(receive_op_impl));
        } else {
            op_allocator alloc(boost::asio::get_associated_allocator(self->handler_));
            self->~receive_op_impl();
            std::allocator_traits<op_allocator>::deallocate(alloc, self, 1);
        }
    }

    consumer_impl& impl_;
    Handler handler_;
    bool runs_on_io_ = false;
    std::optional<boost::asio::executor_work_guard<handler_executor>> work_;
};

} // namespace kcoro::detail
