// kcoro: a record accepted by the producer, whose delivery is still to be reported.
//
// producer::enqueue() completes as soon as librdkafka has accepted a record (it waited
// for room if the local queue was full) and yields a `delivery`; awaiting the delivery
// yields the record's metadata once the cluster acknowledged it. One coroutine can
// so keep thousands of records in flight:
//
//     std::vector<kcoro::delivery> pending;
//     for (const auto& r : records) pending.push_back(co_await producer.enqueue(r));
//     for (auto& d : pending) handle(co_await d.wait());
//
// A delivery may be awaited once or several times (after its report arrived, each wait
// completes through the executor at once). Cancelling a wait ends that wait with
// operation_aborted: the record cannot be recalled, a later wait still sees the outcome.
// Dropping a delivery unawaited is fine: the record is still delivered.
#pragma once

#include <kcoro/detail/send_exception_handler.hpp>
#include <kcoro/error.hpp>
#include <kcoro/record_metadata.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace kcoro {

class delivery;

namespace detail {
struct delivery_state;
void start_delivery_wait(delivery_state* state,
                         boost::asio::any_completion_handler<void(error_code, record_metadata)> handler);
void release_delivery(delivery_state* state) noexcept;
bool delivery_ready(const delivery_state* state) noexcept;
[[noreturn]] void throw_error(error_code ec, const std::string& context);
std::string describe_send_failure(const record_metadata& md, std::string_view topic);

// Type-erased handlers allocate through their associated allocator: handlers without
// one of their own get Asio's thread-local recycling allocator, so steady streams of
// operations allocate nothing.
template <class Handler>
auto with_recycling_allocator(Handler&& handler) {
    using alloc = boost::asio::associated_allocator_t<std::decay_t<Handler>>;
    if constexpr (std::is_same_v<alloc, std::allocator<void>>)
        return boost::asio::bind_allocator(boost::asio::recycling_allocator<void>(), std::forward<Handler>(handler));
    else
        return std::forward<Handler>(handler);
}

struct delivery_access {
    static delivery make(delivery_state* s) noexcept;
};
} // namespace detail

class delivery {
public:
    /// An empty delivery (valid() is false), as enqueue() yields when it fails.
    delivery() noexcept = default;
    delivery(delivery&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
    delivery& operator=(delivery&& other) noexcept {
        if (this != &other) {
            reset();
            state_ = std::exchange(other.state_, nullptr);
        }
        return *this;
    }
    delivery(const delivery&) = delete;
    delivery& operator=(const delivery&) = delete;
    ~delivery() { reset(); }

    /// True when this refers to an accepted record.
    bool valid() const noexcept { return state_ != nullptr; }

    /// True once the record's delivery has been reported (a wait completes at once).
    bool ready() const noexcept { return state_ && detail::delivery_ready(state_); }

    /// Waits for the delivery report: void(error_code, record_metadata). Waiting on an
    /// empty delivery completes with errc::invalid_argument. One wait at a time.
    template <class CompletionToken>
    auto async_wait(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, record_metadata)>(initiate_wait{}, token,
                                                                                              state_);
    }

    /// Waits for the delivery report: an async_operation to co_await, yielding the
    /// metadata or throwing kcoro::error when delivery failed.
    auto wait() { return detail::make_send_operation(initiate_wait{}, {}, state_); }

private:
    struct initiate_wait {
        template <class Handler>
        void operator()(Handler&& handler, detail::delivery_state* s) const {
            detail::start_delivery_wait(s, detail::with_recycling_allocator(std::forward<Handler>(handler)));
        }
    };

    friend struct detail::delivery_access;
    explicit delivery(detail::delivery_state* s) noexcept : state_(s) {}
    void reset() noexcept {
        if (state_) detail::release_delivery(std::exchange(state_, nullptr));
    }

    detail::delivery_state* state_ = nullptr;
};

inline delivery detail::delivery_access::make(delivery_state* s) noexcept { return delivery(s); }

} // namespace kcoro
