// kcoro: transactions (a producer with a transactional.id).
//
// A transaction is a scope: what the body sends, and the consumer offsets it hands to
// send_offsets(), become visible together (to read_committed consumers) when the body
// returns, or not at all.
//
//     kcoro::producer producer(ex, {{"bootstrap.servers", "..."}, {"transactional.id", "echo-1"}});
//     co_await producer.init_transactions(); // optional: the first transaction does it
//     co_await producer.transaction([&](kcoro::transaction& tx) -> asio::awaitable<void> {
//         co_await tx.send(output_record);
//         co_await tx.send_offsets(consumer, input_messages);
//     });
//
// The scope's rules:
//  - the body returns: the transaction is committed (what was sent is flushed first);
//    `transaction()` completes once the commit is acknowledged;
//  - the body throws (or its coroutine is cancelled): the transaction is aborted and the
//    body's exception is rethrown;
//  - the commit fails with an "abortable" error (a record could not be delivered, the
//    consumer group moved on, ...): the transaction is aborted and kcoro::error with
//    errc::transaction_aborted is thrown, naming the cause. Nothing of it counts; the
//    caller may rewind its input (to the group's committed offsets) and try again;
//  - a fatal error, above all errc::fenced (a newer producer with the same
//    transactional.id has taken over), is thrown as such, and the producer refuses
//    every later operation with the same error: close it and exit, or build a new one.
//  - retriable errors (a coordinator moving, a timeout) are retried inside each step,
//    for up to transaction.timeout.ms, before they are reported.
//
// The lower-level form, for code that cannot be one scope: begin_transaction() yields a
// `transaction`; commit() or abort() ends it. A `transaction` destroyed while still open
// aborts in the background (forgetting to commit never commits), and the producer's next
// transaction begins only after that abort. One transaction is open at a time: beginning
// another meanwhile fails with errc::state. close() aborts a transaction still open.
//
// All the blocking steps (init, begin, send_offsets, commit, abort) run on the producer's
// worker thread while its executor goes on draining delivery reports, so a
// single-threaded io_context is fine (a commit waits for deliveries, which that executor
// completes).
//
// Sends outside a transaction. A producer with a transactional.id fails every send made
// while no transaction is open with errc::not_in_transaction (nothing is sent). While a
// transaction is open, every record the producer sends (through the transaction or
// through the producer itself) belongs to it.
//
// Consuming in a transaction (consume-transform-produce, exactly once): the consumer
// must set enable.auto.commit=false (offsets are committed by the transaction) and, to
// read only committed output of other transactional producers, isolation.level=
// read_committed. send_offsets(consumer, messages) commits, for each partition, the
// offset after the last of `messages`, with the consumer's current group metadata (a
// member that lost its partitions in a rebalance cannot commit them: the transaction
// aborts). It takes the processed messages rather than the consumer's position because
// that position also counts messages fetched into the consumer's local buffer and not
// processed yet: committing it would skip them after a crash. See
// examples/exactly_once_echo.cpp.
#pragma once

#include <kcoro/consumer.hpp>
#include <kcoro/delivery.hpp>
#include <kcoro/delivery_report.hpp>
#include <kcoro/detail/batch_op.hpp>
#include <kcoro/detail/send_op_impl.hpp>
#include <kcoro/error.hpp>
#include <kcoro/group_metadata.hpp>
#include <kcoro/message.hpp>
#include <kcoro/producer.hpp>
#include <kcoro/record.hpp>
#include <kcoro/record_metadata.hpp>
#include <kcoro/topic_partition.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>

#include <algorithm>
#include <exception>
#include <functional>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace kcoro {

