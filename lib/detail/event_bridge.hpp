// The event bridge: librdkafka's event queue, drained on an Asio executor.
//
// librdkafka writes an eventfd when the queue turns non-empty; an Asio descriptor waits
// for it, and on readiness the bridge drains the queue on its strand, handing each
// event to the client. A slow timer drains too, as a safety net (and so that consumers
// are polled well within max.poll.interval.ms). Nothing here blocks or busy-polls.
#pragma once

#include <librdkafka/rdkafka.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <memory>

namespace kcoro::detail {

/// What a client implements to receive its events.
class event_sink {
public:
    /// Handles one event; the bridge destroys it afterwards.
    virtual void on_event(rd_kafka_event_t* event) = 0;
    /// Called after each drain, when the queue was found empty or a turn ended.
    virtual void after_drain() = 0;
    /// Handles one event and may keep it: returns true when the sink took ownership
    /// (a consumer keeps FETCH events, which own their message). By default the event
    /// goes to on_event() and the bridge destroys it.
    virtual bool adopt_event(rd_kafka_event_t* event) {
        on_event(event);
        return false;
    }
    /// False while the sink cannot take more events (a consumer's local buffer is full):
    /// the bridge then leaves them queued in librdkafka, whose own limits bound memory,
    /// until drain() is called again.
    virtual bool accepting_events() { return true; }

protected:
    ~event_sink() = default;
};

class event_bridge {
public:
    using strand_type = boost::asio::strand<boost::asio::any_io_executor>;

    /// `queue` must outlive the bridge (or stop() must be called first).
    event_bridge(const boost::asio::any_io_executor& executor, rd_kafka_queue_t* queue);
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

    const strand_type& strand() const noexcept { return strand_; }
    bool running() const noexcept { return running_; }

private:
    void wait();
    void arm_timer();

    static constexpr int max_events_per_turn = 256;
    static constexpr std::chrono::milliseconds safety_interval{500};

    // The descriptor and timer name the strand's concrete type: as any_io_executor it
    // would not fit the small-object buffer, and each wait's work tracking would
    // allocate a copy of it.
    strand_type strand_;
    rd_kafka_queue_t* queue_;
    boost::asio::posix::basic_stream_descriptor<strand_type> eventfd_;
    boost::asio::basic_waitable_timer<std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>,
                                      strand_type>
        timer_;
    std::shared_ptr<void> owner_;
    event_sink* sink_ = nullptr;
    bool running_ = false;
    bool drain_posted_ = false;
};

} // namespace kcoro::detail
