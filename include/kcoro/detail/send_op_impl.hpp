// kcoro internals: a send_op bound to a concrete completion handler.
#pragma once

#include <kcoro/detail/operation.hpp>
#include <kcoro/detail/send_exception_handler.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace kcoro::detail {

class producer_impl;

// Implemented in the compiled core.
void* allocate_op(producer_impl& impl, std::size_t size);
void deallocate_op(producer_impl& impl, void* p, std::size_t size) noexcept;
const boost::asio::any_io_executor& io_executor(const producer_impl& impl) noexcept;
void cancel_send(producer_impl& impl, send_op* op);

template <class Handler>
class send_op_impl final : public send_op {
    using handler_allocator = boost::asio::associated_allocator_t<Handler>;
    // Handlers without an allocator of their own (awaitables, deferred, plain lambdas)
    // take their memory from the producer's recycling pool.
    static constexpr bool uses_pool = std::is_same_v<handler_allocator, std::allocator<void>>;
    using handler_executor =
        boost::asio::associated_executor_t<Handler, boost::asio::any_io_executor>;
    using op_allocator = typename std::allocator_traits<handler_allocator>::template rebind_alloc<send_op_impl>;

public:
    static send_op_impl* create(Handler&& handler, producer_impl& impl) {
        if constexpr (uses_pool) {
            void* mem = allocate_op(impl, sizeof(send_op_impl));
            try {
                return ::new (mem) send_op_impl(std::move(handler), impl);
            } catch (...) {
                deallocate_op(impl, mem, sizeof(send_op_impl));
                throw;
            }
        } else {
            op_allocator alloc(boost::asio::get_associated_allocator(handler));
            send_op_impl* mem = std::allocator_traits<op_allocator>::allocate(alloc, 1);
            try {
                return ::new (static_cast<void*>(mem)) send_op_impl(std::move(handler), impl);
            } catch (...) {
                std::allocator_traits<op_allocator>::deallocate(alloc, mem, 1);
                throw;
            }
        }
    }

private:
    struct cancel_handler {
        send_op* op;
        producer_impl* impl;
        void operator()(boost::asio::cancellation_type_t type) const {
            // Before enqueue, any cancellation removes the record (nothing was sent).
            // After enqueue only terminal/partial apply: the await ends, the delivery
            // still happens. cancel_send() sorts that out under the producer's lock.
            if ((type & (boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial |
                         boost::asio::cancellation_type::total)) != boost::asio::cancellation_type::none)
                cancel_send(*impl, op);
        }
    };

    send_op_impl(Handler&& handler, producer_impl& impl)
        : send_op(&do_complete, &do_release), impl_(impl), handler_(std::move(handler)) {
        const auto& io_ex = io_executor(impl_);
        auto ex = boost::asio::get_associated_executor(handler_, io_ex);
        if constexpr (std::is_same_v<handler_executor, boost::asio::any_io_executor>)
            runs_on_io_ = (ex == io_ex);
        // The producer's own pending event wait keeps its executor busy; any other
        // executor must be told that work is outstanding until the handler runs.
        if (!runs_on_io_) work_.emplace(ex);
        auto slot = boost::asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.template emplace<cancel_handler>(cancel_handler{this, &impl_});
    }

    static void do_complete(send_op* base, error_code ec, const record_metadata& md, bool may_run_inline,
                            bool free_memory) {
        auto* self = static_cast<send_op_impl*>(base);
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.clear();

        Handler handler(std::move(self->handler_));
        if (ec) prepare_failure(handler, self->impl_, ec, md);
        // Keeps the handler's executor busy until the handler has been handed over.
        std::optional<boost::asio::executor_work_guard<handler_executor>> work;
        if (self->work_) work.emplace(std::move(*self->work_));
        // Free before invoking, so the handler can start the next send with this memory.
        if (may_run_inline && self->runs_on_io_) {
            if (free_memory) destroy(self);
            std::move(handler)(ec, md);
            return;
        }
        // dispatch/post hand the handler on to its own associated executor.
        const boost::asio::any_io_executor io_ex = io_executor(self->impl_);
        if (free_memory) destroy(self);

        if (may_run_inline)
            boost::asio::dispatch(io_ex, boost::asio::append(std::move(handler), ec, md));
        else
            boost::asio::post(io_ex, boost::asio::append(std::move(handler), ec, md));
    }

    static void do_release(send_op* base) { destroy(static_cast<send_op_impl*>(base)); }

    static void destroy(send_op_impl* self) {
        if constexpr (uses_pool) {
            producer_impl& impl = self->impl_;
            self->~send_op_impl();
            deallocate_op(impl, self, sizeof(send_op_impl));
        } else {
            op_allocator alloc(boost::asio::get_associated_allocator(self->handler_));
            self->~send_op_impl();
            std::allocator_traits<op_allocator>::deallocate(alloc, self, 1);
        }
    }

    producer_impl& impl_;
    Handler handler_;
    bool runs_on_io_ = false;
    std::optional<boost::asio::executor_work_guard<handler_executor>> work_;
};

} // namespace kcoro::detail
