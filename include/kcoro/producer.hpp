// kcoro: the producer.
//
//     kcoro::producer producer(co_await asio::this_coro::executor,
//                              {{"bootstrap.servers", "localhost:9092"}});
//     kcoro::record_metadata md = co_await producer.send({.topic = "t", .value = "hi"});
//
// Every asynchronous operation has two forms:
//  - without a completion token it returns an asio::awaitable that throws kcoro::error
//    (a system_error naming the topic/partition involved);
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
// asio::error::operation_aborted. Call close() first to deliver what is queued.
//
// Backpressure. When librdkafka's local queue (queue.buffering.max.messages / .kbytes) is
// full, send() waits for delivery reports to make room instead of failing.
//
// Cancellation (per operation, through the handler's cancellation slot): a send still
// waiting for room is removed and completes with operation_aborted, and is never sent.
// Once librdkafka has accepted the record it cannot be recalled: terminal or partial
// cancellation ends the wait with operation_aborted while the delivery goes ahead.
#pragma once

#include <kcoro/config.hpp>
#include <kcoro/detail/send_op_impl.hpp>
#include <kcoro/error.hpp>
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
#include <memory>
#include <type_traits>

namespace kcoro {

namespace detail {
void start_send(producer_impl& impl, send_op* op);
void start_flush(const std::shared_ptr<producer_impl>& impl, std::chrono::milliseconds timeout,
                 boost::asio::any_completion_handler<void(error_code)> handler);
void start_close(const std::shared_ptr<producer_impl>& impl, std::chrono::milliseconds timeout,
                 boost::asio::any_completion_handler<void(error_code)> handler);
void abandon(std::shared_ptr<producer_impl> impl) noexcept;
std::string describe_send_failure(const record_metadata& md, std::string_view topic);
[[noreturn]] void throw_error(error_code ec, const std::string& context);
} // namespace detail

class producer {
public:
    using executor_type = boost::asio::any_io_executor;

    /// Waits with no deadline.
    static constexpr std::chrono::milliseconds no_timeout = std::chrono::milliseconds::max();

    /// Creates a producer from librdkafka properties. Throws kcoro::error naming the key
    /// when a property is unknown or its value rejected.
    producer(executor_type executor, const config& properties);

    template <class ExecutionContext>
        requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
    producer(ExecutionContext& context, const config& properties)
        : producer(context.get_executor(), properties) {}

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

    boost::asio::awaitable<record_metadata> send(const record& r) {
        auto [ec, md] = co_await send(r, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_error(ec, detail::describe_send_failure(md, r.topic));
        co_return md;
    }

    boost::asio::awaitable<record_metadata> send(const record_view& r) {
        auto [ec, md] = co_await send(r, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_error(ec, detail::describe_send_failure(md, r.topic));
        co_return md;
    }

    /// Completes once every record sent before it has been delivered or has failed
    /// (its delivery reported), or with errc::timed_out after `timeout`. Records queued
    /// with linger are sent at once.
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

    /// Delivers what is queued (waiting up to `timeout`), aborts what is left (those
    /// sends complete with operation_aborted), and releases the client. Completes with
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

    /// Records accepted but not yet delivered (librdkafka's out-queue length).
    std::size_t in_flight() const noexcept;

private:
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
