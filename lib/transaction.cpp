#include <kcoro/transaction.hpp>

#include "detail/producer_impl.hpp"
#include "detail/rdkafka_ptr.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <thread>

namespace kcoro::detail {

namespace {

using boost::asio::any_completion_handler;
using clock = std::chrono::steady_clock;
using status = transaction_state::status;

// Resumable steps (init, commit, abort) are called in slices, so that a producer whose
// executor went away is noticed within one slice instead of a whole transaction timeout.
constexpr std::chrono::milliseconds slice{500};
constexpr std::chrono::milliseconds retry_pause{100};

struct list_deleter {
    void operator()(rd_kafka_topic_partition_list_t* p) const noexcept { rd_kafka_topic_partition_list_destroy(p); }
};
using list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter>;

int to_timeout_ms(clock::time_point deadline, std::chrono::milliseconds at_most) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    left = std::clamp(left, std::chrono::milliseconds(0), at_most);
    return static_cast<int>(left.count());
}

// Calls `step(timeout_ms)` until it succeeds, fails with a non-retriable error, or
// `deadline` passes (Kafka's rule: retriable errors are retried, abortable and fatal
// ones are reported at once).
template <class Step>
error_ptr with_retries(const producer_impl& impl, clock::time_point deadline, std::chrono::milliseconds at_most,
                       Step step) {
    for (;;) {
        const auto started = clock::now();
        error_ptr e(step(to_timeout_ms(deadline, at_most)));
        if (!e) return e;
        if (!rd_kafka_error_is_retriable(e.get()) || rd_kafka_error_is_fatal(e.get()) ||
            rd_kafka_error_txn_requires_abort(e.get()))
            return e;
        if (clock::now() >= deadline || impl.context_gone()) return e;
        // A step that failed at once (no coordinator yet) is retried after a pause.
        if (clock::now() - started < retry_pause)
            std::this_thread::sleep_for(std::min<clock::duration>(retry_pause, deadline - clock::now()));
    }
}

template <class Handler, class... Args>
void post_result(const producer_impl& impl, Handler handler, Args&&... args) {
    // After the context shut down the handler is destroyed uninvoked, as Asio does.
    if (impl.context_gone()) return;
    boost::asio::post(impl.executor(), boost::asio::append(std::move(handler), std::forward<Args>(args)...));
}

} // namespace

struct transaction_access {
    static kcoro::transaction make(std::shared_ptr<transaction_state> s) noexcept {
        return kcoro::transaction(std::move(s));
    }
};

// ---- state ---------------------------------------------------------------------------

void producer_impl::set_transaction_failure(std::string text) {
    std::lock_guard lock(txn_mutex_);
    txn_failure_ = std::move(text);
}

std::string producer_impl::transaction_failure(error_code ec, std::string_view step) const {
    std::string text;
    {
        std::lock_guard lock(txn_mutex_);
        text = txn_failure_;
    }
    std::string out = transactional_id_.empty() ? std::string(step)
                                                : fmt::format("{} (transactional.id '{}')", step, transactional_id_);
    if (!text.empty()) out += fmt::format(": {}", text);
    if ((ec == errc::fatal || ec == errc::fenced) && text.empty()) {
        const std::string reason = fatal_reason();
        if (!reason.empty()) out += fmt::format(": {}", reason);
    }
    return out;
}

void producer_impl::note_fatal(const rd_kafka_error_t* e) {
    // The error event that says the same reaches the executor later: record it now, so
    // that every operation from here on fails with it.
    std::array<char, 512> buf{};
    const rd_kafka_resp_err_t underlying = rd_kafka_fatal_error(rk_.get(), buf.data(), buf.size());
    std::lock_guard lock(fatal_mutex_);
    if (!fatal_.load()) {
        fatal_code_ = make_error_code_from_kafka(underlying ? underlying : rd_kafka_error_code(e));
        fatal_reason_ = underlying ? buf.data() : rd_kafka_error_string(e);
        fatal_.store(true, std::memory_order_release);
    }
}

