// kcoro: what the one-record operations return when called without a completion token.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <utility>

namespace kcoro {

/// An asynchronous operation, not yet started, that yields a T or fails with an exception:
/// what send() and delivery::wait() return without a completion token.
///
/// `co_await` it in an asio::awaitable coroutine: it yields the T, or throws kcoro::error
/// saying what failed. Awaited directly it costs no coroutine frame of its own (an
/// asio::awaitable<T> would cost one per call, most of the price of a one-record await).
/// Where an awaitable is needed (co_spawn, awaitable operators, keeping it for later), it
/// converts to asio::awaitable<T>. Like asio::deferred's operations it also starts with any
/// completion token, `std::move(op)(token)`, with the signature void(std::exception_ptr, T).
///
/// It refers to the arguments it was made from (the record, the delivery): start or await
/// it while they are alive, as `co_await producer.send(r)` does.
template <class T, class Deferred>
class [[nodiscard]] async_operation {
public:
    using value_type = T;

    explicit async_operation(Deferred op) : op_(std::move(op)) {}

    /// Starts the operation with a completion token for void(std::exception_ptr, T).
    template <class CompletionToken>
    auto operator()(CompletionToken&& token) && -> decltype(std::declval<Deferred>()(std::forward<CompletionToken>(token))) {
        return std::move(op_)(std::forward<CompletionToken>(token));
    }

    /// The operation as an awaitable, which starts it when awaited.
    operator boost::asio::awaitable<T>() && { return as_awaitable(std::move(op_)); }

private:
    static boost::asio::awaitable<T> as_awaitable(Deferred op) { co_return co_await std::move(op); }

    Deferred op_;
};

} // namespace kcoro
