#include "event_bridge.hpp"
#include "op_pool.hpp"
#include "rdkafka_ptr.hpp"

#include <kcoro/error.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>
#include <type_traits>
#include <utility>

namespace kcoro::detail {

namespace {

int make_eventfd() {
    const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "kcoro: eventfd");
    return fd;
}

} // namespace

// Everything the bridge waits with is typed on its strand's concrete executor. On an
// io_context (by far the usual case) that is strand<io_context::executor_type>: Asio 1.81
// answers a `blocking` query made through any_io_executor with a heap-allocated result, and
// a strand asks it on every hop, so a strand over any_io_executor allocated at each drain
// turn and wake-up. Other executors (a thread_pool's, a user's strand) get the generic strand.
using io_strand = boost::asio::strand<boost::asio::io_context::executor_type>;

struct event_bridge::waiter {
    virtual ~waiter() = default;
    virtual boost::asio::any_io_executor executor() const = 0;
    virtual int fd() noexcept = 0;
    virtual void wait(event_bridge& bridge) = 0;
    virtual void arm_timer(event_bridge& bridge) = 0;
    virtual void post_drain(event_bridge& bridge) = 0;
    virtual void post(void (*fn)(void*), std::shared_ptr<void> owner) = 0;
    virtual void cancel() = 0;
};

template <class Strand>
struct event_bridge::waiter_on final : event_bridge::waiter {
    // The memory of every wait and post below: Asio's own cache misses when sizes interleave.
    op_pool pool;
    Strand strand;
    boost::asio::posix::basic_stream_descriptor<Strand> eventfd;
    boost::asio::basic_waitable_timer<std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>,
                                      Strand>
        timer;

    explicit waiter_on(Strand s) : strand(std::move(s)), eventfd(strand, make_eventfd()), timer(strand) {}

    template <class Handler>
    auto with_pool(Handler&& h) {
        return boost::asio::bind_allocator(pooled_allocator<void, op_pool>(pool), std::forward<Handler>(h));
    }

    boost::asio::any_io_executor executor() const override { return strand; }
    int fd() noexcept override { return eventfd.native_handle(); }
    void wait(event_bridge& bridge) override {
        eventfd.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           with_pool([&bridge, keep = bridge.owner_](const boost::system::error_code& ec) {
                               bridge.on_readable(ec);
                           }));
    }
    void arm_timer(event_bridge& bridge) override {
        timer.expires_after(safety_interval);
        timer.async_wait(
            with_pool([&bridge, keep = bridge.owner_](const boost::system::error_code& ec) { bridge.on_timer(ec); }));
    }
    // Runs `f` on the strand later.
    template <class F>
    void post_to_strand(F&& f) {
        if constexpr (std::is_same_v<Strand, io_strand>) {
            // Posted to the strand from inside it (a drain turn, or a handler the drain
            // runs), `f` would wait in the strand's queue and the strand re-post its invoker
            // through Asio's cache (one allocation per miss). Through the io_context, it
            // enters the strand by dispatch: at once when the strand is free, which on one
            // thread it always is.
            boost::asio::post(strand.get_inner_executor(), with_pool([this, f = std::forward<F>(f)]() mutable {
                                  boost::asio::dispatch(strand, with_pool(std::move(f)));
                              }));
        } else {
            boost::asio::post(strand, with_pool(std::forward<F>(f)));
        }
    }
    void post_drain(event_bridge& bridge) override {
        post_to_strand([&bridge, keep = bridge.owner_] {
            bridge.drain_posted_ = false;
            if (bridge.running_) bridge.drain();
        });
    }
    void post(void (*fn)(void*), std::shared_ptr<void> owner) override {
        post_to_strand([fn, owner = std::move(owner)] { fn(owner.get()); });
    }
    void cancel() override {
        boost::system::error_code ignored;
        eventfd.cancel(ignored);
        timer.cancel();
    }
};

event_bridge::event_bridge(const boost::asio::any_io_executor& executor, rd_kafka_queue_t* queue,
                           std::size_t items_per_turn)
    : waiter_(make_waiter(executor)), strand_(waiter_->executor()), queue_(queue), items_per_turn_(items_per_turn) {}

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
    rd_kafka_queue_io_event_enable(queue_, waiter_->fd(), &one, sizeof one);
    // Events queued before the fd was set never wrote it: drain once now.
    post_drain();
    wait();
    arm_timer();
}

void event_bridge::wait() { waiter_->wait(*this); }

void event_bridge::post(void (*fn)(void*), std::shared_ptr<void> owner) { waiter_->post(fn, std::move(owner)); }

void event_bridge::on_readable(const boost::system::error_code& ec) {
    if (ec || !running_) return;
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(waiter_->fd(), &count, sizeof count);
    // Wait again first: a handler that throws out of drain() must not leave the bridge deaf.
    wait();
    drain();
}

void event_bridge::arm_timer() { waiter_->arm_timer(*this); }

void event_bridge::on_timer(const boost::system::error_code& ec) {
    if (ec || !running_) return;
    arm_timer();
    drain();
}

void event_bridge::post_drain() {
    if (drain_posted_) return;
    drain_posted_ = true;
    waiter_->post_drain(*this);
}

std::size_t event_sink::take(rd_kafka_queue_t* queue, std::size_t) {
    event_ptr event(rd_kafka_queue_poll(queue, 0));
    if (!event) return 0;
    on_event(event.get());
    return 1;
}

void event_bridge::drain() {
    // librdkafka re-arms the fd only at the next poll, so each wake-up drains until the
    // queue is empty; a long queue is drained in turns so other handlers get to run.
    for (std::size_t taken = 0; taken < items_per_turn_;) {
        if (!sink_->accepting_events()) {
            sink_->after_drain();
            return;
        }
        const std::size_t n = sink_->take(queue_, items_per_turn_ - taken);
        if (!running_) return;
        if (n == 0) {
            sink_->after_drain();
            return;
        }
        taken += n;
    }
    sink_->after_drain();
    post_drain(); // the rest in another turn, so other handlers get to run
}

void event_bridge::stop() {
    if (!running_) return;
    drain();
    running_ = false;
    rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
    queue_ = nullptr; // detached for good: the client may now destroy the queue
    waiter_->cancel();
    owner_.reset();
}

void event_bridge::abandon() noexcept {
    if (!running_) return;
    running_ = false;
    rd_kafka_queue_io_event_enable(queue_, -1, nullptr, 0);
    queue_ = nullptr;
    try {
        waiter_->cancel();
    } catch (...) { // nothing to do: the context is going away
    }
    owner_.reset();
}

std::unique_ptr<event_bridge::waiter> event_bridge::make_waiter(const boost::asio::any_io_executor& executor) {
    using any_strand = boost::asio::strand<boost::asio::any_io_executor>;
    if (const auto* io = executor.target<boost::asio::io_context::executor_type>())
        return std::make_unique<waiter_on<io_strand>>(boost::asio::make_strand(*io));
    return std::make_unique<waiter_on<any_strand>>(boost::asio::make_strand(executor));
}

} // namespace kcoro::detail