// Records what failed and turns librdkafka's error into what the caller is told.
error_code producer_impl::step_failed(const rd_kafka_error_t* e, std::string_view step) {
    set_transaction_failure(fmt::format("{}: {}", step, rd_kafka_error_string(e)));
    if (rd_kafka_error_is_fatal(e)) {
        note_fatal(e);
        transaction_open_.store(false);
        return fatal_op_code();
    }
    return make_error_code_from_kafka(rd_kafka_error_code(e));
}

void producer_impl::finish_transaction(transaction_state& tx, status outcome, txn_phase next) {
    tx.state.store(outcome, std::memory_order_release);
    std::lock_guard lock(txn_mutex_);
    if (txn_current_.lock().get() == &tx) {
        txn_current_.reset();
        txn_phase_ = next;
    }
}

// ---- the steps (on the worker thread) -------------------------------------------------------

error_code producer_impl::prepare_transactions(clock::time_point deadline) {
    if (fatal_.load(std::memory_order_acquire)) {
        set_transaction_failure(fmt::format("refused: the producer hit a fatal error earlier ({}: {})",
                                            fatal_code().message(), fatal_reason()));
        return fatal_op_code();
    }
    if (!rk_ || state_.load() != lifecycle::open) {
        set_transaction_failure("the producer is closed");
        return errc::client_closed;
    }
    txn_phase phase;
    {
        std::lock_guard lock(txn_mutex_);
        phase = txn_phase_;
    }
    if (phase == txn_phase::uninitialised) {
        error_ptr e = with_retries(*this, deadline, slice, [&](int t) { return rd_kafka_init_transactions(rk_.get(), t); });
        if (e) return step_failed(e.get(), "init transactions");
        std::lock_guard lock(txn_mutex_);
        txn_phase_ = phase = txn_phase::ready;
    }
    if (phase == txn_phase::must_abort) {
        // An earlier transaction failed and its abort did not complete: finish it first.
        error_ptr e = with_retries(*this, deadline, slice, [&](int t) { return rd_kafka_abort_transaction(rk_.get(), t); });
        if (e) return step_failed(e.get(), "abort the previous, failed transaction");
        std::lock_guard lock(txn_mutex_);
        txn_phase_ = txn_phase::ready;
    }
    return {};
}

error_code producer_impl::abort_now(clock::time_point deadline) {
    error_ptr e = with_retries(*this, deadline, slice, [&](int t) { return rd_kafka_abort_transaction(rk_.get(), t); });
    if (!e) return {};
    return step_failed(e.get(), "abort transaction");
}

void producer_impl::abort_open_transaction_for_close(clock::time_point deadline) {
    std::shared_ptr<transaction_state> tx;
    {
        std::lock_guard lock(txn_mutex_);
        tx = txn_current_.lock();
    }
    if (!tx) return;
    auto expected = status::open;
    if (!tx->state.compare_exchange_strong(expected, status::ending)) return; // its commit/abort is queued
    transaction_open_.store(false);
    if (fatal_.load()) {
        finish_transaction(*tx, status::aborted, txn_phase::must_abort);
        return;
    }
    // At least a moment, even for close(0): an abort left undone blocks read_committed
    // consumers until the broker times the transaction out.
    const auto at_least = clock::now() + std::chrono::seconds(2);
    const error_code ec = abort_now(std::max(deadline, at_least));
    finish_transaction(*tx, status::aborted, ec ? txn_phase::must_abort : txn_phase::ready);
}

// ---- the operations ----------------------------------------------------------------------------

void producer_impl::init_transactions(any_completion_handler<void(error_code)> handler) {
    if (!transactional_) {
        set_transaction_failure("the producer has no transactional.id");
        complete_with(std::move(handler), errc::not_configured);
        return;
    }
    worker_.run([self = worker_hold(shared_from_this(), executor_), h = std::move(handler)]() mutable {
        const error_code ec = self->prepare_transactions(clock::now() + self->transaction_timeout_);
        post_result(*self, std::move(h), ec);
    });
}

