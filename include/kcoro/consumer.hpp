// kcoro: the consumer.
//
//     kcoro::consumer consumer(co_await asio::this_coro::executor,
//                              {{"bootstrap.servers", "localhost:9092"}, {"group.id", "billing"}});
//     consumer.subscribe({"orders"});
//     for (;;) {
//         kcoro::message m = co_await consumer.receive();
//         handle(m.value());
//     }
//
// Every asynchronous operation has two forms, as the producer's: without a completion
// token it returns an asio::awaitable that throws kcoro::error; with a token (deferred,
// use_future, as_tuple(...), redirect_error(...), a callback, ...) its signature is
// void(error_code, T) (void(error_code) for commits and close).
//
// Threads. Fetched messages, rebalances and errors are librdkafka events on the consumer
// queue; an eventfd wakes the executor, which drains them (never a librdkafka thread).
// consumer_options::on_log and on_error run there too, one at a time.
// Fetched messages complete pending receives directly from the drain; those that find no
// pending receive wait in a bounded local buffer (consumer_options::max_buffered). When it
// is full the consumer stops draining, and librdkafka's own fetch limits
// (queued.max.messages.kbytes) bound the rest: memory stays bounded however slow the
// application is. Blocking queries (committed, watermark_offsets, offsets_for_times) run
// on the consumer's worker thread.
//
// Errors. Partition EOF (with enable.partition.eof=true), unknown topics, authorization
// failures, offset-out-of-range and fatal errors complete a receive with that error (the
// awaitable throws kcoro::error naming the topic and partition); receiving again goes on
// with the next message. Transient errors (a broker down) are retried by librdkafka and
// only reported to consumer_options::on_error (by default printed to stderr). A broker
// refusing the client (wrong credentials: errc::authentication; an untrusted or wrong-host
// certificate: errc::ssl) completes the pending receive at once with that error, naming
// the broker and the reason (librdkafka 2.0 would retry silently for ever); librdkafka
// keeps reconnecting. A group the principal may not join completes
// it with errc::group_authorization_failed naming the group.
//
// Offsets. By default each message's offset is stored when a receive hands it to the
// application (not when it is fetched into the local buffer), and enable.auto.commit
// commits stored offsets periodically, at revocation and at close. librdkafka is told in
// bulk: at the end of each turn of the consumer's work on the executor (at least every
// half second while the executor runs) and always before commit(), assign(), unassign(),
// a rebalance and close(). A periodic automatic commit may lag that much behind
// (never ahead of what was received). With
// consumer_options::store_offsets_after_processing (or enable.auto.offset.store=false),
// an offset is stored only when the application calls mark_done(message): at-least-once
// after processing, still committed automatically (or by commit()).
//
// Rebalances run on the executor: the library performs the (incremental) assignment
// itself, and consumer_options::on_rebalance, if set, is awaited around it (after an
// assignment, before a revocation; cooperative rebalances that change nothing for this
// member are not reported). Messages of revoked partitions not yet received are dropped
// (another member reads them from the committed offset), including those fetched while
// the revocation hook runs.
//
// Cancellation (per operation, through the handler's cancellation slot): a pending receive
// completes with operation_aborted; a partially filled batch returns its messages to the
// local buffer, so nothing is lost. Cancelling a commit or a close ends its wait with
// operation_aborted (the commit, already sent, still applies; the close goes on).
// close() completes every pending receive with operation_aborted. Destroying a consumer
// without close() aborts pending receives and leaves the group in the background, without
// the rebalance hook. When the execution context goes away while the consumer is still
// leaving, the consumer gives up its partitions itself (briefly blocking that destruction)
// rather than leave librdkafka waiting for them.
//
// librdkafka before 2.3.0 aborts the process when it destroys a consumer that joined its
// group with the cooperative-sticky assignor and has had no assignment yet (librdkafka
// issue 4312). Closing (or destroying) such a member first waits for its first assignment,
// for at most session.timeout.ms; should none come, or the execution context go away
// first, librdkafka's client is left alive (and a line says so on stderr) until the process exits.
#pragma once

#include <kcoro/client_events.hpp>
#include <kcoro/config.hpp>
#include <kcoro/detail/receive_op.hpp>
#include <kcoro/error.hpp>
#include <kcoro/group_metadata.hpp>
#include <kcoro/message.hpp>
#include <kcoro/rebalance.hpp>
#include <kcoro/topic_partition.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace kcoro {

