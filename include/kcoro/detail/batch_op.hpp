// kcoro internals: send_batch(), one operation for many records.
//
// Each record gets a batch_element (a send_op, so the compiled core enqueues, queues for
// room and completes it like any send); the elements live in one block from the
// producer's recycling pool. The batch completes once every element has reported.
// Cancelling the batch unlinks the elements still waiting for room (never sent) and ends
// the wait; elements already in librdkafka keep the memory until their reports arrive,
// but no longer write into the caller's reports.
#pragma once

#include <kcoro/delivery_report.hpp>
#include <kcoro/detail/send_op_impl.hpp>

#include <boost/asio/error.hpp>

#include <atomic>
#include <cstddef>
#include <span>

namespace kcoro::detail {

class batch_base;

// Implemented in the compiled core.
void start_batch(producer_impl& impl, batch_base* batch);
void cancel_batch(producer_impl& impl, batch_base* batch);

class batch_element final : public send_op {
public:
    batch_element(batch_base* b, std::size_t i) noexcept : send_op(&do_complete, &do_release), batch(b), index(i) {
        group = b;
    }

    batch_base* batch;
    std::size_t index;

private:
    static void do_complete(send_op* op, error_code ec, const record_metadata& md, bool may_run_inline, bool);
    static void do_release(send_op* op);
};

class batch_base {
public:
    std::span<delivery_report> reports;
    batch_element* elements = nullptr;
    std::size_t count = 0;
    /// Elements yet to report, plus one held by the initiating call while it enqueues.
    std::atomic<std::size_t> remaining{0};
    std::atomic<std::size_t> failed{0};
    /// Set when the handler was completed early (cancellation): reports are no longer written.
    std::atomic<bool> abandoned{false};

    /// One element is done; the last one completes the batch (`can_complete`: false
    /// when tearing down without an executor, the handler is then destroyed uninvoked).
    void release_one(bool may_run_inline, bool can_complete) {
        if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) finish_fn_(this, may_run_inline, can_complete);
    }

    /// Completes the handler with operation_aborted now (cancellation); the memory stays
    /// until the last element reports.
    void complete_early() { early_fn_(this); }

protected:
    using finish_fn = void (*)(batch_base*, bool, bool);
    using early_fn = void (*)(batch_base*);
    batch_base(finish_fn f, early_fn e) noexcept : finish_fn_(f), early_fn_(e) {}
    ~batch_base() = default;

private:
    finish_fn finish_fn_;
    early_fn early_fn_;
};

inline void batch_element::do_complete(send_op* op, error_code ec, const record_metadata& md, bool may_run_inline,
                                       bool) {
    auto* self = static_cast<batch_element*>(op);
    batch_base* b = self->batch;
    if (!b->abandoned.load(std::memory_order_acquire)) {
        b->reports[self->index] = delivery_report{ec, md};
        if (ec) b->failed.fetch_add(1, std::memory_order_relaxed);
    }
    b->release_one(may_run_inline, true);
}

inline void batch_element::do_release(send_op* op) { static_cast<batch_element*>(op)->batch->release_one(false, false); }

template <class Handler>
class batch_op_impl final : public batch_base {
    using handler_executor = boost::asio::associated_executor_t<Handler, boost::asio::any_io_executor>;

public:
    // The batch itself and its elements come from the producer's pool: one block per
    // size, recycled, so a steady stream of batches allocates nothing.
    static batch_op_impl* create(Handler&& handler, producer_impl& impl, std::span<delivery_report> reports) {
        void* mem = allocate_op(impl, sizeof(batch_op_impl));
        batch_op_impl* self;
        try {
            self = ::new (mem) batch_op_impl(std::move(handler), impl, reports);
        } catch (...) {
            deallocate_op(impl, mem, sizeof(batch_op_impl));
            throw;
        }
        if (!reports.empty()) {
            try {
                self->elements = static_cast<batch_element*>(allocate_op(impl, reports.size() * sizeof(batch_element)));
            } catch (...) {
                self->destroy();
                throw;
            }
            for (std::size_t i = 0; i < reports.size(); ++i) ::new (&self->elements[i]) batch_element(self, i);
        }
        self->count = reports.size();
        return self;
    }

private:
    struct cancel_handler {
        batch_op_impl* self;
        void operator()(boost::asio::cancellation_type_t type) const {
            if ((type & (boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial |
                         boost::asio::cancellation_type::total)) != boost::asio::cancellation_type::none)
                cancel_batch(self->impl_, self);
        }
    };

