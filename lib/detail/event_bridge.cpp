#include "event_bridge.hpp"
#include "rdkafka_ptr.hpp"

#include <kcoro/error.hpp>

#include <boost/asio/post.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace kcoro::detail {

namespace {

int make_eventfd() {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "kcoro: eventfd");
    return fd;
}

} // namespace

event_bridge::event_bridge(const boost::asio::any_io_executor& executor, rd_kafka_queue_t* queue)
    : strand_(boost::asio::make_strand(executor)), queue_(queue), eventfd_(strand_, make_eventfd()),
      timer_(strand_) {}

event_bridge::~event_bridge() {
    if (queue_) rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
}

void event_bridge::start(std::shared_ptr<void> owner, event_sink* sink) {
    owner_ = std::move(owner);
    sink_ = sink;
    running_ = true;
    // librdkafka writes this payload to the fd on each empty-to-non-empty transition.
    // An eventfd takes only 8-byte writes: a shorter payload fails silently and stalls.
    static constexpr std::uint64_t one = 1;
    rd_kafka_queue_io_event_enable(queue_, eventfd_.native_handle(), &one, sizeof one);
    // Events queued before the fd was set never wrote it: drain once now.
    boost::asio::post(strand_, [this, keep = owner_] {
        if (running_) drain();
    });
    wait();
    arm_timer();
}

void event_bridge::wait() {
    eventfd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this, keep = owner_](const boost::system::error_code& ec) {
                            if (ec || !running_) return;
                            std::uint64_t count;
                            [[maybe_unused]] auto n = ::read(eventfd_.native_handle(), &count, sizeof count);
                            // Wait again first: a handler that throws out of drain() must
                            // not leave the bridge deaf.
                            wait();
                            drain();
                        });
}

void event_bridge::arm_timer() {
    timer_.expires_after(safety_interval);
    timer_.async_wait([this, keep = owner_](const boost::system::error_code& ec) {
        if (ec || !running_) return;
        arm_timer();
        drain();
    });
}

void event_bridge::drain() {
    // librdkafka re-arms the fd only at the next poll, so each wake-up drains until the
    // queue is empty; a long queue is drained in turns so other handlers get to run.
    for (int i = 0; i < max_events_per_turn; ++i) {
        if (!sink_->accepting_events()) {
            sink_->after_drain();
            return;
        }
        event_ptr event(rd_kafka_queue_poll(queue_, 0));
        if (!event) {
            sink_->after_drain();
            return;
        }
        if (sink_->adopt_event(event.get())) (void)event.release();
        if (!running_) return;
    }
    sink_->after_drain();
    if (!drain_posted_) {
        drain_posted_ = true;
        boost::asio::post(strand_, [this, keep = owner_] {
            drain_posted_ = false;
            if (running_) drain();
        });
    }
}

void event_bridge::stop() {
    if (!running_) return;
    drain();
    running_ = false;
    rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
    queue_ = nullptr; // detached for good: the client may now destroy the queue
    boost::system::error_code ignored;
    eventfd_.cancel(ignored);
    timer_.cancel();
    owner_.reset();
}

void event_bridge::abandon() noexcept {
    if (!running_) return;
    running_ = false;
    rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
    queue_ = nullptr;
    boost::system::error_code ignored;
    eventfd_.cancel(ignored);
    try {
        timer_.cancel();
    } catch (...) { // nothing to do: the context is going away
    }
    owner_.reset();
}

} // namespace kcoro::detail