struct consumer_options {
    /// Awaited on the consumer's executor around each rebalance (see rebalance.hpp).
    rebalance_hook on_rebalance{};
    /// At-least-once after processing: sets enable.auto.offset.store=false, so offsets are
    /// stored only by mark_done() (and committed by auto-commit or commit()).
    bool store_offsets_after_processing = false;
    /// Messages fetched but not yet received, at most. Beyond it the consumer stops draining
    /// librdkafka's queue until the application receives.
    std::size_t max_buffered = 10'000;

    /// librdkafka's log lines. Unset: lines at level 3 (error) or more severe are printed to
    /// stderr, and every line when the `debug` property is set.
    std::function<void(const log_entry&)> on_log{};

    /// Errors that complete no receive: client-wide events (a broker connection lost, all
    /// brokers down), transient partition errors librdkafka retries (a leader moving), a
    /// failed automatic commit or (un)assignment, a rebalance hook that threw. Fatal errors
    /// come here too, besides completing receives. Unset: printed to stderr.
    std::function<void(const client_error&)> on_error{};
};

namespace detail {
// Keeps commit(token) from capturing commit(message) and commit(offsets).
template <class T>
concept commit_token = !std::is_same_v<std::remove_cvref_t<T>, message> &&
                       !std::is_same_v<std::remove_cvref_t<T>, std::vector<partition_offset>>;
using commit_handler = boost::asio::any_completion_handler<void(error_code)>;
void start_receive(consumer_impl& impl, receive_op* op, bool batch);
bool try_receive_now(consumer_impl& impl, message& out, error_code& ec);
void start_commit(const std::shared_ptr<consumer_impl>& impl, std::optional<std::vector<partition_offset>> offsets,
                  commit_handler handler);
void start_consumer_close(const std::shared_ptr<consumer_impl>& impl, commit_handler handler);
void start_committed(const std::shared_ptr<consumer_impl>& impl, std::vector<topic_partition> partitions,
                     std::chrono::milliseconds timeout,
                     boost::asio::any_completion_handler<void(error_code, std::vector<partition_offset>)> handler);
void start_offsets_for_times(
    const std::shared_ptr<consumer_impl>& impl, std::vector<partition_offset> times, std::chrono::milliseconds timeout,
    boost::asio::any_completion_handler<void(error_code, std::vector<partition_offset>)> handler);
void start_watermarks(const std::shared_ptr<consumer_impl>& impl, topic_partition tp, std::chrono::milliseconds timeout,
                      boost::asio::any_completion_handler<void(error_code, watermarks)> handler);
std::string receive_error_context(const consumer_impl& impl);
void abandon(std::shared_ptr<consumer_impl> impl) noexcept;
[[noreturn]] void throw_consumer_error(error_code ec, const std::string& context);
} // namespace detail

class consumer {
public:
    using executor_type = boost::asio::any_io_executor;

    /// Creates a consumer from librdkafka properties (group.id, auto.offset.reset,
    /// enable.auto.commit, isolation.level, ...). Throws kcoro::error naming the key when a
    /// property is unknown or its value rejected, or when group.id is missing (librdkafka
    /// 2.0 needs it even for assign()).
    consumer(executor_type executor, const config& properties, consumer_options options = {});

    template <class ExecutionContext>
        requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
    consumer(ExecutionContext& context, const config& properties, consumer_options options = {})
        : consumer(context.get_executor(), properties, std::move(options)) {}

    consumer(consumer&&) noexcept = default;
    consumer& operator=(consumer&& other) noexcept;
    consumer(const consumer&) = delete;
    consumer& operator=(const consumer&) = delete;
    /// Aborts pending receives and releases the client in the background: never blocks.
    ~consumer();

    executor_type get_executor() const noexcept;

    // ---- what to consume (synchronous: librdkafka applies them in the background) ----

    /// Joins the group and consumes these topics; names starting with '^' are regular
    /// expressions matched against the cluster's topics. Replaces an earlier subscription.
    void subscribe(const std::vector<std::string>& topics);
    void unsubscribe();
    /// The current subscription.
    std::vector<std::string> subscription() const;

    /// Consumes exactly these partitions from these offsets (an offset may be
    /// offsets::beginning, offsets::end or offsets::stored), without group rebalancing.
    void assign(const std::vector<partition_offset>& partitions);
    void unassign();
    /// The partitions currently assigned (by the group, or by assign()).
    std::vector<topic_partition> assignment() const;

    // ---- receiving ------------------------------------------------------------------

