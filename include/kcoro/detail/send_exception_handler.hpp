// kcoro internals: one-record sends awaited without a completion token report a failure as
// an exception, void(std::exception_ptr, record_metadata), so that `co_await producer.send(r)`
// needs no coroutine frame of its own to turn an error_code into a kcoro::error.
#pragma once

#include <kcoro/async_operation.hpp>
#include <kcoro/error.hpp>
#include <kcoro/record_metadata.hpp>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/version.hpp>

#include <exception>
#include <string_view>
#include <utility>

namespace kcoro::detail {

class producer_impl;

/// The exception for a failed send: a kcoro::error naming the topic (`topic`, else md.topic)
/// and partition, with the reason of a fatal error or of a broker's refusal when `producer`
/// is given. Never throws: an allocation failure becomes the exception returned.
std::exception_ptr make_send_failure(const producer_impl* producer, error_code ec, const record_metadata& md,
                                     std::string_view topic) noexcept;

/// Completes `handler`, a void(std::exception_ptr, record_metadata) handler, from the
/// void(error_code, record_metadata) completion of a send.
template <class Handler>
struct send_exception_handler {
    Handler handler;
    std::string_view topic; ///< the record's (it outlives the operation); empty: md.topic
    /// Set by prepare_failure() while the producer reports the failure, when its fatal
    /// error's reason is still at hand; otherwise described at completion.
    std::exception_ptr failure{};

    void operator()(error_code ec, const record_metadata& md) {
        if (ec && !failure) failure = make_send_failure(nullptr, ec, md, topic);
        std::move(handler)(std::move(failure), md);
    }
};

template <class Handler>
void prepare_failure(Handler&, const producer_impl&, error_code, const record_metadata&) noexcept {}

template <class Handler>
void prepare_failure(send_exception_handler<Handler>& h, const producer_impl& producer, error_code ec,
                     const record_metadata& md) noexcept {
    h.failure = make_send_failure(&producer, ec, md, h.topic);
}

/// Starts `initiation` (whose handlers take void(error_code, record_metadata)) with the
/// handler wrapped in a send_exception_handler.
template <class Initiation>
struct initiate_with_exception {
    Initiation initiation;
    std::string_view topic;

    template <class Handler, class... Args>
    void operator()(Handler&& handler, Args&&... args) const {
        initiation(send_exception_handler<std::decay_t<Handler>>{std::forward<Handler>(handler), topic},
                   std::forward<Args>(args)...);
    }
};

/// The token-less form of a one-record send: an async_operation yielding record_metadata.
template <class Initiation, class... Args>
auto make_send_operation(Initiation initiation, std::string_view topic, Args... args) {
    auto op = boost::asio::async_initiate<const boost::asio::deferred_t&, void(std::exception_ptr, record_metadata)>(
        initiate_with_exception<Initiation>{std::move(initiation), topic}, boost::asio::deferred, std::move(args)...);
    return async_operation<record_metadata, decltype(op)>(std::move(op));
}

} // namespace kcoro::detail

// The wrapped handler keeps the executor, allocator and cancellation slot of the handler it wraps.
template <template <typename, typename> class Associator, typename Handler, typename DefaultCandidate>
struct boost::asio::associator<Associator, kcoro::detail::send_exception_handler<Handler>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type
    get(const kcoro::detail::send_exception_handler<Handler>& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler);
    }
    static auto get(const kcoro::detail::send_exception_handler<Handler>& h, const DefaultCandidate& c) noexcept
        -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};

#if BOOST_VERSION < 108200
// Boost 1.80 and 1.81 cannot co_await an operation completing with void(std::exception_ptr, T):
// Asio's awaitable handler for that signature dereferences its result struct instead of the
// exception_ptr and does not compile (chriskohlhoff/asio issues #1172, #1190). This is that
// handler, corrected, for the one signature kcoro completes with; later Boosts use Asio's own.
template <typename R, typename Executor>
class boost::asio::detail::awaitable_async_op_handler<R(std::exception_ptr, kcoro::record_metadata), Executor>
    : public awaitable_thread<Executor> {
public:
    struct result_type {
        std::exception_ptr* ex_;
        kcoro::record_metadata* value_;
    };

    awaitable_async_op_handler(awaitable_thread<Executor>* h, result_type& result)
        : awaitable_thread<Executor>(std::move(*h)), result_(result) {}

    void operator()(std::exception_ptr ex, kcoro::record_metadata value) {
        result_.ex_ = &ex;
        result_.value_ = &value;
        this->entry_point()->top_of_stack_->attach_thread(this);
        this->entry_point()->top_of_stack_->clear_cancellation_slot();
        this->pump();
    }

    static kcoro::record_metadata resume(result_type& result) {
        if (*result.ex_) std::rethrow_exception(std::exchange(*result.ex_, nullptr));
        return std::move(*result.value_);
    }

private:
    result_type& result_;
};
#endif
