#include <kcoro/consumer.hpp>

#include "detail/cancellable.hpp"
#include "detail/client_config.hpp"
#include "detail/client_events.hpp"
#include "detail/client_registry.hpp"
#include "detail/consumer_buffer.hpp"
#include "detail/event_bridge.hpp"
#include "detail/message_owner.hpp"
#include "detail/op_pool.hpp"
#include "detail/topic_names.hpp"
#include "detail/rdkafka_ptr.hpp"
#include "detail/refusal.hpp"
#include "detail/worker_thread.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_set>
#include <vector>

namespace kcoro::detail {

namespace {

using boost::asio::any_completion_handler;
using clock = std::chrono::steady_clock;

struct tpl_deleter {
    void operator()(rd_kafka_topic_partition_list_t* p) const noexcept { rd_kafka_topic_partition_list_destroy(p); }
};
using tpl_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, tpl_deleter>;

tpl_ptr make_list(const std::vector<topic_partition>& parts) {
    tpl_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
    for (const auto& p : parts) rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition);
    return list;
}

tpl_ptr make_list(const std::vector<partition_offset>& parts) {
    tpl_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
    for (const auto& p : parts) rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset = p.offset;
    return list;
}

std::vector<topic_partition> to_partitions(const rd_kafka_topic_partition_list_t* list) {
    std::vector<topic_partition> out;
    if (!list) return out;
    out.reserve(static_cast<std::size_t>(list->cnt));
    for (int i = 0; i < list->cnt; ++i) out.push_back({list->elems[i].topic, list->elems[i].partition});
    return out;
}

std::vector<partition_offset> to_offsets(const rd_kafka_topic_partition_list_t* list) {
    std::vector<partition_offset> out;
    if (!list) return out;
    out.reserve(static_cast<std::size_t>(list->cnt));
    for (int i = 0; i < list->cnt; ++i)
        out.push_back({list->elems[i].topic, list->elems[i].partition, list->elems[i].offset});
    return out;
}

/// The first per-partition error of a list, with the partition it concerns.
error_code first_error(const rd_kafka_topic_partition_list_t* list, std::string* context) {
    if (!list) return {};
    for (int i = 0; i < list->cnt; ++i) {
        const auto& e = list->elems[i];
        // (__IN_PROGRESS: an asynchronous seek's partitions, started fine.)
        if (e.err == RD_KAFKA_RESP_ERR_NO_ERROR || e.err == RD_KAFKA_RESP_ERR__IN_PROGRESS) continue;
        if (context) *context = fmt::format("topic '{}' partition {}", e.topic, e.partition);
        return make_error_code_from_kafka(e.err);
    }
    return {};
}

std::string describe_partition(std::string_view topic, std::int32_t partition) {
    return fmt::format("receive from topic '{}' partition {}", topic, partition);
}

bool contains(const std::vector<topic_partition>& parts, std::string_view topic, std::int32_t partition) {
    return std::any_of(parts.begin(), parts.end(),
                       [&](const topic_partition& p) { return p.partition == partition && p.topic == topic; });
}

// Whether messages[i] is the last of a run of one partition's messages.
bool ends_run(std::span<const message> messages, std::size_t i) {
    if (i + 1 == messages.size()) return true;
    const rd_kafka_message_t* m = messages[i].native_handle();
    const rd_kafka_message_t* next = messages[i + 1].native_handle();
    return next->rkt != m->rkt || next->partition != m->partition;
}

// The entry of `offsets` (const or not) for one partition, or null.
template <class Offsets>
auto* find_offset(Offsets& offsets, std::string_view topic, std::int32_t partition) {
    auto it = std::find_if(offsets.begin(), offsets.end(),
                           [&](const auto& p) { return p.partition == partition && p.topic == topic; });
    return it == offsets.end() ? nullptr : &*it;
}

// Errors that concern what the application consumes, so a receive reports them. Others
// (a broker down, a transport error) are retried by librdkafka and only logged.
bool is_consumer_error(rd_kafka_resp_err_t err) {
    switch (err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED:
    case RD_KAFKA_RESP_ERR__FATAL:
        return true;
    default:
        return false;
    }
}

// librdkafka names no protocol (null) before the group is joined and after it is left.
bool is_cooperative(rd_kafka_t* rk) {
    const char* protocol = rd_kafka_rebalance_protocol(rk);
    return protocol && std::strcmp(protocol, "COOPERATIVE") == 0;
}

// How long the broker gives a member to finish joining before it drops the member.
std::chrono::milliseconds session_timeout(rd_kafka_t* rk) {
    char value[32];
    std::size_t size = sizeof value;
    if (rd_kafka_conf_get(rd_kafka_conf(rk), "session.timeout.ms", value, &size) == RD_KAFKA_CONF_OK)
        return std::chrono::milliseconds(std::atol(value));
    return std::chrono::seconds(45);
}

// librdkafka clients that could not be destroyed (see consumer_client): kept reachable
// until the process exits.
void keep_until_exit(rd_kafka_t* rk) {
    static std::mutex mutex;
    static std::vector<rd_kafka_t*> kept;
    std::lock_guard lock(mutex);
    kept.push_back(rk);
}

// What failed in answering a rebalance (no code: nothing failed).
struct rebalance_failure {
    error_code code{};
    std::string reason{};
};

rebalance_failure failure_of(rd_kafka_error_t* e, const char* what) {
    const error_ptr owned(e);
    if (!e) return {};
    return {make_error_code_from_kafka(rd_kafka_error_code(e)), fmt::format("{}: {}", what, rd_kafka_error_string(e))};
}

rebalance_failure failure_of(rd_kafka_resp_err_t err, const char* what) {
    if (!err) return {};
    return {make_error_code_from_kafka(err), fmt::format("{}: {}", what, rd_kafka_err2str(err))};
}

// Takes up assigned partitions, as the application must after an assignment: all of them
// when eager, `partitions` added when cooperative.
rebalance_failure take_up_partitions(rd_kafka_t* rk, bool cooperative,
                                     const rd_kafka_topic_partition_list_t* partitions) {
    if (cooperative) return failure_of(rd_kafka_incremental_assign(rk, partitions), "incremental assign failed");
    return failure_of(rd_kafka_assign(rk, partitions), "assign failed");
}

// Gives up revoked partitions, as the application must before a rebalance or a close goes
// on: all of them when eager, `partitions` when cooperative.
rebalance_failure give_up_partitions(rd_kafka_t* rk, bool cooperative,
                                     const rd_kafka_topic_partition_list_t* partitions) {
    if (!cooperative) return failure_of(rd_kafka_assign(rk, nullptr), "unassign failed");
    return failure_of(rd_kafka_incremental_unassign(rk, partitions), "incremental unassign failed");
}

// Where a failure goes when no consumer is there to report it (librdkafka called back
// outside a drain, or the client is being destroyed).
void print_failure(const rebalance_failure& f) {
    if (f.code) report_error(client_error{f.code, f.reason}, nullptr, "consumer");
}

} // namespace

// librdkafka's client and its queues. Shared with every message fetched from it, since
// rd_kafka_destroy() waits until all of them are gone: a message_owner, destroyed by the
// last count given back (the consumer's shared_ptr's, or a message's at release()).
struct consumer_client final : message_owner {
    kafka_ptr rk;
    queue_ptr queue;
    queue_ptr side_queue;
    // Set once rd_kafka_consumer_close_queue() has started leaving the group on `queue`.
    std::atomic<bool> leaving{false};
    // Set when the group first hands this member an assignment.
    std::atomic<bool> assigned_by_group{false};
    // Set once librdkafka says the group was joined with the cooperative protocol.
    std::atomic<bool> joined_cooperative{false};
    // Rebalances taken off the queue and not yet answered with an (incremental) assign or
    // unassign. librdkafka's group handler waits for that answer: while one is open it
    // cannot finish leaving, so a call that waits for the group handler gets its reply. Once
    // it may have finished, such a call may wait for ever: librdkafka 2.0 drops the requests
    // still queued to a group handler that terminates.
    std::atomic<int> open_rebalances{0};

    consumer_client() = default;
    consumer_client(const consumer_client&) = delete;
    consumer_client& operator=(const consumer_client&) = delete;
    ~consumer_client() override {
        if (rk && leaving.load() && !rd_kafka_consumer_closed(rk.get())) finish_leaving();
        if (rk && !leaving.load()) note_protocol();
        // rd_kafka_destroy() purges the main queue and the queue it forwards to, and waits for
        // every partition to be released: messages fetched but never taken hold theirs. The
        // main queue forwards beside (see consumer_impl) until now: back to the consumer queue.
        if (rk) rd_kafka_poll_set_consumer(rk.get());
        queue.reset();
        side_queue.reset();
        if (!rk) return;
        if (destroy_would_abort()) {
            fmt::print(stderr, "kcoro consumer: ended before its first cooperative-sticky assignment; "
                               "librdkafka {} would abort the process destroying it (librdkafka issue 4312, "
                               "fixed in 2.3.0), so its client is kept until the process exits\n",
                       rd_kafka_version_str());
            keep_until_exit(rk.release());
            return;
        }
        // The group is left by now (close(), or finish_leaving()), or abandoned with the
        // execution context: never block here on a group handshake.
        rd_kafka_destroy_flags(rk.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }

    // librdkafka before 2.3.0 asserts, aborting the process, when it destroys a consumer
    // that joined its group with the cooperative-sticky assignor but never received an
    // assignment: the assignor's state is only created by the first one.
    static bool destroy_may_abort() noexcept { return rd_kafka_version() < 0x020300ff; }
    bool destroy_would_abort() const noexcept {
        return destroy_may_abort() && joined_cooperative.load() && !assigned_by_group.load();
    }

    // Called with each rebalance taken off the queue: an assignment means the assignor's
    // state exists.
    void note_rebalance(rd_kafka_resp_err_t kind) noexcept {
        open_rebalances.fetch_add(1);
        if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) assigned_by_group.store(true);
    }
    // Called once a rebalance taken off the queue is answered.
    void note_answered() noexcept { open_rebalances.fetch_sub(1); }

