// kcoro: the producer.
//
//     kcoro::producer producer(co_await asio::this_coro::executor,
//                              {{"bootstrap.servers", "localhost:9092"}});
//     const kcoro::record r{.topic = "t", .value = "hi"};
//     kcoro::record_metadata md = co_await producer.send(r);
//
// (Name the record: GCC 12 destroys a temporary written inside a co_await expression,
// such as `co_await producer.send({.topic = "t"})`, twice, which corrupts the heap once
// a string outgrows its small buffer; seen with GCC 12.2.)
//
// Every asynchronous operation has two forms:
//  - without a completion token it is awaitable with `co_await`, and throws kcoro::error
//    (a system_error naming the topic/partition involved). send() then returns a
//    kcoro::async_operation (no coroutine frame per record; it converts to an
//    asio::awaitable where one is needed), the others an asio::awaitable;
//  - with a completion token (asio::deferred, asio::use_future, asio::as_tuple(...),
//    asio::redirect_error(...), a callback, ...) it follows Asio's token model with the
//    signature void(error_code, T). On failure T still says what the operation was about
//    (record_metadata carries the topic and partition).
//
// Threads. librdkafka's delivery reports arrive on the producer's executor: an eventfd
// tells an Asio wait that librdkafka's event queue has work, and the executor drains it.
// Handlers run on their associated executor (directly from the drain when that is the
// producer's own executor). No user code runs on librdkafka's threads, and no executor
// thread waits for librdkafka: the blocking calls (flush, close) run on a worker thread.
//
// Lifetimes. The record passed to send() must stay valid until the operation completes
// (as Asio buffers must); `co_await producer.send(...)` guarantees that by itself.
// Destroying a producer aborts what is not yet delivered: each pending send completes with
// an error (see close()). Call close() first to deliver what is queued.
//
// Pipelining. Awaiting each send costs a linger + round trip per record, so one
// coroutine should not send records one by one. send_batch() sends a whole range as one
// operation and reports each record's outcome; enqueue() completes as soon as librdkafka
// accepted the record and yields a `delivery` to await later. Records of one partition
// are delivered in the order they were sent (idempotence keeps it so across retries).
//
// Backpressure. When librdkafka's local queue (queue.buffering.max.messages / .kbytes) is
// full, send(), send_batch() and enqueue() wait for delivery reports to make room instead
// of failing (no busy loop), keeping the order of records; with
// producer_options::when_queue_full = full_queue::fail_fast they fail with errc::queue_full.
//
// Reliability. Idempotence is on unless the properties say otherwise
// (enable.idempotence=false): retries then never duplicate or reorder records, and
// acks=all is implied. acks, retries, delivery.timeout.ms (alias message.timeout.ms) are
// librdkafka's properties. A record not delivered within delivery.timeout.ms fails with
// errc::message_timed_out. A fatal error (e.g. an idempotence sequence desynchronised)
// makes the producer unusable: pending and later operations fail with errc::fatal, the
// exceptions thrown name the underlying reason, and fatal_error() reports it.
//
// Security (TLS, SASL: librdkafka's properties, or kcoro/security.hpp). When a broker
// refuses the client (wrong credentials: errc::authentication; an untrusted or wrong-host
// certificate: errc::ssl), every record still queued in the client fails at once with
// that error, naming the broker and the reason, instead of timing out after
// delivery.timeout.ms as librdkafka 2.0 would (records already sent complete as usual).
// The client keeps reconnecting: later sends succeed once the brokers accept it. A topic
// the principal may not write fails its records with errc::topic_authorization_failed.
//
// Observability. librdkafka's logs, statistics and error events go to the callbacks of
// producer_options, run on the producer's executor (see producer_options.hpp).
//
// Transactions. With a transactional.id, records are sent inside transactions only:
// co_await producer.transaction(body) runs `body` as one atomic unit (see
// <kcoro/transaction.hpp>, which defines init_transactions(), begin_transaction() and
// transaction()); sends outside a transaction fail with errc::not_in_transaction.
//
// Cancellation (per operation, through the handler's cancellation slot): a send still
// waiting for room is removed and completes with operation_aborted, and is never sent.
// Once librdkafka has accepted the record it cannot be recalled: terminal or partial
// cancellation ends the wait with operation_aborted while the delivery goes ahead.
#pragma once