    batch_op_impl(Handler&& handler, producer_impl& impl, std::span<delivery_report> r)
        : batch_base(&do_finish, &do_early), impl_(impl), handler_(std::move(handler)) {
        reports = r;
        const auto& io_ex = io_executor(impl_);
        auto ex = boost::asio::get_associated_executor(handler_, io_ex);
        if constexpr (std::is_same_v<handler_executor, boost::asio::any_io_executor>)
            runs_on_io_ = (ex == io_ex);
        if (!runs_on_io_) work_.emplace(ex);
        auto slot = boost::asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.template emplace<cancel_handler>(cancel_handler{this});
    }

    void destroy() {
        producer_impl& impl = impl_;
        if (elements) deallocate_op(impl, elements, count * sizeof(batch_element));
        this->~batch_op_impl();
        deallocate_op(impl, this, sizeof(batch_op_impl));
    }

    // Hands the handler over: directly when on the producer's executor outside any
    // initiating call, else through the executor.
    static void invoke(Handler handler, std::optional<boost::asio::executor_work_guard<handler_executor>> work,
                       const boost::asio::any_io_executor& io_ex, bool invoke_here, bool may_run_inline,
                       error_code ec, std::size_t failed) {
        if (invoke_here)
            std::move(handler)(ec, failed);
        else if (may_run_inline)
            boost::asio::dispatch(io_ex, boost::asio::append(std::move(handler), ec, failed));
        else
            boost::asio::post(io_ex, boost::asio::append(std::move(handler), ec, failed));
        (void)work;
    }

    static void do_finish(batch_base* base, bool may_run_inline, bool can_complete) {
        auto* self = static_cast<batch_op_impl*>(base);
        if (!can_complete || self->handler_taken_.exchange(true)) {
            self->destroy();
            return;
        }
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.clear();
        const std::size_t failed = self->failed.load(std::memory_order_relaxed);
        error_code first;
        if (failed)
            for (const auto& r : self->reports)
                if (r.error) {
                    first = r.error;
                    break;
                }
        Handler handler(std::move(self->handler_));
        std::optional<boost::asio::executor_work_guard<handler_executor>> work;
        if (self->work_) work.emplace(std::move(*self->work_));
        const bool invoke_here = may_run_inline && self->runs_on_io_;
        const boost::asio::any_io_executor io_ex = io_executor(self->impl_);
        self->destroy();
        invoke(std::move(handler), std::move(work), io_ex, invoke_here, may_run_inline, first, failed);
    }

    static void do_early(batch_base* base) {
        auto* self = static_cast<batch_op_impl*>(base);
        if (self->handler_taken_.exchange(true)) return;
        const std::size_t failed = self->failed.load(std::memory_order_relaxed);
        self->abandoned.store(true, std::memory_order_release);
        auto slot = boost::asio::get_associated_cancellation_slot(self->handler_);
        if (slot.is_connected()) slot.clear();
        Handler handler(std::move(self->handler_));
        std::optional<boost::asio::executor_work_guard<handler_executor>> work;
        if (self->work_) work.emplace(std::move(*self->work_));
        invoke(std::move(handler), std::move(work), io_executor(self->impl_), false, false,
               boost::asio::error::operation_aborted, failed);
    }

    producer_impl& impl_;
    Handler handler_;
    bool runs_on_io_ = false;
    std::atomic<bool> handler_taken_{false};
    std::optional<boost::asio::executor_work_guard<handler_executor>> work_;
};

} // namespace kcoro::detail