    // Whether a call that waits for librdkafka's group handler is sure to be answered:
    // before leaving, or while the group waits for this member (see open_rebalances).
    bool group_answers() const noexcept { return !leaving.load() || open_rebalances.load() > 0; }

    // Asks librdkafka which protocol the group was joined with. Only before leaving: the
    // question could go unanswered afterwards (see open_rebalances).
    void note_protocol() {
        if (destroy_may_abort() && !leaving.load() && !joined_cooperative.load() && is_cooperative(rk.get()))
            joined_cooperative.store(true);
    }

private:
    // A close under way waits for the application to give up its partitions, and librdkafka
    // would wait for that for ever inside rd_kafka_destroy() (a second close, as the
    // destroy's, does not take over the first). Released before finishing (the execution
    // context went away, with the revocation queued or in a hook), the consumer gives them up
    // here, without hooks, and serves the queue until librdkafka reports the group left.
    // Nothing here asks librdkafka's group handler unless it waits for this member: the
    // protocol is the one the rebalances said (none: the group assigned nothing to give up).
    void finish_leaving() noexcept {
        rd_kafka_t* k = rk.get();
        const bool cooperative = joined_cooperative.load();
        if (open_rebalances.load() > 0) print_failure(give_up_assignment(k, cooperative));
        // Bounded: leaving waits at most for a LeaveGroup request, which times out first.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
        while (!rd_kafka_consumer_closed(k) && std::chrono::steady_clock::now() < deadline) {
            event_ptr event(rd_kafka_queue_poll(queue.get(), 100));
            if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
                note_rebalance(rd_kafka_event_error(event.get()));
                print_failure(give_up_partitions(k, cooperative, rd_kafka_event_topic_partition_list(event.get())));
                note_answered();
            }
        }
    }

    // The whole current assignment: a revocation may have been taken off the queue already.
    static rebalance_failure give_up_assignment(rd_kafka_t* k, bool cooperative) {
        rd_kafka_topic_partition_list_t* current = nullptr;
        if (cooperative && rd_kafka_assignment(k, &current) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
        auto failure = give_up_partitions(k, cooperative, current);
        if (current) rd_kafka_topic_partition_list_destroy(current);
        return failure;
    }
};

struct commit_op {
    any_completion_handler<void(error_code)> handler;
};

class consumer_impl final : public event_sink,
                            public registered_client,
                            public std::enable_shared_from_this<consumer_impl> {
public:
    consumer_impl(boost::asio::any_io_executor executor, const config& properties, consumer_options options);
    ~consumer_impl();

    void start() {
        boost::asio::use_service<client_registry>(boost::asio::query(executor_, boost::asio::execution::context))
            .add(weak_from_this());
        side_bridge_->start(shared_from_this(), &side_sink_);
        bridge_->start(shared_from_this(), this);
    }

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    op_pool& pool() noexcept { return pool_; }

    // receiving
    void start_receive(receive_op* op);
    bool try_receive_now(message& out, error_code& ec);
    void cancel(receive_op* op);
    std::string last_error_context() const {
        std::lock_guard lock(mutex_);
        return last_error_context_;
    }

    // what to consume
    void subscribe(const std::vector<std::string>& topics);
    void unsubscribe();
    std::vector<std::string> subscription() const;
    void assign(const std::vector<partition_offset>& partitions);
    void unassign();
    std::vector<topic_partition> assignment() const;

    // offsets
    void commit(std::optional<std::vector<partition_offset>> offsets, any_completion_handler<void(error_code)> h);
    error_code mark_done(const message& m, std::string* context) noexcept;
    void seek(const partition_offset& position);
    void pause_resume(const std::vector<topic_partition>& partitions, bool pause);
    std::vector<partition_offset> position(const std::vector<topic_partition>& partitions) const;
    std::optional<std::int64_t> lag(const topic_partition& tp) const;
    void committed(std::vector<topic_partition> partitions, std::chrono::milliseconds timeout,
                   any_completion_handler<void(error_code, std::vector<partition_offset>)> h);
    void offsets_for_times(std::vector<partition_offset> times, std::chrono::milliseconds timeout,
                           any_completion_handler<void(error_code, std::vector<partition_offset>)> h);
    void watermark_offsets(topic_partition tp, std::chrono::milliseconds timeout,
                           any_completion_handler<void(error_code, watermarks)> h);
    kcoro::group_metadata group_metadata() const;
    std::string member_id() const;

    void close(any_completion_handler<void(error_code)> handler);
    void disable_hooks() noexcept { hooks_enabled_.store(false); }

    // event_sink, for the consumer queue
    void on_event(rd_kafka_event_t* event) override { on_side_event(event); }
    std::size_t take(rd_kafka_queue_t* queue, std::size_t budget) override;
    bool accepting_events() override;
    void after_drain() override;

    // librdkafka's rebalance_cb: it runs inside take()'s rd_kafka_consume_batch_queue().
    static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t kind, rd_kafka_topic_partition_list_t* partitions,
                             void* opaque);

    // registered_client
    void on_context_shutdown() noexcept override {
        context_gone_.store(true);
        worker_.stop();
        // The bridges' references to this client would keep it alive for ever (a leak):
        // no handler runs any more, so they stop without delivering anything.
        if (bridge_) bridge_->abandon();
        if (side_bridge_) side_bridge_->abandon();
    }