namespace detail {
struct transaction_state;
struct transaction_access;
using transaction_handler = boost::asio::any_completion_handler<void(error_code)>;

producer_impl& transaction_producer(const transaction_state& tx) noexcept;
void start_send(transaction_state& tx, send_op* op);
void start_batch(transaction_state& tx, batch_base* batch);
void start_enqueue(transaction_state& tx, const record* owned, const record_view* view,
                   boost::asio::any_completion_handler<void(error_code, delivery)> handler);
void start_send_offsets(const std::shared_ptr<transaction_state>& tx, std::vector<partition_offset> offsets,
                        group_metadata group, transaction_handler handler);
/// A copy of librdkafka's group metadata (it has no copy function of its own).
group_metadata copy_group_metadata(const group_metadata& group);
void start_commit(const std::shared_ptr<transaction_state>& tx, transaction_handler handler);
void start_abort(const std::shared_ptr<transaction_state>& tx, transaction_handler handler);
bool transaction_open(const transaction_state& tx) noexcept;
bool transaction_committed(const transaction_state& tx) noexcept;
void abandon(std::shared_ptr<transaction_state> tx) noexcept;
void start_init_transactions(const std::shared_ptr<producer_impl>& impl, transaction_handler handler);
void start_begin_transaction(const std::shared_ptr<producer_impl>& impl,
                             boost::asio::any_completion_handler<void(error_code, transaction)> handler);
/// What a failed transactional step was about, with librdkafka's reason.
std::string describe_transaction_failure(const producer_impl& impl, error_code ec, std::string_view step);

template <class R>
concept message_range = std::ranges::input_range<R> &&
                        std::is_same_v<std::remove_cvref_t<std::ranges::range_reference_t<R>>, message>;

/// For each partition of `processed`, the offset after its last message.
template <message_range Messages>
std::vector<partition_offset> offsets_after(const Messages& processed) {
    std::vector<partition_offset> out;
    for (const message& m : processed) {
        if (!m) continue;
        auto it = std::find_if(out.begin(), out.end(), [&](const partition_offset& p) {
            return p.partition == m.partition() && p.topic == m.topic();
        });
        if (it == out.end())
            out.push_back(m.next_offset());
        else
            it->offset = std::max(it->offset, m.offset() + 1);
    }
    return out;
}
} // namespace detail

/// One open transaction of a producer (see the header comment). Move-only; destroying
/// it while it is still open aborts it.
class transaction {
public:
    /// Not a transaction (active() is false); what a failed begin_transaction() yields.
    transaction() noexcept = default;
    transaction(transaction&&) noexcept = default;
    /// Aborts the transaction held so far, if it is still open.
    transaction& operator=(transaction&& other) noexcept {
        if (this != &other) {
            if (state_) detail::abandon(std::move(state_));
            state_ = std::move(other.state_);
        }
        return *this;
    }
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;
    ~transaction() {
        if (state_) detail::abandon(std::move(state_));
    }

    /// True from begin until commit() or abort() starts (or an error aborted it).
    bool active() const noexcept { return state_ && detail::transaction_open(*state_); }

    /// True once commit() succeeded.
    bool committed() const noexcept { return state_ && detail::transaction_committed(*state_); }

    // ---- sending (as producer::send / send_batch / enqueue, inside this transaction) ----
    // Once the transaction is no longer open, they fail with errc::not_in_transaction.