    /// Completes with the next message, or with an error (see the header comment).
    template <class CompletionToken>
    auto receive(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, message)>(initiate_receive{impl_.get()},
                                                                                       token);
    }

    /// Takes a buffered message at once when there is one, without suspending.
    boost::asio::awaitable<message> receive() {
        message m;
        error_code ec;
        if (!detail::try_receive_now(*impl_, m, ec)) {
            std::tie(ec, m) = co_await receive(boost::asio::as_tuple(boost::asio::deferred));
        }
        if (ec) detail::throw_consumer_error(ec, detail::receive_error_context(*impl_));
        co_return m;
    }

    /// Completes with up to `max_messages` messages: as soon as that many are there, or after
    /// `max_wait` with what arrived by then (possibly none). An error with no message
    /// collected completes the batch with that error; after messages, it ends the batch
    /// and is reported by the next receive. `reuse`: a previous batch, whose capacity is
    /// reused (so a steady loop allocates nothing).
    template <class CompletionToken>
    auto receive_batch(std::size_t max_messages, std::chrono::milliseconds max_wait, std::vector<message> reuse,
                       CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<message>)>(
            initiate_batch{impl_.get()}, token, max_messages, max_wait, std::move(reuse));
    }

    boost::asio::awaitable<std::vector<message>> receive_batch(std::size_t max_messages,
                                                               std::chrono::milliseconds max_wait,
                                                               std::vector<message> reuse = {}) {
        auto [ec, batch] = co_await receive_batch(max_messages, max_wait, std::move(reuse),
                                                  boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, detail::receive_error_context(*impl_));
        co_return std::move(batch);
    }

    // ---- offsets --------------------------------------------------------------------

    /// Commits the stored offsets of every assigned partition: what was received (or, with
    /// store_offsets_after_processing, what was marked done). Completes when the group
    /// coordinator acknowledged it. Nothing to commit is success.
    template <detail::commit_token CompletionToken>
    auto commit(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler) { detail::start_commit(impl, std::nullopt, std::move(handler)); }, token);
    }
    boost::asio::awaitable<void> commit() {
        auto [ec] = co_await commit(boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, "commit");
    }

    /// Commits the given offsets (each the offset of the next message to read).
    template <class CompletionToken>
    auto commit(std::vector<partition_offset> offsets, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, std::vector<partition_offset> o) {
                detail::start_commit(impl, std::move(o), std::move(handler));
            },
            token, std::move(offsets));
    }
    boost::asio::awaitable<void> commit(std::vector<partition_offset> offsets) {
        auto [ec] = co_await commit(std::move(offsets), boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, "commit offsets");
    }

    /// Commits `m` as processed (its offset + 1).
    template <class CompletionToken>
    auto commit(const message& m, CompletionToken&& token) {
        return commit(std::vector<partition_offset>{m.next_offset()}, std::forward<CompletionToken>(token));
    }
    boost::asio::awaitable<void> commit(const message& m) {
        return commit(std::vector<partition_offset>{m.next_offset()});
    }

    /// Marks `m` as processed: stores its offset + 1 for the next commit. Meant for
    /// consumer_options::store_offsets_after_processing. Throws kcoro::error (errc::state
    /// when the partition is no longer assigned).
    void mark_done(const message& m);
    error_code mark_done(const message& m, error_code& ec) noexcept;

    /// Moves the fetch position of an assigned partition; messages of that partition fetched
    /// before it and not yet handed to a handler are dropped (also when a receive's handler
    /// seeks: the rest of that fetch goes too). Throws kcoro::error (errc::state) for a
    /// partition not assigned.
    void seek(const partition_offset& position);

    /// Stops / restarts fetching these partitions (messages already buffered are still
    /// delivered). A resumed partition goes on right after the last message fetched before
    /// the pause, or from the offset of a seek made while paused.
    void pause(const std::vector<topic_partition>& partitions);
    void resume(const std::vector<topic_partition>& partitions);

    /// The offset of the next message the application will receive per partition (after
    /// a seek to an offset, that offset; offsets::invalid before the first message).
    /// Messages fetched into the local buffer but not yet received do not count.
    std::vector<partition_offset> position(const std::vector<topic_partition>& partitions) const;

    /// The last known high watermark minus the position: how far behind this consumer
    /// is, from cached values (no request). nullopt while either is unknown.
    std::optional<std::int64_t> lag(const topic_partition& tp) const;

    /// The group's committed offsets for these partitions (asks the coordinator).
    template <class CompletionToken>
    auto committed(std::vector<topic_partition> partitions, std::chrono::milliseconds timeout,
                   CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<partition_offset>)>(
            [impl = impl_](auto handler, std::vector<topic_partition> p, std::chrono::milliseconds t) {
                detail::start_committed(impl, std::move(p), t, std::move(handler));
            },
            token, std::move(partitions), timeout);
    }
    boost::asio::awaitable<std::vector<partition_offset>> committed(std::vector<topic_partition> partitions,
                                                                    std::chrono::milliseconds timeout) {
        auto [ec, r] = co_await committed(std::move(partitions), timeout, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, "committed offsets");
        co_return r;
    }

    /// The partition's low and high watermarks (asks the partition leader).
    template <class CompletionToken>
    auto watermark_offsets(topic_partition tp, std::chrono::milliseconds timeout, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, watermarks)>(
            [impl = impl_](auto handler, topic_partition p, std::chrono::milliseconds t) {
                detail::start_watermarks(impl, std::move(p), t, std::move(handler));
            },
            token, std::move(tp), timeout);
    }
    boost::asio::awaitable<watermarks> watermark_offsets(topic_partition tp, std::chrono::milliseconds timeout) {
        const std::string context = fmt::format("watermark offsets of {}", tp);
        auto [ec, r] = co_await watermark_offsets(std::move(tp), timeout, boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, context);
        co_return r;
    }

    /// For each partition, the earliest offset whose timestamp is at or after the given
    /// one (pass milliseconds since the epoch in `offset`); offsets::end when none is.
    template <class CompletionToken>
    auto offsets_for_times(std::vector<partition_offset> times, std::chrono::milliseconds timeout,
                           CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<partition_offset>)>(
            [impl = impl_](auto handler, std::vector<partition_offset> p, std::chrono::milliseconds t) {
                detail::start_offsets_for_times(impl, std::move(p), t, std::move(handler));
            },
            token, std::move(times), timeout);
    }
    boost::asio::awaitable<std::vector<partition_offset>> offsets_for_times(std::vector<partition_offset> times,
                                                                            std::chrono::milliseconds timeout) {
        auto [ec, r] = co_await offsets_for_times(std::move(times), timeout,
                                                  boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, "offsets for times");
        co_return r;
    }

    /// This member's group identity, for a transactional producer's send_offsets.
    kcoro::group_metadata group_metadata() const;

    /// The member id the group coordinator gave this consumer (empty before joining).
    std::string member_id() const;

    // ---- closing --------------------------------------------------------------------

    /// Completes every pending receive with operation_aborted, leaves the group cleanly
    /// (revocation hook, final auto-commit) and releases the client. Further operations
    /// fail with errc::client_closed; so do the group's (subscribe, assign, assignment,
    /// group_metadata, member_id...) as soon as the closing member has given up its
    /// partitions, when librdkafka might no longer answer them. Closing twice is harmless.
    /// A cooperative-sticky member still joining its group is let finish joining first
    /// (see above).
    template <class CompletionToken>
    auto close(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler) { detail::start_consumer_close(impl, std::move(handler)); }, token);
    }
    boost::asio::awaitable<void> close() {
        auto [ec] = co_await close(boost::asio::as_tuple(boost::asio::deferred));
        if (ec) detail::throw_consumer_error(ec, "close consumer");
    }

private:
    struct initiate_receive {
        detail::consumer_impl* impl;
        template <class Handler>
        void operator()(Handler&& handler) const {
            auto* op = detail::receive_op_impl<std::decay_t<Handler>, message>::create(std::move(handler), *impl);
            detail::start_receive(*impl, op, false);
        }
    };
    struct initiate_batch {
        detail::consumer_impl* impl;
        template <class Handler>
        void operator()(Handler&& handler, std::size_t max, std::chrono::milliseconds wait,
                        std::vector<message> reuse) const {
            auto* op = detail::receive_op_impl<std::decay_t<Handler>, std::vector<message>>::create(std::move(handler),
                                                                                                   *impl);
            op->max_messages = max == 0 ? 1 : max;
            op->deadline = std::chrono::steady_clock::now() + wait;
            reuse.clear();
            op->batch = std::move(reuse);
            op->batch.reserve(op->max_messages);
            detail::start_receive(*impl, op, true);
        }
    };

    std::shared_ptr<detail::consumer_impl> impl_;
};

} // namespace kcoro