private:
    enum class lifecycle : std::uint8_t { open, closing, closed };

    // Commit results, logs and client-wide errors (librdkafka's main queue, forwarded) have a
    // queue of their own, always drained: a full local buffer (which stops draining the
    // consumer queue) never holds up a commit.
    struct side_sink final : event_sink {
        consumer_impl* self = nullptr;
        void on_event(rd_kafka_event_t* event) override { self->on_side_event(event); }
        void after_drain() override {}
    };

    void take_messages(rd_kafka_message_t* const* taken, std::size_t n);
    void note_runs(std::span<const message> messages);
    void note_taken(std::string_view topic, std::int32_t partition, std::int64_t next); // under mutex_
    void forget_taken(const std::vector<topic_partition>& parts, bool all);

    void deliver(std::span<message> messages);
    void complete_ready();
    void append_ready(receive_op* op) noexcept; // under mutex_
    void store_received(const message& m) noexcept;          // under mutex_
    void store_received(const receive_op* op) noexcept;      // under mutex_
    void store_unstored() noexcept;                          // under mutex_
    void store_unstored_now() noexcept {
        std::lock_guard lock(mutex_);
        store_unstored();
    }
    void release_received(const std::vector<topic_partition>& parts, bool all) noexcept; // under mutex_
    std::optional<std::int64_t> first_unreceived(const topic_partition& tp) const; // under mutex_
    void deliver_error(error_code ec, std::string context, bool coalesce, bool in_drain);
    // An error that completes no receive, for on_error (or stderr). `on_side_strand`: called
    // from the side bridge's drain; otherwise posted there, so on_error and on_log never
    // run at the same time.
    void report(const client_error& e, bool on_side_strand);
    void on_error_event(rd_kafka_event_t* event);
    void on_error(rd_kafka_resp_err_t err, const char* text, const char* topic, std::int32_t partition, bool fatal,
                  bool in_drain);
    void on_side_event(rd_kafka_event_t* event);
    bool fill_from_buffer(receive_op* op, error_code& ec);
    void link(receive_op* op);
    void unlink(receive_op* op);
    void kick_if_stalled(std::unique_lock<std::mutex>& lock);
    void arm_batch_timer();
    static void arm_batch_timer_on(void* self); // for event_bridge::post
    void expire_batches();
    void drop_buffered(const std::vector<topic_partition>& parts, bool all);
    void process_rebalances();
    void apply_assign(const rd_kafka_topic_partition_list_t* partitions, bool cooperative);
    void apply_revoke(const rd_kafka_topic_partition_list_t* partitions, bool cooperative);
    void begin_close();
    void poll_closed();
    void finish_close();
    void abort_receives();
    template <class... Args>
    void complete_with(any_completion_handler<void(error_code, Args...)> handler, error_code ec, Args... args);
    rd_kafka_t* client() const; // under client_mutex_
    rd_kafka_t* group_client() const; // client(), for calls that wait for the group handler

    boost::asio::any_io_executor executor_;
    consumer_options options_;
    op_pool pool_;
    // Declared before the bridges: a bridge detaches from its queue when destroyed.
    std::shared_ptr<consumer_client> client_;
    rd_kafka_t* rk_ = nullptr;               // client_'s, null once released at close
    rd_kafka_queue_t* queue_ = nullptr;      // the consumer queue: messages, rebalances, partition errors
    rd_kafka_queue_t* side_queue_ = nullptr; // commit results, logs, client-wide errors
    mutable std::mutex client_mutex_;        // guards rk_ against release at close
    side_sink side_sink_;
    // Messages taken from librdkafka per drain turn, as many as raw librdkafka's best
    // consume loop takes per call (fewer turns: fewer re-posts and resumptions). take()'s
    // arrays, on the strand only, are allocated once rather than 32 KB of stack per turn.
    static constexpr std::size_t messages_per_turn = 1024;
    std::unique_ptr<rd_kafka_message_t*[]> drained_ = std::make_unique<rd_kafka_message_t*[]>(messages_per_turn);
    std::unique_ptr<message[]> drained_messages_ = std::make_unique<message[]>(messages_per_turn);
    std::optional<event_bridge> bridge_;
    std::optional<event_bridge> side_bridge_;
    std::optional<boost::asio::steady_timer> batch_timer_; // on the bridge's strand
    std::optional<boost::asio::steady_timer> close_timer_;
    std::optional<clock::time_point> close_deadline_; // of the wait for a first assignment
    clock::time_point batch_timer_deadline_ = clock::time_point::max(); // under mutex_
    worker_thread worker_;

    // Receives and the local buffer, shared by initiating threads and the drain.
    mutable std::mutex mutex_;
    consumer_buffer buffer_;
    receive_op* pending_head_ = nullptr;
    receive_op* pending_tail_ = nullptr;
    // Receives given their result during a drain (a message, a full batch, an error),
    // completed when the drain turn ends: the application, resumed then, finds the rest of
    // the turn's messages in the buffer and takes them without suspending (one resumption
    // per message otherwise), and a seek it makes drops every message fetched before it.
    receive_op* ready_head_ = nullptr;
    receive_op* ready_tail_ = nullptr;
    bool stalled_ = false;
    bool closing_ = false;
    bool store_on_receive_ = false; // store offsets as messages are handed out
    // Per partition, the offset of the last message handed out, when store_on_receive_.
    // librdkafka gets it at the end of each drain turn (at least every safety_interval of
    // the bridge, so an idle application's last messages are stored too) and before
    // anything that reads or replaces stored offsets (commit, assign, rebalance, close):
    // one rd_kafka_offset_store() per partition and turn instead of one per message (a
    // topic lock, a partition lock and two reference counts each). A seek needs no store:
    // it reads none, and the next store is the newest received anyway. An entry holds an
    // application reference to its topic, so its handle stays valid.
    struct received_offset {
        rd_kafka_topic_t* topic;
        std::int32_t partition;
        std::int64_t offset;
        bool unstored;
    };
    std::vector<received_offset> received_;
    std::size_t last_received_ = 0; // messages come in runs of one partition
    bool any_unstored_ = false;
    std::string last_error_context_;
    std::string group_id_; // for errors about the group
    // Per partition, the offset after the last message taken from librdkafka (or of the
    // last seek): where the application's position is, and where a resume goes on from.
    struct taken_offset {
        std::string_view topic; // interned
        std::int32_t partition;
        std::int64_t offset;
    };
    std::vector<taken_offset> taken_;
    // Makes room, when partitions are assigned, for what the first message of each would
    // otherwise allocate in the middle of the stream (under mutex_).
    void prepare_for(const std::vector<topic_partition>& parts);
    std::vector<topic_partition> paused_; // by the application
    std::exception_ptr handler_exception_; // thrown by a handler run from the drain

    // Rebalances, on the strand.
    struct pending_rebalance {
        rd_kafka_resp_err_t kind; // __ASSIGN_PARTITIONS or __REVOKE_PARTITIONS (or an error)
        tpl_ptr partitions;
    };
    std::deque<pending_rebalance> rebalances_;
    bool rebalance_taken_ = false; // by on_rebalance() during the current take()
    std::vector<topic_partition> revoking_; // while a revocation hook runs
    bool revoking_all_ = false;
    bool rebalance_running_ = false;
    std::atomic<bool> hooks_enabled_{true};

    std::mutex commit_mutex_;
    std::unordered_set<commit_op*> commits_;

    std::atomic<lifecycle> state_{lifecycle::open};
    std::atomic<bool> context_gone_{false};
    bool debug_ = false; // the `debug` property is set: log lines are printed without on_log
    std::mutex close_mutex_;
    std::vector<any_completion_handler<void(error_code)>> close_handlers_;
};

consumer_impl::consumer_impl(boost::asio::any_io_executor executor, const config& properties,
                             consumer_options options)
    : executor_(std::move(executor)), options_(std::move(options)), buffer_(options_.max_buffered) {
    // librdkafka 2.0 accepts a consumer without one, then fails every subscribe, commit and
    // even assign()'s fetch start: say so at once.
    if (const auto g = properties.get("group.id"); !g || g->empty())
        throw error(errc::invalid_config_value, "config key 'group.id': a consumer needs one (even for assign())");
    config effective = properties;
    group_id_ = std::string(properties.get("group.id").value_or(""));
    debug_ = debugging(properties);
    // librdkafka would store each offset when the bridge drains the message, before the
    // application has received it (it may still wait in the local buffer): kcoro stores
    // offsets itself, when it hands messages out (or at mark_done).
    const auto store = properties.get("enable.auto.offset.store");
    store_on_receive_ = !options_.store_offsets_after_processing && !(store && (*store == "false" || *store == "0"));
    effective.set("enable.auto.offset.store", "false");
    effective.set("log.queue", "true");
    auto conf = make_conf(effective);
    rd_kafka_conf_set_events(conf.get(), RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG |
                                             RD_KAFKA_EVENT_OFFSET_COMMIT);
    // The consumer queue is drained with rd_kafka_consume_batch_queue(), many messages per
    // call, which hands rebalances to this callback (rd_kafka_queue_poll() would make each
    // message an event of its own); the leave-on-destroy loop still polls them as events.
    rd_kafka_conf_set_rebalance_cb(conf.get(), &consumer_impl::on_rebalance);
    // The shared_ptr's owners hold one count of the client together; each message another.
    client_ = std::shared_ptr<consumer_client>(new consumer_client, [](consumer_client* c) { c->release(); });
    client_->rk = make_client(RD_KAFKA_CONSUMER, std::move(conf));
    rk_ = client_->rk.get();
    client_->queue.reset(rd_kafka_queue_get_consumer(rk_));
    client_->side_queue.reset(rd_kafka_queue_new(rk_));
    queue_ = client_->queue.get();
    side_queue_ = client_->side_queue.get();
    // Only messages, rebalances and partition errors stay on the consumer queue: what
    // librdkafka's main queue gets (client-wide errors, auto-commit results) goes beside.
    queue_ptr main_queue(rd_kafka_queue_get_main(rk_));
    rd_kafka_queue_forward(main_queue.get(), side_queue_);
    rd_kafka_set_log_queue(rk_, side_queue_);
    side_sink_.self = this;
    bridge_.emplace(executor_, queue_, messages_per_turn);
    side_bridge_.emplace(executor_, side_queue_);
    batch_timer_.emplace(bridge_->strand());
    close_timer_.emplace(bridge_->strand());
}

consumer_impl::~consumer_impl() {
    // Reached without an orderly close (the execution context went away first): nothing
    // can be completed any more. Release what is left without invoking handlers.
    std::vector<buffered> dropped;
    buffer_.clear(dropped);
    while (receive_op* op = pending_head_) {
        unlink(op);
        op->release();
    }
    while (receive_op* op = ready_head_) {
        ready_head_ = op->next;
        op->release();
    }
    dropped.clear();
    release_received({}, true);
    rebalances_.clear();
    bridge_.reset();
    side_bridge_.reset();
    for (commit_op* c : commits_) delete c;
    commits_.clear();
    client_.reset();
}

rd_kafka_t* consumer_impl::client() const {
    if (!rk_) throw error(errc::client_closed, "consumer");
    return rk_;
}

rd_kafka_t* consumer_impl::group_client() const {
    rd_kafka_t* rk = client();
    // Once close() gave up the partitions, such a call might never return.
    if (!client_->group_answers()) throw error(errc::client_closed, "consumer (leaving its group)");
    return rk;
}

template <class... Args>
void consumer_impl::complete_with(any_completion_handler<void(error_code, Args...)> handler, error_code ec,
                                  Args... args) {
    // After the context shut down the handler is destroyed uninvoked, as Asio does.
    if (context_gone_.load()) return;
    boost::asio::post(executor_, boost::asio::append(std::move(handler), ec, std::move(args)...));
}

// ---- receiving ---------------------------------------------------------------------

void consumer_impl::link(receive_op* op) {
    op->next = nullptr;
    op->prev = pending_tail_;
    if (pending_tail_)
        pending_tail_->next = op;
    else
        pending_head_ = op;
    pending_tail_ = op;
    op->linked = true;
}

void consumer_impl::unlink(receive_op* op) {
    if (op->prev)
        op->prev->next = op->next;
    else
        pending_head_ = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        pending_tail_ = op->prev;
    op->next = op->prev = nullptr;
    op->linked = false;
}

// The application now has `m`: its offset + 1 is the next to commit (librdkafka's own
// automatic store would have happened earlier, when the bridge drained it). Noted here,
// stored by store_unstored().
void consumer_impl::store_received(const message& m) noexcept {
    if (!store_on_receive_ || !m) return;
    const rd_kafka_message_t* msg = m.native_handle();
    auto same = [&](const received_offset& r) { return r.topic == msg->rkt && r.partition == msg->partition; };
    if (last_received_ >= received_.size() || !same(received_[last_received_])) {
        const auto it = std::find_if(received_.begin(), received_.end(), same);
        if (it != received_.end()) {
            last_received_ = static_cast<std::size_t>(it - received_.begin());
        } else {
            rd_kafka_topic_t* topic = nullptr;
            try {
                received_.reserve(received_.size() + 1);
                topic = rd_kafka_topic_new(rk_, rd_kafka_topic_name(msg->rkt), nullptr);
            } catch (...) {
            }
            if (!topic) { // out of memory: store it at once, as librdkafka would
                (void)rd_kafka_offset_store(msg->rkt, msg->partition, msg->offset);
                return;
            }
            received_.push_back({topic, msg->partition, msg->offset, false});
            last_received_ = received_.size() - 1;
        }
    }
    received_offset& r = received_[last_received_];
    r.offset = msg->offset;
    r.unstored = true;
    any_unstored_ = true;
}