void producer_impl::begin_transaction(begin_handler handler) {
    if (!transactional_) {
        set_transaction_failure("the producer has no transactional.id");
        post_result(*this, std::move(handler), error_code(errc::not_configured), kcoro::transaction{});
        return;
    }
    worker_.run([self = worker_hold(shared_from_this(), executor_), h = std::move(handler)]() mutable {
        error_code ec = self->prepare_transactions(clock::now() + self->transaction_timeout_);
        if (!ec) {
            std::lock_guard lock(self->txn_mutex_);
            if (self->txn_phase_ == txn_phase::open) {
                ec = errc::state;
                self->txn_failure_ = "a transaction is already open on this producer (one at a time): commit or "
                                     "abort it first";
            }
        }
        if (!ec) {
            if (error_ptr e{rd_kafka_begin_transaction(self->rk_.get())}) ec = self->step_failed(e.get(), "begin");
        }
        if (ec) {
            post_result(*self, std::move(h), ec, kcoro::transaction{});
            return;
        }
        auto tx = std::make_shared<transaction_state>(self.shared());
        {
            std::lock_guard lock(self->txn_mutex_);
            self->txn_phase_ = txn_phase::open;
            self->txn_current_ = tx;
        }
        self->transaction_open_.store(true, std::memory_order_release);
        if (self->context_gone()) return; // the handle, never delivered, would abort it: nothing to abort to
        post_result(*self, std::move(h), error_code{}, transaction_access::make(std::move(tx)));
    });
}

namespace {
// Why a transaction that is not open refuses a step.
error_code not_open(producer_impl& impl, status st, std::string_view step) {
    switch (st) {
    case status::committed:
        impl.set_transaction_failure(fmt::format("{}: the transaction is already committed", step));
        return errc::state;
    case status::ending:
        impl.set_transaction_failure(fmt::format("{}: the transaction is being committed or aborted", step));
        return errc::state;
    case status::aborted:
    default:
        impl.set_transaction_failure(fmt::format("{}: the transaction was aborted earlier", step));
        return errc::transaction_aborted;
    }
}
} // namespace

void producer_impl::send_offsets(const std::shared_ptr<transaction_state>& tx, std::vector<partition_offset> offsets,
                                 group_metadata group, any_completion_handler<void(error_code)> handler) {
    if (const status st = tx->state.load(); st != status::open) {
        complete_with(std::move(handler), not_open(*this, st, "send offsets"));
        return;
    }
    if (!group) {
        set_transaction_failure("send offsets: no consumer group metadata (is group.id set on the consumer?)");
        complete_with(std::move(handler), errc::invalid_argument);
        return;
    }
    if (offsets.empty()) { // nothing consumed: nothing to commit
        complete_with(std::move(handler), {});
        return;
    }
    worker_.run([self = worker_hold(shared_from_this(), executor_), tx, offsets = std::move(offsets),
                 group = std::move(group), h = std::move(handler)]() mutable {
        if (const status st = tx->state.load(); st != status::open)
            return post_result(*self, std::move(h), not_open(*self, st, "send offsets"));
        if (!self->rk_) return post_result(*self, std::move(h), error_code(errc::client_closed));
        list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
        for (const auto& o : offsets)
            rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), o.partition)->offset = o.offset;
        // Not resumable: each retry is a new request, with the same offsets (as librdkafka asks).
        const auto deadline = clock::now() + self->transaction_timeout_;
        error_ptr e = with_retries(*self, deadline, self->transaction_timeout_, [&](int t) {
            return rd_kafka_send_offsets_to_transaction(self->rk_.get(), list.get(), group.native_handle(), t);
        });
        if (!e) return post_result(*self, std::move(h), error_code{});
        const bool abortable = rd_kafka_error_txn_requires_abort(e.get()) && !rd_kafka_error_is_fatal(e.get());
        const error_code cause = self->step_failed(e.get(), "send offsets");
        if (is_fatal(cause)) {
            self->finish_transaction(*tx, status::aborted, txn_phase::must_abort);
            return post_result(*self, std::move(h), cause);
        }
        auto expected = status::open;
        if (!abortable || !tx->state.compare_exchange_strong(expected, status::ending))
            return post_result(*self, std::move(h), cause); // still open: the caller decides
        // Kafka's rule for abortable errors: abort, then report.
        self->transaction_open_.store(false);
        std::string why;
        {
            std::lock_guard lock(self->txn_mutex_);
            why = self->txn_failure_;
        }
        const error_code ec = self->abort_now(clock::now() + self->transaction_timeout_);
        self->finish_transaction(*tx, status::aborted, ec ? txn_phase::must_abort : txn_phase::ready);
        if (ec) return post_result(*self, std::move(h), ec);
        self->set_transaction_failure(fmt::format("aborted after {}", why));
        post_result(*self, std::move(h), error_code(errc::transaction_aborted));
    });
}