#include <kcoro/config.hpp>
#include <kcoro/delivery.hpp>
#include <kcoro/delivery_report.hpp>
#include <kcoro/detail/batch_op.hpp>
#include <kcoro/detail/send_op_impl.hpp>
#include <kcoro/error.hpp>
#include <kcoro/producer_options.hpp>
#include <kcoro/record.hpp>
#include <kcoro/record_metadata.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>

namespace kcoro {

class transaction;

namespace detail {
void start_send(producer_impl& impl, send_op* op);
void start_flush(const std::shared_ptr<producer_impl>& impl, std::chrono::milliseconds timeout,
                 boost::asio::any_completion_handler<void(error_code)> handler);
void start_close(const std::shared_ptr<producer_impl>& impl, std::chrono::milliseconds timeout,
                 boost::asio::any_completion_handler<void(error_code)> handler);
void start_enqueue(producer_impl& impl, const record* owned, const record_view* view,
                   boost::asio::any_completion_handler<void(error_code, delivery)> handler);
void abandon(std::shared_ptr<producer_impl> impl) noexcept;
/// Adds the fatal error's reason when `ec` is errc::fatal.
std::string describe_failure(const producer_impl& impl, error_code ec, std::string context);

template <class R>
concept record_range = std::ranges::forward_range<R> && std::ranges::sized_range<R> &&
                       (std::is_same_v<std::remove_cvref_t<std::ranges::range_reference_t<R>>, record> ||
                        std::is_same_v<std::remove_cvref_t<std::ranges::range_reference_t<R>>, record_view>) &&
                       std::is_lvalue_reference_v<std::ranges::range_reference_t<R>>;
} // namespace detail

class producer {
public:
    using executor_type = boost::asio::any_io_executor;

    /// Waits with no deadline.
    static constexpr std::chrono::milliseconds no_timeout = std::chrono::milliseconds::max();

    /// Creates a producer from librdkafka properties. Throws kcoro::error naming the key
    /// when a property is unknown or its value rejected.
    /// `options`: log/statistics/error callbacks, partitioner, full-queue policy.
    producer(executor_type executor, const config& properties, producer_options options = {});

    template <class ExecutionContext>
        requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
    producer(ExecutionContext& context, const config& properties, producer_options options = {})
        : producer(context.get_executor(), properties, std::move(options)) {}

    producer(producer&&) noexcept = default;
    producer& operator=(producer&& other) noexcept;
    producer(const producer&) = delete;
    producer& operator=(const producer&) = delete;

    /// Aborts what is not yet delivered (see the header comment) and releases the client
    /// in the background: it never blocks.
    ~producer();

    executor_type get_executor() const noexcept;

    /// Produces a record; completes with its metadata once the cluster acknowledged it
    /// (as configured by `acks`), or with the error that made delivery fail.
    template <class CompletionToken>
    auto send(const record& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, record_metadata)>(
            initiate_send{impl_.get()}, token, &r, static_cast<const record_view*>(nullptr));
    }