void consumer_impl::store_unstored() noexcept {
    if (!std::exchange(any_unstored_, false)) return;
    for (received_offset& r : received_) {
        if (std::exchange(r.unstored, false)) (void)rd_kafka_offset_store(r.topic, r.partition, r.offset);
    }
}

// Stores what is unstored first: the partitions may be about to be given up.
void consumer_impl::release_received(const std::vector<topic_partition>& parts, bool all) noexcept {
    store_unstored();
    std::erase_if(received_, [&](const received_offset& r) {
        if (!all && !contains(parts, rd_kafka_topic_name(r.topic), r.partition)) return false;
        rd_kafka_topic_destroy(r.topic);
        return true;
    });
    last_received_ = 0;
}

void consumer_impl::store_received(const receive_op* op) noexcept {
    if (!store_on_receive_) return;
    if (!op->is_batch()) return store_received(op->single);
    // Once per run of one partition: its last message counts.
    const auto& b = op->batch;
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (ends_run(b, i)) store_received(b[i]);
    }
}

// Under mutex_: the offset of the oldest message of `tp` fetched but not yet received.
std::optional<std::int64_t> consumer_impl::first_unreceived(const topic_partition& tp) const {
    auto same = [&](const message& m) { return m && m.partition() == tp.partition && m.topic() == tp.topic; };
    for (receive_op* op = ready_head_; op; op = op->next) {
        if (same(op->single)) return op->single.offset();
        for (const auto& m : op->batch)
            if (same(m)) return m.offset();
    }
    for (receive_op* op = pending_head_; op; op = op->next)
        for (const auto& m : op->batch)
            if (same(m)) return m.offset();
    std::optional<std::int64_t> found;
    buffer_.for_each([&](const buffered& b) {
        if (!found && same(b.msg)) found = b.msg.offset();
    });
    return found;
}

// Under mutex_: takes what the buffer holds for `op`. True when `op` is ready.
bool consumer_impl::fill_from_buffer(receive_op* op, error_code& ec) {
    if (!op->is_batch()) {
        if (buffer_.empty()) return false;
        buffered b = buffer_.pop_front();
        if (b.error) {
            ec = b.error->ec;
            last_error_context_ = std::move(b.error->context);
        } else {
            op->single = std::move(b.msg);
        }
        return true;
    }
    while (!buffer_.empty() && op->batch.size() < op->max_messages) {
        if (buffer_.front().error) {
            if (!op->batch.empty()) return true; // the error waits for the next receive
            buffered b = buffer_.pop_front();
            ec = b.error->ec;
            last_error_context_ = std::move(b.error->context);
            return true;
        }
        op->batch.push_back(std::move(buffer_.pop_front().msg));
    }
    return op->batch.size() >= op->max_messages;
}

void consumer_impl::kick_if_stalled(std::unique_lock<std::mutex>& lock) {
    if (!stalled_ || buffer_.size() >= options_.max_buffered) return;
    stalled_ = false;
    lock.unlock();
    bridge_->post(
        [](void* self) {
            auto& bridge = static_cast<consumer_impl*>(self)->bridge_;
            if (bridge->running()) bridge->drain();
        },
        shared_from_this());
}

void consumer_impl::start_receive(receive_op* op) {
    std::unique_lock lock(mutex_);
    if (closing_) {
        lock.unlock();
        op->complete(errc::client_closed, false);
        return;
    }
    error_code ec;
    bool ready = false;
    if (!pending_head_) ready = fill_from_buffer(op, ec);
    if (!ready && op->is_batch() && op->deadline <= clock::now()) ready = true; // max_wait 0: what is there
    if (ready) {
        store_received(op);
        kick_if_stalled(lock);
        if (lock.owns_lock()) lock.unlock();
        op->complete(ec, false); // never inline: we are inside the initiating call
        return;
    }
    try {
        op->connect_cancellation(); // before anything can complete it
    } catch (...) {
        lock.unlock();
        op->release();
        throw;
    }
    link(op);
    // A timer armed for an earlier deadline re-arms for this batch when it fires: a steady
    // stream of batches posts nothing and starts no new wait.
    const bool arm = op->is_batch() && op->deadline < batch_timer_deadline_;
    kick_if_stalled(lock);
    if (arm) {
        if (lock.owns_lock()) lock.unlock();
        bridge_->post(&arm_batch_timer_on, shared_from_this());
    }
}

bool consumer_impl::try_receive_now(message& out, error_code& ec) {
    std::unique_lock lock(mutex_);
    if (closing_ || pending_head_ || buffer_.empty()) return false;
    // Moved straight out of the ring: the path of every message received without waiting.
    buffered& front = buffer_.front();
    if (front.error) {
        const std::unique_ptr<buffered_error> e = std::move(front.error);
        buffer_.drop_front();
        ec = e->ec;
        last_error_context_ = std::move(e->context);
    } else {
        out = std::move(front.msg);
        buffer_.drop_front();
        store_received(out);
    }
    kick_if_stalled(lock);
    return true;
}

void consumer_impl::cancel(receive_op* op) {
    std::unique_lock lock(mutex_);
    if (!op->linked) return; // completing already
    unlink(op);
    // A partial batch goes back, in order, so cancelling loses nothing.
    while (!op->batch.empty()) {
        buffer_.push_front(buffered{std::move(op->batch.back()), nullptr});
        op->batch.pop_back();
    }
    lock.unlock();
    op->complete(boost::asio::error::operation_aborted, false);
}

// On the strand: hands messages to pending receives in order, the rest to the buffer.
// Receives it fills complete when the drain turn ends (complete_ready()), once every
// message it took is in place: a handler that seeks or reassigns then finds all of them
// to drop, none still on their way.
void consumer_impl::deliver(std::span<message> messages) {
    std::lock_guard lock(mutex_);
    for (message& msg : messages) {
        receive_op* op = pending_head_;
        if (!op) {
            buffer_.push_back(buffered{std::move(msg), nullptr});
            continue;
        }
        if (op->is_batch()) {
            op->batch.push_back(std::move(msg));
            if (op->batch.size() < op->max_messages) continue;
        } else {
            op->single = std::move(msg);
        }
        unlink(op);
        append_ready(op);
    }
}

void consumer_impl::append_ready(receive_op* op) noexcept {
    op->next = nullptr;
    if (ready_tail_)
        ready_tail_->next = op;
    else
        ready_head_ = op;
    ready_tail_ = op;
}

// One at a time, each taken off the list as its handler is about to run: a seek (or an
// assignment) made by one handler still takes back what the later ones were given.
void consumer_impl::complete_ready() {
    for (;;) {
        receive_op* op;
        {
            std::lock_guard lock(mutex_);
            op = ready_head_;
            if (!op) {
                store_unstored(); // once per drain turn, with what the handlers received
                return;
            }
            ready_head_ = op->next;
            if (!ready_head_) ready_tail_ = nullptr;
            store_received(op);
        }
        op->next = nullptr;
        try {
            op->complete(op->ec, true);
        } catch (...) {
            if (!handler_exception_) handler_exception_ = std::current_exception();
        }
    }
}

void consumer_impl::deliver_error(error_code ec, std::string context, bool coalesce, bool in_drain) {
    std::unique_lock lock(mutex_);
    if (closing_) return;
    receive_op* op = pending_head_;
    if (!op) {
        // A client-wide error librdkafka repeats at each retry is kept once until received.
        if (coalesce && !buffer_.empty() && buffer_.back().error && buffer_.back().error->ec == ec) return;
        buffer_.push_back(buffered{message{}, std::make_unique<buffered_error>(ec, std::move(context))});
        return;
    }
    unlink(op);
    if (op->is_batch() && !op->batch.empty()) {
        // The batch ends here; the error goes to the next receive.
        buffer_.push_back(buffered{message{}, std::make_unique<buffered_error>(ec, std::move(context))});
        ec = {};
    } else {
        last_error_context_ = std::move(context);
    }
    if (in_drain) { // completed as the drain turn ends, as deliver() does
        op->ec = ec;
        append_ready(op);
        return;
    }
    store_received(op);
    lock.unlock();
    op->complete(ec, false);
}

bool consumer_impl::accepting_events() {
    std::lock_guard lock(mutex_);
    if (closing_ || buffer_.size() < options_.max_buffered) return true;
    stalled_ = true;
    return false;
}

void consumer_impl::arm_batch_timer_on(void* self) { static_cast<consumer_impl*>(self)->arm_batch_timer(); }

void consumer_impl::arm_batch_timer() {
    clock::time_point earliest = clock::time_point::max();
    {
        // Scanned and recorded under the lock start_receive() reads it with: a batch linked
        // after the scan sees the new deadline (and asks for a re-arm if it is earlier).
        std::lock_guard lock(mutex_);
        for (receive_op* op = pending_head_; op; op = op->next)
            if (op->is_batch()) earliest = std::min(earliest, op->deadline);
        if (earliest == clock::time_point::max() || earliest >= batch_timer_deadline_) return;
        batch_timer_deadline_ = earliest;
    }
    batch_timer_->expires_at(earliest);
    batch_timer_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec) return; // re-armed earlier, or closing
        {
            std::lock_guard lock(self->mutex_);
            self->batch_timer_deadline_ = clock::time_point::max();
        }
        self->expire_batches();
    });
}