void producer_impl::commit_transaction(const std::shared_ptr<transaction_state>& tx,
                                       any_completion_handler<void(error_code)> handler) {
    auto expected = status::open;
    if (!tx->state.compare_exchange_strong(expected, status::ending)) {
        complete_with(std::move(handler), not_open(*this, expected, "commit"));
        return;
    }
    transaction_open_.store(false);
    worker_.run([self = worker_hold(shared_from_this(), executor_), tx, h = std::move(handler)]() mutable {
        if (!self->rk_) {
            self->finish_transaction(*tx, status::aborted, txn_phase::must_abort);
            return post_result(*self, std::move(h), error_code(errc::client_closed));
        }
        const auto deadline = clock::now() + self->transaction_timeout_;
        // Records still waiting for room in kcoro's queue reach librdkafka first.
        self->flush_until(deadline, false);
        error_ptr e = with_retries(*self, deadline, slice,
                                   [&](int t) { return rd_kafka_commit_transaction(self->rk_.get(), t); });
        if (!e) {
            self->finish_transaction(*tx, status::committed, txn_phase::ready);
            return post_result(*self, std::move(h), error_code{});
        }
        const error_code cause = self->step_failed(e.get(), "commit");
        if (is_fatal(cause)) {
            self->finish_transaction(*tx, status::aborted, txn_phase::must_abort);
            return post_result(*self, std::move(h), cause);
        }
        // Abortable, or still failing when the transaction's time ran out: abort it, so
        // that nothing of it counts and the producer can go on.
        std::string why;
        {
            std::lock_guard lock(self->txn_mutex_);
            why = self->txn_failure_;
        }
        const error_code ec = self->abort_now(clock::now() + self->transaction_timeout_);
        self->finish_transaction(*tx, status::aborted, ec ? txn_phase::must_abort : txn_phase::ready);
        if (ec) {
            self->set_transaction_failure(fmt::format("{}; then the abort failed too", why));
            return post_result(*self, std::move(h), is_fatal(ec) ? ec : cause);
        }
        self->set_transaction_failure(fmt::format("aborted after {}", why));
        post_result(*self, std::move(h), error_code(errc::transaction_aborted));
    });
}

