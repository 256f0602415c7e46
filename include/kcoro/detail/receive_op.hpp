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
#include <kcoro/detail/pooled_allocator.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
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

    /// Connects the handler's cancellation slot, once the op is about to wait: a receive
    /// completed at once has nothing to cancel, and leaves the slot (and Asio's memory for
    /// it) alone.
    void connect_cancellation() { connect_fn_(this); }

protected:
    using complete_fn = void (*)(receive_op*, error_code, bool);
    using release_fn = void (*)(receive_op*);
    using connect_fn = void (*)(receive_op*);
    receive_op(complete_fn c, release_fn r, connect_fn k) noexcept : complete_fn_(c), release_fn_(r), connect_fn_(k) {}
    ~receive_op() = default;

private:
    complete_fn complete_fn_;
    release_fn release_fn_;
    connect_fn connect_fn_;
};

// Implemented in the compiled core.
void* allocate_op(consumer_impl& impl, std::size_t size);
void deallocate_op(consumer_impl& impl, void* p, std::size_t size) noexcept;

const boost::asio::any_io_executor& io_executor(const consumer_impl& impl) noexcept;
/// The consumer, or null while it is being destroyed.
std::shared_ptr<void> keep_alive(consumer_impl& impl) noexcept;
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

private:
    static void do_connect(receive_op* base) {
        auto* self = static_cast<receive_op_impl*>(base);
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.template emplace<cancel_handler>(cancel_handler{self, &self->impl_});
    }

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
        : receive_op(&do_complete, &do_release, &do_connect), impl_(impl), handler_(std::move(handler)) {
        const auto& io_ex = io_executor(impl_);
        auto ex = boost::asio::get_associated_executor(handler_, io_ex);
        if constexpr (std::is_same_v<handler_executor, boost::asio::any_io_executor>) runs_on_io_ = (ex == io_ex);
        if (!runs_on_io_) work_.emplace(ex);
    }

    // Runs a completion made inside the initiating call once the initiator has returned:
    // posted to the io_context itself, with memory from the consumer's pool (through
    // any_io_executor, Asio would allocate a type-erased function from its own per-thread
    // cache, which misses whenever sizes interleave). Destroyed unrun (the context shut
    // down), it frees the op without invoking its handler.
    struct deferred_completion {
        receive_op_impl* op;
        error_code ec;
        // The consumer, whose pool holds this memory and the op's, outlives both.
        std::shared_ptr<void> keep;

        deferred_completion(receive_op_impl* o, error_code e, std::shared_ptr<void> k) noexcept
            : op(o), ec(e), keep(std::move(k)) {}
        deferred_completion(deferred_completion&& other) noexcept
            : op(std::exchange(other.op, nullptr)), ec(other.ec), keep(std::move(other.keep)) {}
        deferred_completion& operator=(deferred_completion&&) = delete;
        ~deferred_completion() {
            if (op) do_release(op);
        }

        using allocator_type = pooled_allocator<void, consumer_impl>;
        allocator_type get_allocator() const noexcept { return allocator_type(op->impl_); }

        void operator()() { do_complete(std::exchange(op, nullptr), ec, true); }
    };

    static void do_complete(receive_op* base, error_code ec, bool may_run_inline) {
        auto* self = static_cast<receive_op_impl*>(base);
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.clear();
        if (!may_run_inline && self->runs_on_io_) {
            const auto* io = io_executor(self->impl_).template target<boost::asio::io_context::executor_type>();
            if (std::shared_ptr<void> keep = io ? keep_alive(self->impl_) : nullptr) {
                boost::asio::post(*io, deferred_completion(self, ec, std::move(keep)));
                return;
            }
        }

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