void consumer_impl::expire_batches() {
    const auto now = clock::now();
    receive_op* expired = nullptr;
    {
        std::lock_guard lock(mutex_);
        for (receive_op* op = pending_head_; op;) {
            receive_op* next = op->next;
            if (op->is_batch() && op->deadline <= now) {
                unlink(op);
                store_received(op);
                op->next = expired; // the completion list, reversed; order does not matter
                expired = op;
            }
            op = next;
        }
    }
    std::exception_ptr first;
    while (receive_op* op = expired) {
        expired = op->next;
        op->next = nullptr;
        try {
            op->complete({}, true);
        } catch (...) {
            if (!first) first = std::current_exception();
        }
    }
    arm_batch_timer();
    if (first) std::rethrow_exception(first);
}

void consumer_impl::drop_buffered(const std::vector<topic_partition>& parts, bool all) {
    std::vector<buffered> dropped;
    std::vector<message> dropped_batch;
    std::unique_lock lock(mutex_);
    // Room for every message receives hold, reserved before anything changes: the lists
    // below are taken apart and put together again with nothing left that may throw.
    std::size_t held = 0;
    for (const receive_op* op = ready_head_; op; op = op->next) held += op->batch.size() + 1;
    for (const receive_op* op = pending_head_; op; op = op->next) held += op->batch.size();
    dropped_batch.reserve(held);
    auto gone = [&](const message& m) { return all || contains(parts, m.topic(), m.partition()); };
    buffer_.remove_if([&](const buffered& b) { return !b.error && gone(b.msg); }, dropped);
    const auto drop_gone = [&](std::vector<message>& batch) {
        std::erase_if(batch, [&](message& m) {
            if (!gone(m)) return false;
            dropped_batch.push_back(std::move(m));
            return true;
        });
    };
    // Receives completing at the end of this drain turn lose what is gone; those left with
    // nothing wait again, ahead of later receives and in their order.
    receive_op* keep_head = nullptr;
    receive_op* keep_tail = nullptr;
    receive_op* back_head = nullptr;
    receive_op* back_tail = nullptr;
    bool batch_back = false;
    for (receive_op* op = std::exchange(ready_head_, nullptr); op;) {
        receive_op* next = op->next;
        op->next = nullptr;
        drop_gone(op->batch);
        const bool emptied = op->is_batch() ? op->batch.empty() && !op->ec : op->single && gone(op->single);
        if (emptied) {
            if (op->single) dropped_batch.push_back(std::move(op->single));
            batch_back = batch_back || op->is_batch();
            op->prev = back_tail;
            (back_tail ? back_tail->next : back_head) = op;
            back_tail = op;
            op->linked = true;
        } else {
            (keep_tail ? keep_tail->next : keep_head) = op;
            keep_tail = op;
        }
        op = next;
    }
    ready_head_ = keep_head;
    ready_tail_ = keep_tail;
    if (back_head) {
        back_tail->next = pending_head_;
        if (pending_head_)
            pending_head_->prev = back_tail;
        else
            pending_tail_ = back_tail;
        pending_head_ = back_head;
    }
    for (receive_op* op = pending_head_; op; op = op->next) drop_gone(op->batch);
    kick_if_stalled(lock);
    // The batch timer left out batches that were complete: it looks again.
    if (batch_back) bridge_->post(&arm_batch_timer_on, shared_from_this());
}

// ---- events --------------------------------------------------------------------------

namespace {
thread_local consumer_impl* draining_consumer = nullptr; // whose take() runs on this thread
} // namespace

std::size_t consumer_impl::take(rd_kafka_queue_t* queue, std::size_t budget) {
    std::size_t room = std::min(budget, messages_per_turn);
    {
        // Never more than the buffer has room for (accepting_events() saw some).
        std::lock_guard lock(mutex_);
        if (!closing_ && buffer_.size() < options_.max_buffered)
            room = std::min(room, options_.max_buffered - buffer_.size());
    }
    rd_kafka_message_t** taken = drained_.get();
    draining_consumer = this;
    const ssize_t n = rd_kafka_consume_batch_queue(queue, 0, taken, room);
    draining_consumer = nullptr;
    if (n < 0) {
        const auto err = rd_kafka_last_error();
        report({make_error_code_from_kafka(err), fmt::format("receiving: {}", rd_kafka_err2str(err))}, false);
        return 0;
    }
    take_messages(taken, static_cast<std::size_t>(n));
    const bool rebalanced = std::exchange(rebalance_taken_, false);
    if (rebalanced) process_rebalances();
    if (n > 0 || rebalanced) return std::max<std::size_t>(static_cast<std::size_t>(n), 1);
    // librdkafka also stops at a wake-up, with more queued behind it.
    return rd_kafka_queue_length(queue) > 0 ? 1 : 0;
}

// librdkafka before 2.1.0 advances its resume point past messages that a pause, arriving
// while rd_kafka_consume_batch_queue() runs, then drops from the batch: kcoro keeps its own.
void consumer_impl::note_runs(std::span<const message> messages) {
    if (messages.empty()) return;
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (!ends_run(messages, i)) continue;
        const rd_kafka_message_t* m = messages[i].native_handle();
        note_taken(rd_kafka_topic_name(m->rkt), m->partition, m->offset + 1);
    }
}

void consumer_impl::note_taken(std::string_view topic, std::int32_t partition, std::int64_t next) {
    if (auto* t = find_offset(taken_, topic, partition))
        t->offset = next;
    else
        taken_.push_back({intern_topic_name(topic), partition, next});
}

void consumer_impl::prepare_for(const std::vector<topic_partition>& parts) {
    for (const topic_partition& p : parts) intern_topic_name(p.topic);
    taken_.reserve(taken_.size() + parts.size());
    if (store_on_receive_) received_.reserve(received_.size() + parts.size());
}

void consumer_impl::forget_taken(const std::vector<topic_partition>& parts, bool all) {
    std::lock_guard lock(mutex_);
    release_received(parts, all);
    std::erase_if(taken_, [&](const taken_offset& t) { return all || contains(parts, t.topic, t.partition); });
    std::erase_if(paused_, [&](const topic_partition& t) { return all || contains(parts, t.topic, t.partition); });
}

void consumer_impl::take_messages(rd_kafka_message_t* const* taken, std::size_t n) {
    message* messages = drained_messages_.get();
    // Every message is owned before anything that may throw: should handing out fail (out
    // of memory), what was not handed out stays in the array, released when the next turn
    // reuses it or the consumer goes, never leaked with its count of the client (which
    // would then outlive everything). One count per message, added at once.
    client_->add_messages(n);
    for (std::size_t i = 0; i < n; ++i) messages[i] = message(taken[i], client_.get());
    std::size_t begin = 0, end = 0; // messages[begin, end): the run to hand out next
    const auto hand_out = [&] {
        const std::span run(messages + begin, end - begin);
        note_runs(run);
        deliver(run);
        begin = end;
    };
    const bool open = state_.load(std::memory_order_acquire) == lifecycle::open;
    for (std::size_t i = 0; i < n; ++i) {
        const rd_kafka_message_t* m = messages[i].native_handle();
        if (m->err) {
            hand_out(); // in order: what came before the error first
            const message failed = std::move(messages[i]);
            try {
                on_error(m->err, static_cast<const char*>(m->payload),
                         m->rkt ? rd_kafka_topic_name(m->rkt) : nullptr, m->partition, false, true);
            } catch (...) { // out of memory reporting it: the rest of the messages still go on
                if (!handler_exception_) handler_exception_ = std::current_exception();
            }
            continue;
        }
        // Closing: dropped. Fetched before a revocation took effect: the partition's next
        // owner reads it from the committed offset (never handed out, so never stored).
        if (!open ||
            (!revoking_.empty() && (revoking_all_ || contains(revoking_, rd_kafka_topic_name(m->rkt), m->partition)))) {
            messages[i] = message{};
            continue;
        }
        if (end != i) messages[end] = std::move(messages[i]);
        ++end;
    }
    hand_out();
}

void consumer_impl::after_drain() {
    complete_ready();
    if (handler_exception_) std::rethrow_exception(std::exchange(handler_exception_, nullptr));
}

void consumer_impl::on_error_event(rd_kafka_event_t* event) {
    std::unique_ptr<rd_kafka_topic_partition_t, decltype(&rd_kafka_topic_partition_destroy)> tp(
        rd_kafka_event_topic_partition(event), &rd_kafka_topic_partition_destroy);
    // From the side bridge: a receive completed from here is posted to its executor.
    on_error(rd_kafka_event_error(event), rd_kafka_event_error_string(event), tp ? tp->topic : nullptr,
             tp ? tp->partition : -1, rd_kafka_event_error_is_fatal(event), false);
}