    /// Produces a record without copying its value: the value's bytes must stay valid
    /// until the delivery is reported, even when the operation is cancelled.
    template <class CompletionToken>
    auto send(const record_view& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, record_metadata)>(
            initiate_send{impl_.get()}, token, static_cast<const record*>(nullptr), &r);
    }

    /// Without a token: an async_operation to co_await, yielding the metadata or throwing
    /// kcoro::error naming the topic and partition (and a fatal error's reason).
    auto send(const record& r) {
        return detail::make_send_operation(initiate_send{impl_.get()}, r.topic, &r,
                                           static_cast<const record_view*>(nullptr));
    }

    auto send(const record_view& r) {
        return detail::make_send_operation(initiate_send{impl_.get()}, r.topic, static_cast<const record*>(nullptr),
                                           &r);
    }

    /// Sends a range of records (`record` or `record_view`, kept alive by the caller until
    /// completion) as one operation: void(error_code, std::size_t failed). reports[i]
    /// receives the outcome of the i-th record (reports.size() must equal the range's
    /// size, else kcoro::error with errc::invalid_argument is thrown before anything is
    /// sent). The error_code is the first failed record's error (in range order), empty
    /// when all were delivered; `failed` counts the failures. Records are enqueued in
    /// order, waiting for room as send() does.
    ///
    /// Cancellation: records still waiting for room are not sent (their reports say
    /// operation_aborted); the operation completes with operation_aborted at once, and
    /// reports are no longer written (the records in librdkafka are still delivered).
    template <detail::record_range Records, class CompletionToken>
    auto send_batch(const Records& records, std::span<delivery_report> reports, CompletionToken&& token) {
        check_batch_size(std::ranges::size(records), reports.size());
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::size_t)>(
            [impl = impl_.get(), reports](auto handler, const Records* rs) {
                auto* b = detail::batch_op_impl<std::decay_t<decltype(handler)>>::create(std::move(handler), *impl,
                                                                                          reports);
                std::size_t i = 0;
                for (const auto& r : *rs) {
                    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(r)>, record>)
                        b->elements[i].owned = &r;
                    else
                        b->elements[i].view = &r;
                    ++i;
                }
                detail::start_batch(*impl, b);
            },
            token, &records);
    }

    /// Awaitable send_batch(): yields the number of failed records (0: all delivered;
    /// `reports` say which failed and why). Throws kcoro::error (the first failure's)
    /// when no record at all was delivered, or when the operation was cancelled.
    template <detail::record_range Records>
    boost::asio::awaitable<std::size_t> send_batch(const Records& records, std::span<delivery_report> reports) {
        auto [ec, failed] = co_await send_batch(records, reports, boost::asio::as_tuple(boost::asio::deferred));
        if (ec && (failed == reports.size() || ec == boost::asio::error::operation_aborted))
            detail::throw_error(ec, detail::describe_failure(*impl_, ec, "send_batch"));
        co_return failed;
    }

    /// Enqueues a record and completes once librdkafka has accepted it (after waiting for
    /// room if the local queue was full): void(error_code, delivery). Await the delivery
    /// for the record's metadata. Errors known before acceptance (invalid partition,
    /// oversized record, closed producer, queue_full in fail-fast mode) fail this
    /// operation; delivery errors are reported by the delivery. The record is copied
    /// (a record_view's value is not: keep it alive until the delivery is reported).
    /// Cancellation applies while waiting for room (the record is then not sent).
    template <class CompletionToken>
    auto enqueue(const record& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, delivery)>(
            initiate_enqueue{impl_.get()}, token, &r, static_cast<const record_view*>(nullptr));
    }

    template <class CompletionToken>
    auto enqueue(const record_view& r, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, delivery)>(
            initiate_enqueue{impl_.get()}, token, static_cast<const record*>(nullptr), &r);
    }

    boost::asio::awaitable<delivery> enqueue(const record& r) {
        auto [ec, d] = co_await enqueue(r, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail(ec, record_metadata{.topic = {}, .partition = r.partition.value_or(-1)}, r.topic);
        co_return std::move(d);
    }

    boost::asio::awaitable<delivery> enqueue(const record_view& r) {
        auto [ec, d] = co_await enqueue(r, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) fail(ec, record_metadata{.topic = {}, .partition = r.partition.value_or(-1)}, r.topic);
        co_return std::move(d);
    }

    /// Completes once every record sent before it has been delivered or has failed
    /// (its delivery reported), or with errc::timed_out after `timeout`. Records queued
    /// with linger are sent at once. Cancellation ends the wait with operation_aborted
    /// (the records are still delivered).
    template <class CompletionToken>
    auto flush(std::chrono::milliseconds timeout, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, std::chrono::milliseconds t) {
                detail::start_flush(impl, t, std::move(handler));
            },
            token, timeout);
    }

    boost::asio::awaitable<void> flush(std::chrono::milliseconds timeout = no_timeout) {
        auto [ec] = co_await flush(timeout, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_error(ec, "flush");
    }

    /// Delivers what is queued (waiting up to `timeout`), aborts what is left, and
    /// releases the client. Aborted sends complete with operation_aborted (still waiting
    /// for room), errc::purged_from_queue (never sent) or errc::purged_in_flight (sent,
    /// outcome unknown: it may have been written). Cancelling a close ends its wait only;
    /// the close goes on. Completes with
    /// errc::timed_out when records had to be aborted. Further operations fail with
    /// errc::client_closed. Closing twice is harmless.
    template <class CompletionToken>
    auto close(std::chrono::milliseconds timeout, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, std::chrono::milliseconds t) {
                detail::start_close(impl, t, std::move(handler));
            },
            token, timeout);
    }

    boost::asio::awaitable<void> close(std::chrono::milliseconds timeout = no_timeout) {
        auto [ec] = co_await close(timeout, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_error(ec, "close");
    }

    // ---- transactions (a transactional.id is set): defined in <kcoro/transaction.hpp> ----

    /// Registers the transactional.id with its coordinator: fences any older producer
    /// with the same id and aborts the transaction it left open. void(error_code).
    /// Optional (the first transaction does it), but doing it at startup fences a
    /// previous instance at once. Retriable failures are retried for up to
    /// transaction.timeout.ms.
    template <class CompletionToken>
    auto init_transactions(CompletionToken&& token);
    boost::asio::awaitable<void> init_transactions();

    /// Begins a transaction (initialising transactions first if needed):
    /// void(error_code, kcoro::transaction). End it with its commit() or abort();
    /// destroying it open aborts it.
    template <class CompletionToken>
    auto begin_transaction(CompletionToken&& token);
    boost::asio::awaitable<kcoro::transaction> begin_transaction();

    /// Runs `body` (a callable taking kcoro::transaction& and returning
    /// asio::awaitable<void>) inside a transaction: committed when the body returns,
    /// aborted when it throws (whose exception is then rethrown). Throws kcoro::error with
    /// errc::transaction_aborted when the commit had to be aborted, errc::fenced /
    /// errc::fatal when the producer can no longer be used.
    template <class Body>
    boost::asio::awaitable<void> transaction(Body body);

    /// Records accepted but not yet delivered (librdkafka's out-queue length).
    std::size_t in_flight() const noexcept;

    /// After a fatal error: librdkafka's underlying error (e.g. an out-of-order sequence)
    /// and its reason. Empty error_code while the producer is healthy.
    error_code fatal_error() const;
    std::string fatal_reason() const;

private:
    [[noreturn]] void fail(error_code ec, const record_metadata& md, std::string_view topic) const {
        detail::throw_error(ec, detail::describe_failure(*impl_, ec, detail::describe_send_failure(md, topic)));
    }
    static void check_batch_size(std::size_t records, std::size_t reports);

    struct initiate_enqueue {
        detail::producer_impl* impl;

        template <class Handler>
        void operator()(Handler&& handler, const record* owned, const record_view* view) const {
            detail::start_enqueue(*impl, owned, view, detail::with_recycling_allocator(std::move(handler)));
        }
    };

    struct initiate_send {
        detail::producer_impl* impl;

        template <class Handler>
        void operator()(Handler&& handler, const record* owned, const record_view* view) const {
            auto* op = detail::send_op_impl<std::decay_t<Handler>>::create(std::move(handler), *impl);
            op->owned = owned;
            op->view = view;
            detail::start_send(*impl, op);
        }
    };

    std::shared_ptr<detail::producer_impl> impl_;
};

} // namespace kcoro