void producer_impl::abort_transaction(const std::shared_ptr<transaction_state>& tx,
                                      any_completion_handler<void(error_code)> handler) {
    auto expected = status::open;
    if (!tx->state.compare_exchange_strong(expected, status::ending)) {
        // Aborting what an error already aborted is what the caller wanted anyway.
        complete_with(std::move(handler),
                      expected == status::aborted ? error_code{} : not_open(*this, expected, "abort"));
        return;
    }
    transaction_open_.store(false);
    worker_.run([self = worker_hold(shared_from_this(), executor_), tx, h = std::move(handler)]() mutable {
        if (!self->rk_) {
            self->finish_transaction(*tx, status::aborted, txn_phase::must_abort);
            return post_result(*self, std::move(h), error_code(errc::client_closed));
        }
        const error_code ec = self->abort_now(clock::now() + self->transaction_timeout_);
        self->finish_transaction(*tx, status::aborted, ec ? txn_phase::must_abort : txn_phase::ready);
        post_result(*self, std::move(h), ec);
    });
}

// ---- what the public header calls ----------------------------------------------------------

producer_impl& transaction_producer(const transaction_state& tx) noexcept { return *tx.producer; }

void start_send(transaction_state& tx, send_op* op) { tx.producer->start_send(op, &tx); }

void start_batch(transaction_state& tx, batch_base* batch) { tx.producer->start_batch(batch, &tx); }

void start_enqueue(transaction_state& tx, const record* owned, const record_view* view,
                   any_completion_handler<void(error_code, delivery)> handler) {
    start_enqueue_in(*tx.producer, &tx, owned, view, std::move(handler));
}

void start_send_offsets(const std::shared_ptr<transaction_state>& tx, std::vector<partition_offset> offsets,
                        group_metadata group, transaction_handler handler) {
    if (!tx) throw error(errc::invalid_argument, "send offsets: not a transaction (moved from, or never begun)");
    tx->producer->send_offsets(tx, std::move(offsets), std::move(group), std::move(handler));
}

void start_commit(const std::shared_ptr<transaction_state>& tx, transaction_handler handler) {
    if (!tx) throw error(errc::invalid_argument, "commit: not a transaction (moved from, or never begun)");
    tx->producer->commit_transaction(tx, std::move(handler));
}

void start_abort(const std::shared_ptr<transaction_state>& tx, transaction_handler handler) {
    if (!tx) throw error(errc::invalid_argument, "abort: not a transaction (moved from, or never begun)");
    tx->producer->abort_transaction(tx, std::move(handler));
}

bool transaction_open(const transaction_state& tx) noexcept { return tx.state.load() == status::open; }

bool transaction_committed(const transaction_state& tx) noexcept { return tx.state.load() == status::committed; }

void abandon(std::shared_ptr<transaction_state> tx) noexcept {
    if (!tx || tx->state.load() != status::open) return;
    try {
        tx->producer->abort_transaction(tx, any_completion_handler<void(error_code)>([](error_code) {}));
    } catch (...) {
        // Out of memory: the broker aborts the transaction after transaction.timeout.ms.
    }
}

void start_init_transactions(const std::shared_ptr<producer_impl>& impl, transaction_handler handler) {
    impl->init_transactions(std::move(handler));
}

void start_begin_transaction(const std::shared_ptr<producer_impl>& impl,
                             any_completion_handler<void(error_code, kcoro::transaction)> handler) {
    impl->begin_transaction(std::move(handler));
}

std::string describe_transaction_failure(const producer_impl& impl, error_code ec, std::string_view step) {
    return impl.transaction_failure(ec, step);
}

group_metadata copy_group_metadata(const group_metadata& group) {
    if (!group) return {};
    void* buf = nullptr;
    size_t size = 0;
    if (error_ptr e{rd_kafka_consumer_group_metadata_write(group.native_handle(), &buf, &size)})
        throw error(make_error_code_from_kafka(rd_kafka_error_code(e.get())), "copy consumer group metadata");
    rd_kafka_consumer_group_metadata_t* copy = nullptr;
    error_ptr e{rd_kafka_consumer_group_metadata_read(&copy, buf, size)};
    rd_kafka_mem_free(nullptr, buf);
    if (e) throw error(make_error_code_from_kafka(rd_kafka_error_code(e.get())), "copy consumer group metadata");
    return group_metadata(copy);
}

} // namespace kcoro::detail