void consumer_impl::on_error(rd_kafka_resp_err_t err, const char* text, const char* topic, std::int32_t partition,
                             bool fatal, bool in_drain) {
    if (fatal) {
        char reason[512];
        err = rd_kafka_fatal_error(rk_, reason, sizeof reason);
        deliver_error(make_error_code_from_kafka(err), fmt::format("consumer (fatal): {}", reason), false, in_drain);
        report({make_error_code_from_kafka(err), reason, true}, !in_drain);
        return;
    }
    // librdkafka 2.0 treats a refused authentication or TLS handshake as transient and
    // reconnects for ever: without this a receive would wait for ever, silently. It gets
    // the error (and the next receive the next refusal, or messages once accepted).
    const bool refused = is_refusal(make_error_code_from_kafka(err));
    // Any other transient error (a leader moving, a request timing out) is retried by
    // librdkafka even when it names a partition: logged, never failing a receive.
    if (!refused && !is_consumer_error(err) && (!topic || is_retriable(make_error_code_from_kafka(err)))) {
        report({make_error_code_from_kafka(err), text && *text ? text : rd_kafka_err2str(err)}, !in_drain);
        return;
    }
    std::string context = topic                                                 ? describe_partition(topic, partition)
                          : err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ? fmt::format("group '{}'", group_id_)
                          : refused                                             ? std::string("connect")
                                                                                : std::string("receive");
    if (text && *text) context += fmt::format(" ({})", text);
    deliver_error(make_error_code_from_kafka(err), std::move(context), !topic, in_drain);
}

void consumer_impl::report(const client_error& e, bool on_side_strand) {
    if (on_side_strand || !options_.on_error) {
        report_error(e, options_.on_error, "consumer");
        return;
    }
    if (context_gone_.load()) return;
    boost::asio::post(side_bridge_->strand(),
                      [self = shared_from_this(), code = e.code, reason = std::string(e.reason), fatal = e.fatal] {
                          report_error({code, reason, fatal}, self->options_.on_error, "consumer");
                      });
}

void consumer_impl::on_side_event(rd_kafka_event_t* event) {
    switch (rd_kafka_event_type(event)) {
    case RD_KAFKA_EVENT_OFFSET_COMMIT: {
        auto* op = static_cast<commit_op*>(rd_kafka_event_opaque(event));
        if (!op) {
            // An auto-commit's result: only a failure is worth a word.
            if (auto err = rd_kafka_event_error(event); err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
                report({make_error_code_from_kafka(err), fmt::format("auto-commit failed: {}", rd_kafka_err2str(err))},
                       true);
            return;
        }
        {
            std::lock_guard lock(commit_mutex_);
            if (!commits_.erase(op)) return;
        }
        std::unique_ptr<commit_op> owned(op);
        const rd_kafka_resp_err_t err = rd_kafka_event_error(event);
        error_code ec;
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            ec = make_error_code_from_kafka(err);
        else if (!err)
            ec = first_error(rd_kafka_event_topic_partition_list(event), nullptr);
        complete_with(std::move(owned->handler), ec);
        break;
    }
    case RD_KAFKA_EVENT_LOG: report_log(event, options_.on_log, debug_, "consumer"); break;
    case RD_KAFKA_EVENT_ERROR: on_error_event(event); break;
    default: break;
    }
}

// ---- rebalances (on the strand) -------------------------------------------------------

void consumer_impl::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t kind, rd_kafka_topic_partition_list_t* partitions,
                                 void*) {
    consumer_impl* self = draining_consumer;
    if (!self) {
        // Only take() serves the consumer queue with callbacks; should librdkafka call this
        // from elsewhere, no hook can run: the change is applied as librdkafka would.
        print_failure(kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                          ? take_up_partitions(rk, is_cooperative(rk), partitions)
                          : give_up_partitions(rk, is_cooperative(rk), partitions));
        return;
    }
    self->client_->note_rebalance(kind);
    self->rebalances_.push_back({kind, tpl_ptr(rd_kafka_topic_partition_list_copy(partitions))});
    // Applied once the batch is handed out. Not rd_kafka_yield(): librdkafka 2.0 would then
    // drop (and leak) the next message of the batch. The batch may hold messages queued
    // after a revocation: the partitions are still this member's until it gives them up.
    self->rebalance_taken_ = true;
}

void consumer_impl::apply_assign(const rd_kafka_topic_partition_list_t* partitions, bool cooperative) {
    const auto failure = take_up_partitions(rk_, cooperative, partitions);
    client_->note_answered();
    if (failure.code) report({failure.code, failure.reason}, false);
}

void consumer_impl::apply_revoke(const rd_kafka_topic_partition_list_t* partitions, bool cooperative) {
    const auto failure = give_up_partitions(rk_, cooperative, partitions);
    client_->note_answered();
    if (failure.code) report({failure.code, failure.reason}, false);
}

void consumer_impl::process_rebalances() {
    while (!rebalance_running_ && !rebalances_.empty()) {
        pending_rebalance next = std::move(rebalances_.front());
        rebalances_.pop_front();
        // Asking is safe here: the group waits for this rebalance's answer.
        const bool cooperative = is_cooperative(rk_);
        if (cooperative) client_->joined_cooperative.store(true);
        rebalance_event re;
        re.cooperative = cooperative;
        re.partitions = to_partitions(next.partitions.get());
        // Cooperative rebalances also report empty changes: no news for the hook.
        const bool hook =
            hooks_enabled_.load() && static_cast<bool>(options_.on_rebalance) && !re.partitions.empty();
        // Assigned partitions start from their committed offsets; revoked ones are gone.
        forget_taken(re.partitions, !cooperative);
        // What the hook's end still has to give up (a revocation's partitions).
        std::shared_ptr<rd_kafka_topic_partition_list_t> revoked;

        if (next.kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            {
                std::lock_guard lock(mutex_);
                prepare_for(re.partitions);
            }
            apply_assign(next.partitions.get(), cooperative);
            re.type = rebalance_event::kind::assigned;
        } else if (next.kind == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
            re.type = rd_kafka_assignment_lost(rk_) ? rebalance_event::kind::lost : rebalance_event::kind::revoked;
            // Buffered messages of these partitions now belong to another member.
            drop_buffered(re.partitions, !cooperative);
            if (!hook) {
                apply_revoke(next.partitions.get(), cooperative);
            } else {
                revoked = std::shared_ptr<rd_kafka_topic_partition_list_t>(next.partitions.release(), tpl_deleter{});
                revoking_ = re.partitions;
                revoking_all_ = !cooperative;
            }
        } else {
            report({make_error_code_from_kafka(next.kind), fmt::format("rebalance error: {}", rd_kafka_err2str(next.kind))},
                   false);
            rd_kafka_assign(rk_, nullptr);
            client_->note_answered();
            continue;
        }
        if (!hook) continue;

        rebalance_running_ = true;
        auto done = [self = shared_from_this(), revoked, cooperative](std::exception_ptr e) {
            if (e) {
                std::string what = "rebalance hook threw";
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    what += fmt::format(": {}", ex.what());
                } catch (...) {
                }
                self->report({make_error_code(errc::failed), what}, false);
            }
            if (revoked) self->apply_revoke(revoked.get(), cooperative);
            self->revoking_.clear();
            self->revoking_all_ = false;
            self->rebalance_running_ = false;
            self->process_rebalances();
        };
        try {
            boost::asio::co_spawn(bridge_->strand(), options_.on_rebalance(std::move(re)), std::move(done));
        } catch (...) {
            // The hook could not even start: go on without it.
            if (revoked) apply_revoke(revoked.get(), cooperative);
            revoking_.clear();
            revoking_all_ = false;
            rebalance_running_ = false;
        }
    }
}

// ---- what to consume -------------------------------------------------------------------

void consumer_impl::subscribe(const std::vector<std::string>& topics) {
    std::vector<topic_partition> parts;
    for (const auto& t : topics) parts.push_back({t, RD_KAFKA_PARTITION_UA});
    auto list = make_list(parts);
    std::lock_guard lock(client_mutex_);
    if (auto err = rd_kafka_subscribe(group_client(), list.get()))
        throw error(make_error_code_from_kafka(err), fmt::format("subscribe to {}", fmt::join(topics, ", ")));
}

void consumer_impl::unsubscribe() {
    std::lock_guard lock(client_mutex_);
    if (auto err = rd_kafka_unsubscribe(group_client())) throw error(make_error_code_from_kafka(err), "unsubscribe");
}

std::vector<std::string> consumer_impl::subscription() const {
    rd_kafka_topic_partition_list_t* raw = nullptr;
    {
        std::lock_guard lock(client_mutex_);
        if (auto err = rd_kafka_subscription(group_client(), &raw))
            throw error(make_error_code_from_kafka(err), "subscription");
    }
    tpl_ptr list(raw);
    std::vector<std::string> out;
    for (const auto& p : to_partitions(list.get())) out.push_back(p.topic);
    return out;
}

void consumer_impl::assign(const std::vector<partition_offset>& partitions) {
    auto list = make_list(partitions);
    store_unstored_now(); // librdkafka commits what is stored of the partitions it gives up
    {
        std::lock_guard lock(client_mutex_);
        if (auto err = rd_kafka_assign(group_client(), list.get()))
            throw error(make_error_code_from_kafka(err), "assign partitions");
    }
    std::vector<topic_partition> keep;
    for (const auto& p : partitions) keep.push_back({p.topic, p.partition});
    forget_taken({}, true); // each partition starts again where the assignment says
    // Buffered messages of partitions no longer assigned are stale.
    std::vector<buffered> dropped;
    std::unique_lock lock(mutex_);
    prepare_for(keep);
    buffer_.remove_if([&](const buffered& b) { return !b.error && !contains(keep, b.msg.topic(), b.msg.partition()); },
                      dropped);
    kick_if_stalled(lock);
}

void consumer_impl::unassign() {
    store_unstored_now();
    {
        std::lock_guard lock(client_mutex_);
        if (auto err = rd_kafka_assign(group_client(), nullptr)) throw error(make_error_code_from_kafka(err), "unassign");
    }
    forget_taken({}, true);
    drop_buffered({}, true);
}