    template <class CompletionToken>
    auto send(const record& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, record_metadata)>(
            initiate_send{state_.get()}, token, &r, static_cast<const record_view*>(nullptr));
    }
    template <class CompletionToken>
    auto send(const record_view& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, record_metadata)>(
            initiate_send{state_.get()}, token, static_cast<const record*>(nullptr), &r);
    }
    /// Without a token: as producer::send, an async_operation yielding the metadata.
    auto send(const record& r) {
        return detail::make_send_operation(initiate_send{state_.get()}, r.topic, &r,
                                           static_cast<const record_view*>(nullptr));
    }
    auto send(const record_view& r) {
        return detail::make_send_operation(initiate_send{state_.get()}, r.topic, static_cast<const record*>(nullptr),
                                           &r);
    }

    /// As producer::send_batch: void(error_code, std::size_t failed).
    template <detail::record_range Records, class CompletionToken>
    auto send_batch(const Records& records, std::span<delivery_report> reports, CompletionToken&& token) {
        check_open_state();
        if (std::ranges::size(records) != reports.size())
            detail::throw_error(errc::invalid_argument, "send_batch: one report per record is needed");
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::size_t)>(
            [state = state_.get(), reports](auto handler, const Records* rs) {
                auto& impl = detail::transaction_producer(*state);
                auto* b = detail::batch_op_impl<std::decay_t<decltype(handler)>>::create(std::move(handler), impl,
                                                                                          reports);
                std::size_t i = 0;
                for (const auto& r : *rs) {
                    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(r)>, record>)
                        b->elements[i].owned = &r;
                    else
                        b->elements[i].view = &r;
                    ++i;
                }
                detail::start_batch(*state, b);
            },
            token, &records);
    }

    /// Awaitable send_batch(). In a transaction one failed record dooms the whole of it,
    /// so this throws kcoro::error (the first failure's) as soon as any record failed.
    template <detail::record_range Records>
    boost::asio::awaitable<void> send_batch(const Records& records, std::span<delivery_report> reports) {
        auto [ec, failed] = co_await send_batch(records, reports, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_error(ec, detail::describe_failure(detail::transaction_producer(*state_), ec,
                                                                 "send_batch in a transaction"));
        (void)failed;
    }

    /// As producer::enqueue: completes once librdkafka accepted the record, yielding its
    /// delivery. The commit waits for every delivery and fails (aborting) if one failed.
    template <class CompletionToken>
    auto enqueue(const record& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, delivery)>(
            initiate_enqueue{state_.get()}, token, &r, static_cast<const record_view*>(nullptr));
    }
    template <class CompletionToken>
    auto enqueue(const record_view& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, delivery)>(
            initiate_enqueue{state_.get()}, token, static_cast<const record*>(nullptr), &r);
    }
    boost::asio::awaitable<delivery> enqueue(const record& r) {
        auto [ec, d] = co_await enqueue(r, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_send(ec, record_metadata{.topic = {}, .partition = r.partition.value_or(-1)}, r.topic);
        co_return std::move(d);
    }
    boost::asio::awaitable<delivery> enqueue(const record_view& r) {
        auto [ec, d] = co_await enqueue(r, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_send(ec, record_metadata{.topic = {}, .partition = r.partition.value_or(-1)}, r.topic);
        co_return std::move(d);
    }

    // ---- consumed offsets ---------------------------------------------------------------

private:
    template <class CompletionToken>
    auto send_offsets_owned(std::vector<partition_offset> offsets, group_metadata group, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [state = state_](auto handler, std::vector<partition_offset> o, group_metadata g) {
                detail::start_send_offsets(state, std::move(o), std::move(g), std::move(handler));
            },
            token, std::move(offsets), std::move(group));
    }

public:
    /// Makes committing `offsets` (each the offset of the next message to read) for the
    /// consumer group `group` part of this transaction: void(error_code). They count only
    /// if the transaction commits. `group` is copied when the operation starts. An
    /// abortable failure (e.g. the member is no longer in that generation of the group)
    /// aborts the transaction and completes with errc::transaction_aborted.
    template <class CompletionToken>
    auto send_offsets(std::vector<partition_offset> offsets, const group_metadata& group, CompletionToken&& token) {
        return send_offsets_owned(std::move(offsets), detail::copy_group_metadata(group),
                                  std::forward<CompletionToken>(token));
    }
    boost::asio::awaitable<void> send_offsets(std::vector<partition_offset> offsets, const group_metadata& group) {
        auto [ec] = co_await send_offsets(std::move(offsets), group, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_step(ec, "send offsets to the transaction");
    }

    /// Commits, within this transaction, that `processed` (messages received from
    /// `consumer`, or one message) are done: for each partition, the offset after the
    /// last of them, with the consumer's group metadata as it is now.
    template <detail::message_range Messages, class CompletionToken>
    auto send_offsets(const consumer& c, const Messages& processed, CompletionToken&& token) {
        return send_offsets_owned(detail::offsets_after(processed), c.group_metadata(),
                                  std::forward<CompletionToken>(token));
    }
    template <class CompletionToken>
    auto send_offsets(const consumer& c, const message& processed, CompletionToken&& token) {
        return send_offsets_owned(std::vector<partition_offset>{processed.next_offset()}, c.group_metadata(),
                                  std::forward<CompletionToken>(token));
    }
    template <detail::message_range Messages>
    boost::asio::awaitable<void> send_offsets(const consumer& c, const Messages& processed) {
        auto [ec] = co_await send_offsets(c, processed, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_step(ec, "send offsets to the transaction");
    }
    boost::asio::awaitable<void> send_offsets(const consumer& c, const message& processed) {
        auto [ec] = co_await send_offsets(c, processed, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_step(ec, "send offsets to the transaction");
    }

    // ---- ending it ----------------------------------------------------------------------

    /// Commits: flushes what was sent, then commits records and offsets atomically:
    /// void(error_code). An abortable failure aborts and completes with
    /// errc::transaction_aborted; a fatal one with errc::fenced or errc::fatal.
    template <class CompletionToken>
    auto commit(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [state = state_](auto handler) { detail::start_commit(state, std::move(handler)); }, token);
    }
    boost::asio::awaitable<void> commit() {
        auto [ec] = co_await commit(boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_step(ec, "commit transaction");
    }

    /// Aborts: what was sent is discarded (read_committed consumers never see it), and
    /// the offsets sent are not committed: void(error_code). Aborting a transaction that
    /// an error already aborted succeeds.
    template <class CompletionToken>
    auto abort(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [state = state_](auto handler) { detail::start_abort(state, std::move(handler)); }, token);
    }
    boost::asio::awaitable<void> abort() {
        auto [ec] = co_await abort(boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail_step(ec, "abort transaction");
    }

private:
    friend struct detail::transaction_access;
    explicit transaction(std::shared_ptr<detail::transaction_state> s) noexcept : state_(std::move(s)) {}

    void check_open_state() const {
        if (!state_) detail::throw_error(errc::invalid_argument, "not a transaction (moved from, or never begun)");
    }
    [[noreturn]] void fail_send(error_code ec, const record_metadata& md, std::string_view topic) const {
        auto& impl = detail::transaction_producer(*state_);
        detail::throw_error(ec, detail::describe_failure(impl, ec, detail::describe_send_failure(md, topic)));
    }
    [[noreturn]] void fail_step(error_code ec, std::string_view step) const {
        if (!state_) detail::throw_error(ec, std::string(step));
        detail::throw_error(ec, detail::describe_transaction_failure(detail::transaction_producer(*state_), ec, step));
    }

    struct initiate_send {
        detail::transaction_state* state;
        template <class Handler>
        void operator()(Handler&& handler, const record* owned, const record_view* view) const {
            if (!state) detail::throw_error(errc::invalid_argument, "send on a transaction that is not one");
            auto& impl = detail::transaction_producer(*state);
            auto* op = detail::send_op_impl<std::decay_t<Handler>>::create(std::move(handler), impl);
            op->owned = owned;
            op->view = view;
            detail::start_send(*state, op);
        }
    };
    struct initiate_enqueue {
        detail::transaction_state* state;
        template <class Handler>
        void operator()(Handler&& handler, const record* owned, const record_view* view) const {
            if (!state) detail::throw_error(errc::invalid_argument, "enqueue on a transaction that is not one");
            detail::start_enqueue(*state, owned, view, detail::with_recycling_allocator(std::move(handler)));
        }
    };

    std::shared_ptr<detail::transaction_state> state_;
};

// ---- the producer's transactional operations (declared in producer.hpp) ------------------

template <class CompletionToken>
auto producer::init_transactions(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(error_code)>(
        [impl = impl_](auto handler) { detail::start_init_transactions(impl, std::move(handler)); }, token);
}

inline boost::asio::awaitable<void> producer::init_transactions() {
    auto [ec] = co_await init_transactions(boost::asio::as_tuple(boost::asio::deferred));
    if (ec) detail::throw_error(ec, detail::describe_transaction_failure(*impl_, ec, "init transactions"));
}

template <class CompletionToken>
auto producer::begin_transaction(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(error_code, kcoro::transaction)>(
        [impl = impl_](auto handler) { detail::start_begin_transaction(impl, std::move(handler)); }, token);
}

inline boost::asio::awaitable<kcoro::transaction> producer::begin_transaction() {
    auto [ec, tx] = co_await begin_transaction(boost::asio::as_tuple(boost::asio::deferred));
    if (ec) detail::throw_error(ec, detail::describe_transaction_failure(*impl_, ec, "begin transaction"));
    co_return std::move(tx);
}

template <class Body>
boost::asio::awaitable<void> producer::transaction(Body body) {
    static_assert(std::is_invocable_r_v<boost::asio::awaitable<void>, Body&, kcoro::transaction&>,
                  "the body of a transaction is a callable taking kcoro::transaction& and returning "
                  "boost::asio::awaitable<void>");
    kcoro::transaction tx = co_await begin_transaction();
    std::exception_ptr failure;
    try {
        co_await std::invoke(body, tx);
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // The body's failure is what the caller needs to see; an abort that fails too
        // (e.g. fenced) makes the producer say so on its next use.
        if (tx.active()) co_await tx.abort(boost::asio::as_tuple(boost::asio::deferred));
        std::rethrow_exception(failure);
    }
    if (tx.committed()) co_return; // the body committed it itself
    if (!tx.active())
        detail::throw_error(errc::transaction_aborted,
                            detail::describe_transaction_failure(*impl_, errc::transaction_aborted,
                                                                 "transaction (aborted inside its scope)"));
    co_await tx.commit();
}

} // namespace kcoro
