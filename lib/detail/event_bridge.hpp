// The event bridge: librdkafka's event queue, drained on an Asio executor.
//
// librdkafka writes an eventfd when the queue turns non-empty; an Asio descriptor waits
// for it, and on readiness the bridge drains the queue on its strand, handing each
// event to the client. A slow timer drains too, as a safety net (and so that consumers
// are polled well within max.poll.interval.ms). Nothing here blocks or busy-polls.
#pragma once

#include <librdkafka/rdkafka.h>

#include <boost/asio/any_io_executor.hpp>

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace kcoro::detail {

/// What a client implements to receive its events.
class event_sink {
public:
    /// Handles one event; the bridge destroys it afterwards.
    virtual void on_event(rd_kafka_event_t* event) = 0;
    /// Called after each drain, when the queue was found empty or a turn ended.
    virtual void after_drain() = 0;
    /// Takes what is queued on `queue`, up to `budget` items, and returns how many it took
    /// (0: the queue was empty). By default one event, handed to on_event() and destroyed;
    /// a consumer takes its messages in batches instead.
    virtual std::size_t take(rd_kafka_queue_t* queue, std::size_t budget);
    /// False while the sink cannot take more events (a consumer's local buffer is full):
    /// the bridge then leaves them queued in librdkafka, whose own limits bound memory,
    /// until drain() is called again.
    virtual bool accepting_events() { return true; }

protected:
    ~event_sink() = default;
};

class event_bridge {
public:
    /// Items (what take() counts) drained per turn before the bridge re-posts itself so
    /// that other handlers get to run.
    static constexpr std::size_t default_items_per_turn = 256;

    /// `queue` must outlive the bridge (or stop() must be called first).
    event_bridge(const boost::asio::any_io_executor& executor, rd_kafka_queue_t* queue,
                 std::size_t items_per_turn = default_items_per_turn);
    event_bridge(const event_bridge&) = delete;
    event_bridge& operator=(const event_bridge&) = delete;
    ~event_bridge();

    /// Starts waiting. `owner` is kept alive while a wait is pending; `sink` must live
    /// as long as `owner`.
    void start(std::shared_ptr<void> owner, event_sink* sink);

    /// Drains what is queued now, then stops waiting and detaches the queue from the fd
    /// for good (the queue may be destroyed afterwards). Call on the strand.
    void stop();

    /// Stops for good without draining: for an execution context that is shutting down,
    /// where no handler may run any more. Drops the reference to the owner (which would
    /// otherwise keep the client alive for ever) and detaches the queue.
    void abandon() noexcept;

    /// Drains the queue now (on the strand).
    void drain();

    /// The strand the bridge drains on, for the client's own handlers and timers.
    const boost::asio::any_io_executor& strand() const noexcept { return strand_; }

    /// Runs fn(owner.get()) on the strand, later. For the client's frequent hand-overs
    /// (retrying sends that wait for room, arming a timer): posted through strand(), an
    /// any_io_executor, which drops a handler's allocator, they would take memory from
    /// Asio's per-thread cache; this takes it from the bridge's pool.
    void post(void (*fn)(void*), std::shared_ptr<void> owner);
    bool running() const noexcept { return running_; }

private:
    // The strand, the eventfd's descriptor and the timer, typed on the strand's concrete
    // executor (see event_bridge.cpp).
    struct waiter;
    template <class Strand>
    struct waiter_on;
    static std::unique_ptr<waiter> make_waiter(const boost::asio::any_io_executor& executor);

    void wait();
    void arm_timer();
    void post_drain();
    void on_readable(const boost::system::error_code& ec);
    void on_timer(const boost::system::error_code& ec);

    static constexpr std::chrono::milliseconds safety_interval{500};

    std::unique_ptr<waiter> waiter_;
    boost::asio::any_io_executor strand_;
    rd_kafka_queue_t* queue_;
    std::size_t items_per_turn_;
    std::shared_ptr<void> owner_;
    event_sink* sink_ = nullptr;
    bool running_ = false;
    bool drain_posted_ = false;
};

} // namespace kcoro::detail