std::vector<topic_partition> consumer_impl::assignment() const {
    rd_kafka_topic_partition_list_t* raw = nullptr;
    {
        std::lock_guard lock(client_mutex_);
        if (auto err = rd_kafka_assignment(group_client(), &raw)) throw error(make_error_code_from_kafka(err), "assignment");
    }
    tpl_ptr list(raw);
    return to_partitions(list.get());
}

// ---- offsets -------------------------------------------------------------------------

void consumer_impl::commit(std::optional<std::vector<partition_offset>> offsets,
                           any_completion_handler<void(error_code)> handler) {
    if (state_.load() == lifecycle::closed) {
        complete_with(std::move(handler), error_code(errc::client_closed));
        return;
    }
    tpl_ptr list;
    if (offsets) list = make_list(*offsets);
    // Cancelling ends the wait only: a commit sent is still applied.
    auto op = std::make_unique<commit_op>(commit_op{cancellable_wait::wrap(std::move(handler), executor_).first});
    {
        std::lock_guard lock(commit_mutex_);
        commits_.insert(op.get());
    }
    if (!offsets) store_unstored_now(); // the current position: what the application received
    rd_kafka_resp_err_t err;
    {
        std::lock_guard lock(client_mutex_);
        err = rk_ ? rd_kafka_commit_queue(rk_, list.get(), side_queue_, nullptr, op.get())
                  : RD_KAFKA_RESP_ERR__DESTROY;
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        (void)op.release(); // the result event brings it back
        return;
    }
    {
        std::lock_guard lock(commit_mutex_);
        commits_.erase(op.get());
    }
    const error_code ec = err == RD_KAFKA_RESP_ERR__NO_OFFSET ? error_code{}
                          : err == RD_KAFKA_RESP_ERR__DESTROY ? error_code(errc::client_closed)
                                                              : make_error_code_from_kafka(err);
    complete_with(std::move(op->handler), ec);
}

error_code consumer_impl::mark_done(const message& m, std::string* context) noexcept {
    if (!m) {
        if (context) *context = "mark done: an empty message";
        return errc::invalid_argument;
    }
    std::lock_guard lock(client_mutex_);
    if (!rk_) return errc::client_closed;
    // The single-partition form allocates nothing; it refuses partitions not assigned.
    if (auto err = rd_kafka_offset_store(m.native_handle()->rkt, m.partition(), m.offset())) {
        if (context) {
            try {
                *context = fmt::format("mark done {}", m);
            } catch (...) {
            }
        }
        return make_error_code_from_kafka(err);
    }
    return {};
}

void consumer_impl::seek(const partition_offset& position) {
    auto list = make_list(std::vector<partition_offset>{position});
    // librdkafka 2.0 silently accepts a seek of a partition it does not consume.
    if (!contains(assignment(), position.topic, position.partition))
        throw error(errc::state, fmt::format("seek {}: the partition is not assigned to this consumer", position));
    {
        std::lock_guard lock(client_mutex_);
        // Timeout 0: asynchronous, librdkafka discards what was fetched before the seek.
        error_ptr e(rd_kafka_seek_partitions(client(), list.get(), 0));
        if (e) throw error(make_error_code_from_kafka(rd_kafka_error_code(e.get())), fmt::format("seek {}", position));
        std::string context;
        if (error_code ec = first_error(list.get(), &context)) throw error(ec, "seek " + context);
    }
    if (position.offset >= 0) {
        std::lock_guard lock(mutex_);
        note_taken(position.topic, position.partition, position.offset);
    } else {
        forget_taken({{position.topic, position.partition}}, false); // a logical offset: librdkafka resolves it
    }
    drop_buffered({{position.topic, position.partition}}, false);
}

void consumer_impl::pause_resume(const std::vector<topic_partition>& partitions, bool pause) {
    auto list = make_list(partitions);
    // A paused partition goes on, when resumed, right after the last message kcoro took:
    // librdkafka before 2.1.0 may otherwise skip messages a pause dropped (see note_runs()).
    std::vector<partition_offset> resume_at;
    if (!pause) {
        std::lock_guard lock(mutex_);
        for (const auto& p : partitions)
            if (const auto* t = find_offset(taken_, p.topic, p.partition); t && contains(paused_, p.topic, p.partition))
                resume_at.push_back({std::string(t->topic), t->partition, t->offset});
    }
    {
        std::lock_guard lock(client_mutex_);
        // Seeking while still paused: nothing is fetched from the old resume point.
        if (!resume_at.empty()) error_ptr ignored(rd_kafka_seek_partitions(client(), make_list(resume_at).get(), 0));
        const auto err = pause ? rd_kafka_pause_partitions(client(), list.get())
                               : rd_kafka_resume_partitions(client(), list.get());
        const char* what = pause ? "pause" : "resume";
        if (err) throw error(make_error_code_from_kafka(err), what);
        std::string context;
        if (error_code ec = first_error(list.get(), &context)) throw error(ec, fmt::format("{} {}", what, context));
    }
    std::lock_guard lock(mutex_);
    for (const auto& p : partitions) {
        const bool known = contains(paused_, p.topic, p.partition);
        if (pause && !known) paused_.push_back(p);
        if (!pause && known)
            std::erase_if(paused_, [&](const topic_partition& x) { return x.partition == p.partition && x.topic == p.topic; });
    }
}

std::vector<partition_offset> consumer_impl::position(const std::vector<topic_partition>& partitions) const {
    auto list = make_list(partitions);
    {
        std::lock_guard lock(client_mutex_);
        if (auto err = rd_kafka_position(client(), list.get()))
            throw error(make_error_code_from_kafka(err), "position");
    }
    auto out = to_offsets(list.get());
    // librdkafka's position counts what the bridge drained (kcoro's own count, which a pause
    // cannot skip ahead, where it has one); the application's stops at the first message
    // still waiting in the local buffer.
    std::lock_guard lock(mutex_);
    for (auto& po : out) {
        if (const auto* t = find_offset(taken_, po.topic, po.partition)) po.offset = t->offset;
        if (auto first = first_unreceived({po.topic, po.partition})) po.offset = *first;
    }
    return out;
}

std::optional<std::int64_t> consumer_impl::lag(const topic_partition& tp) const {
    std::int64_t low = -1, high = -1;
    {
        std::lock_guard lock(client_mutex_);
        if (rd_kafka_get_watermark_offsets(client(), tp.topic.c_str(), tp.partition, &low, &high) || high < 0)
            return std::nullopt;
    }
    const std::int64_t pos = position(std::vector<topic_partition>{tp}).front().offset;
    if (pos < 0) return std::nullopt;
    return std::max<std::int64_t>(0, high - pos);
}

void consumer_impl::committed(std::vector<topic_partition> partitions, std::chrono::milliseconds timeout,
                              any_completion_handler<void(error_code, std::vector<partition_offset>)> h) {
    worker_.run([self = worker_hold(shared_from_this(), executor_), parts = std::move(partitions), timeout,
                 h = std::move(h)]() mutable {
        // Only the worker releases the client, so it may use rk_ without the lock.
        if (!self->rk_) return self->complete_with(std::move(h), error_code(errc::client_closed), {});
        auto list = make_list(parts);
        auto err = rd_kafka_committed(self->rk_, list.get(), static_cast<int>(timeout.count()));
        if (err) return self->complete_with(std::move(h), make_error_code_from_kafka(err), {});
        self->complete_with(std::move(h), first_error(list.get(), nullptr), to_offsets(list.get()));
    });
}

void consumer_impl::offsets_for_times(std::vector<partition_offset> times, std::chrono::milliseconds timeout,
                                      any_completion_handler<void(error_code, std::vector<partition_offset>)> h) {
    worker_.run([self = worker_hold(shared_from_this(), executor_), times = std::move(times), timeout,
                 h = std::move(h)]() mutable {
        if (!self->rk_) return self->complete_with(std::move(h), error_code(errc::client_closed), {});
        auto list = make_list(times);
        auto err = rd_kafka_offsets_for_times(self->rk_, list.get(), static_cast<int>(timeout.count()));
        if (err) return self->complete_with(std::move(h), make_error_code_from_kafka(err), {});
        self->complete_with(std::move(h), first_error(list.get(), nullptr), to_offsets(list.get()));
    });
}

void consumer_impl::watermark_offsets(topic_partition tp, std::chrono::milliseconds timeout,
                                      any_completion_handler<void(error_code, watermarks)> h) {
    worker_.run([self = worker_hold(shared_from_this(), executor_), tp = std::move(tp), timeout,
                 h = std::move(h)]() mutable {
        if (!self->rk_) return self->complete_with(std::move(h), error_code(errc::client_closed), watermarks{});
        watermarks w;
        auto err = rd_kafka_query_watermark_offsets(self->rk_, tp.topic.c_str(), tp.partition, &w.low, &w.high,
                                                    static_cast<int>(timeout.count()));
        self->complete_with(std::move(h), err ? make_error_code_from_kafka(err) : error_code{}, w);
    });
}

kcoro::group_metadata consumer_impl::group_metadata() const {
    std::lock_guard lock(client_mutex_);
    return kcoro::group_metadata(rd_kafka_consumer_group_metadata(group_client()));
}

std::string consumer_impl::member_id() const {
    std::lock_guard lock(client_mutex_);
    char* id = rd_kafka_memberid(group_client());
    if (!id) return {};
    std::string out(id);
    rd_kafka_mem_free(rk_, id);
    return out;
}

// ---- close -------------------------------------------------------------------------------

void consumer_impl::abort_receives() {
    std::vector<buffered> dropped;
    receive_op* list;
    {
        std::lock_guard lock(mutex_);
        closing_ = true;
        buffer_.clear(dropped);
        list = std::exchange(pending_head_, nullptr);
        pending_tail_ = nullptr;
        for (receive_op* op = list; op; op = op->next) op->linked = false;
        // Ops given a message but not completed yet: aborted too (the message, never
        // handed out, is not stored; the group reads it again).
        if (receive_op* ready = std::exchange(ready_head_, nullptr)) {
            ready_tail_->next = list;
            list = ready;
            ready_tail_ = nullptr;
        }
    }
    dropped.clear();
    while (receive_op* op = list) {
        list = op->next;
        op->next = op->prev = nullptr;
        op->batch.clear();
        op->single = message{};
        op->complete(boost::asio::error::operation_aborted, false);
    }
}

void consumer_impl::close(any_completion_handler<void(error_code)> handler) {
    {
        std::lock_guard lock(close_mutex_);
        if (state_.load() == lifecycle::closed) {
            complete_with(std::move(handler), error_code{});
            return;
        }
        // Cancelling a close ends its wait only: the close goes on.
        close_handlers_.push_back(cancellable_wait::wrap(std::move(handler), executor_).first);
        if (state_.exchange(lifecycle::closing) == lifecycle::closing) return; // already under way
    }
    abort_receives();
    if (context_gone_.load()) return;
    boost::asio::post(bridge_->strand(), [self = shared_from_this()] { self->begin_close(); });
}

void consumer_impl::begin_close() {
    batch_timer_->cancel();
    // A member still joining with the cooperative-sticky assignor could not be destroyed
    // after leaving (consumer_client::destroy_would_abort()): let it finish joining first,
    // for as long as the broker would wait for it. Past that, its client is kept.
    client_->note_protocol();
    if (client_->destroy_would_abort()) {
        const auto now = clock::now();
        if (!close_deadline_) close_deadline_ = now + session_timeout(rk_);
        if (now < *close_deadline_) {
            close_timer_->expires_after(std::chrono::milliseconds(20));
            close_timer_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
                if (!ec) self->begin_close();
            });
            return;
        }
    }
    // Leaves the group from the executor: librdkafka puts the final revocation on our queue,
    // which the bridge keeps draining (running the hook), until the consumer reports closed.
    // The group handler is not asked again from here on: it may have finished and no longer
    // answer (consumer_client::open_rebalances). A JoinGroup answered in the moment between
    // the question above and the close is the one case this leaves to librdkafka.
    {
        // Closing commits what is stored (with enable.auto.commit); the topic references
        // must go before the client does.
        std::lock_guard lock(mutex_);
        release_received({}, true);
    }
    client_->leaving.store(true);
    if (error_ptr e{rd_kafka_consumer_close_queue(rk_, queue_)}) {
        client_->leaving.store(false);
        report({make_error_code_from_kafka(rd_kafka_error_code(e.get())),
                fmt::format("close: {}", rd_kafka_error_string(e.get()))},
               false);
        finish_close();
        return;
    }
    poll_closed();
}

void consumer_impl::poll_closed() {
    if (rd_kafka_consumer_closed(rk_)) {
        finish_close();
        return;
    }
    // librdkafka signals nothing when the close completes: look again shortly.
    close_timer_->expires_after(std::chrono::milliseconds(5));
    close_timer_->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (!ec) self->poll_closed();
    });
}

void consumer_impl::finish_close() {
    bridge_->stop();
    side_bridge_->stop();
    rebalances_.clear();
    worker_.run([self = worker_hold(shared_from_this(), executor_)] {
        std::shared_ptr<consumer_client> client;
        {
            std::lock_guard lock(self->client_mutex_);
            self->rk_ = nullptr;
            self->queue_ = self->side_queue_ = nullptr;
            client = std::move(self->client_);
        }
        // rd_kafka_destroy may block briefly, hence the worker; when the application still
        // holds messages, the last of them destroys the client instead.
        client.reset();
        std::unordered_set<commit_op*> commits;
        {
            std::lock_guard lock(self->commit_mutex_);
            commits.swap(self->commits_);
        }
        for (commit_op* c : commits) {
            std::unique_ptr<commit_op> owned(c);
            self->complete_with(std::move(owned->handler), error_code(boost::asio::error::operation_aborted));
        }
        std::vector<any_completion_handler<void(error_code)>> handlers;
        {
            std::lock_guard lock(self->close_mutex_);
            self->state_.store(lifecycle::closed);
            handlers.swap(self->close_handlers_);
        }
        for (auto& h : handlers) self->complete_with(std::move(h), error_code{});
    });
}

// ---- the functions the header's templates call ----------------------------------------

void* allocate_op(consumer_impl& impl, std::size_t size) { return impl.pool().allocate(size); }
void deallocate_op(consumer_impl& impl, void* p, std::size_t size) noexcept { impl.pool().deallocate(p, size); }
const boost::asio::any_io_executor& io_executor(const consumer_impl& impl) noexcept { return impl.executor(); }
std::shared_ptr<void> keep_alive(consumer_impl& impl) noexcept { return impl.weak_from_this().lock(); }
void cancel_receive(consumer_impl& impl, receive_op* op) { impl.cancel(op); }
void start_receive(consumer_impl& impl, receive_op* op, bool) { impl.start_receive(op); }
bool try_receive_now(consumer_impl& impl, message& out, error_code& ec) { return impl.try_receive_now(out, ec); }

void start_commit(const std::shared_ptr<consumer_impl>& impl, std::optional<std::vector<partition_offset>> offsets,
                  commit_handler handler) {
    impl->commit(std::move(offsets), std::move(handler));
}

void start_consumer_close(const std::shared_ptr<consumer_impl>& impl, commit_handler handler) {
    impl->close(std::move(handler));
}

void start_committed(const std::shared_ptr<consumer_impl>& impl, std::vector<topic_partition> partitions,
                     std::chrono::milliseconds timeout,
                     any_completion_handler<void(error_code, std::vector<partition_offset>)> handler) {
    impl->committed(std::move(partitions), timeout, std::move(handler));
}

void start_offsets_for_times(const std::shared_ptr<consumer_impl>& impl, std::vector<partition_offset> times,
                             std::chrono::milliseconds timeout,
                             any_completion_handler<void(error_code, std::vector<partition_offset>)> handler) {
    impl->offsets_for_times(std::move(times), timeout, std::move(handler));
}

void start_watermarks(const std::shared_ptr<consumer_impl>& impl, topic_partition tp, std::chrono::milliseconds timeout,
                      any_completion_handler<void(error_code, watermarks)> handler) {
    impl->watermark_offsets(std::move(tp), timeout, std::move(handler));
}

std::string receive_error_context(const consumer_impl& impl) {
    std::string c = impl.last_error_context();
    return c.empty() ? std::string("receive") : c;
}

void abandon(std::shared_ptr<consumer_impl> impl) noexcept {
    try {
        impl->disable_hooks(); // the hook may refer to the consumer object being destroyed
        impl->close(any_completion_handler<void(error_code)>([](error_code) {}));
    } catch (...) {
        // Out of memory while closing: the impl's destructor still releases librdkafka.
    }
}

void throw_consumer_error(error_code ec, const std::string& context) { throw error(ec, context); }

} // namespace kcoro::detail

namespace kcoro {

consumer::consumer(executor_type executor, const config& properties, consumer_options options)
    : impl_(std::make_shared<detail::consumer_impl>(std::move(executor), properties, std::move(options))) {
    impl_->start();
}

consumer& consumer::operator=(consumer&& other) noexcept {
    if (this != &other) {
        if (impl_) detail::abandon(std::move(impl_));
        impl_ = std::move(other.impl_);
    }
    return *this;
}

consumer::~consumer() {
    if (impl_) detail::abandon(std::move(impl_));
}

consumer::executor_type consumer::get_executor() const noexcept { return impl_->executor(); }

void consumer::subscribe(const std::vector<std::string>& topics) { impl_->subscribe(topics); }
void consumer::unsubscribe() { impl_->unsubscribe(); }
std::vector<std::string> consumer::subscription() const { return impl_->subscription(); }
void consumer::assign(const std::vector<partition_offset>& partitions) { impl_->assign(partitions); }
void consumer::unassign() { impl_->unassign(); }
std::vector<topic_partition> consumer::assignment() const { return impl_->assignment(); }

void consumer::mark_done(const message& m) {
    std::string context;
    if (error_code ec = impl_->mark_done(m, &context)) throw error(ec, context);
}

error_code consumer::mark_done(const message& m, error_code& ec) noexcept {
    ec = impl_->mark_done(m, nullptr);
    return ec;
}

void consumer::seek(const partition_offset& position) { impl_->seek(position); }
void consumer::pause(const std::vector<topic_partition>& partitions) { impl_->pause_resume(partitions, true); }
void consumer::resume(const std::vector<topic_partition>& partitions) { impl_->pause_resume(partitions, false); }

std::vector<partition_offset> consumer::position(const std::vector<topic_partition>& partitions) const {
    return impl_->position(partitions);
}

std::optional<std::int64_t> consumer::lag(const topic_partition& tp) const { return impl_->lag(tp); }
kcoro::group_metadata consumer::group_metadata() const { return impl_->group_metadata(); }
std::string consumer::member_id() const { return impl_->member_id(); }

} // namespace kcoro
