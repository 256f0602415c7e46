#include <kcoro/admin.hpp>

#include "detail/client_config.hpp"
#include "detail/client_events.hpp"
#include "detail/client_registry.hpp"
#include "detail/event_bridge.hpp"
#include "detail/rdkafka_ptr.hpp"
#include "detail/refusal.hpp"
#include "detail/worker_thread.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace kcoro::detail {

namespace {

using boost::asio::any_completion_handler;

struct admin_options_deleter {
    void operator()(rd_kafka_AdminOptions_t* p) const noexcept { rd_kafka_AdminOptions_destroy(p); }
};
using admin_options_ptr = std::unique_ptr<rd_kafka_AdminOptions_t, admin_options_deleter>;

struct metadata_deleter {
    void operator()(const rd_kafka_metadata_t* p) const noexcept { rd_kafka_metadata_destroy(p); }
};
using metadata_ptr = std::unique_ptr<const rd_kafka_metadata_t, metadata_deleter>;

struct tpl_deleter {
    void operator()(rd_kafka_topic_partition_list_t* p) const noexcept { rd_kafka_topic_partition_list_destroy(p); }
};
using tpl_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, tpl_deleter>;

// Owners of arrays of librdkafka request objects.
template <class T, void (*Destroy)(T*)>
struct request_array {
    std::vector<T*> items;
    request_array() = default;
    request_array(const request_array&) = delete;
    request_array& operator=(const request_array&) = delete;
    ~request_array() {
        for (T* p : items) Destroy(p);
    }
};

error_code kafka_error(rd_kafka_resp_err_t err) { return err ? make_error_code_from_kafka(err) : error_code{}; }

std::string text(const char* s) { return s ? s : ""; }

int to_ms(std::chrono::milliseconds d) {
    return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(d.count(), 0, 3'600'000));
}

config_source to_source(rd_kafka_ConfigSource_t s) {
    switch (s) {
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG: return config_source::dynamic_topic;
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG: return config_source::dynamic_broker;
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: return config_source::dynamic_default_broker;
    case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG: return config_source::static_broker;
    case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG: return config_source::default_value;
    default: return config_source::unknown;
    }
}

consumer_group_state to_state(rd_kafka_consumer_group_state_t s) {
    switch (s) {
    case RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE: return consumer_group_state::preparing_rebalance;
    case RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE: return consumer_group_state::completing_rebalance;
    case RD_KAFKA_CONSUMER_GROUP_STATE_STABLE: return consumer_group_state::stable;
    case RD_KAFKA_CONSUMER_GROUP_STATE_DEAD: return consumer_group_state::dead;
    case RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY: return consumer_group_state::empty;
    default: return consumer_group_state::unknown;
    }
}

rd_kafka_ResourceType_t to_rd(config_resource::kind k) {
    return k == config_resource::kind::topic ? RD_KAFKA_RESOURCE_TOPIC : RD_KAFKA_RESOURCE_BROKER;
}

// The results of a batch request, in the order the names were asked (librdkafka does
// not promise an order), one per name even when the cluster left one out.
std::vector<resource_result> in_request_order(const std::vector<std::string>& names,
                                              std::vector<resource_result> got) {
    std::vector<resource_result> out;
    out.reserve(names.size());
    for (const auto& n : names) {
        auto it = std::find_if(got.begin(), got.end(), [&](const resource_result& r) { return r.name == n; });
        if (it != got.end())
            out.push_back(std::move(*it));
        else
            out.push_back({n, errc::failed, "the cluster's response did not mention it"});
    }
    return out;
}

std::vector<resource_result> topic_results(const rd_kafka_topic_result_t** topics, std::size_t n) {
    std::vector<resource_result> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        out.push_back({text(rd_kafka_topic_result_name(topics[i])), kafka_error(rd_kafka_topic_result_error(topics[i])),
                       text(rd_kafka_topic_result_error_string(topics[i]))});
    return out;
}

std::vector<resource_result> all_failed(const std::vector<std::string>& names, error_code ec, std::string_view msg) {
    std::vector<resource_result> out;
    out.reserve(names.size());
    for (const auto& n : names) out.push_back({n, ec, std::string(msg)});
    return out;
}

} // namespace

// ---- operations ----------------------------------------------------------------------

// An outstanding operation. Owned by admin_impl::pending_ until it completes; librdkafka
// knows it only by its id (the request's opaque), so a result that comes after the
// operation was cancelled or aborted finds nothing and is dropped.
class pending_op {
public:
    virtual ~pending_op() = default;
    /// The request's result event (on the strand). Completes the operation.
    virtual void on_result(rd_kafka_event_t* event) = 0;
    /// Completes the operation with an error that concerns all of it.
    virtual void fail(error_code ec, std::string_view message) = 0;
};

template <class T>
class typed_op final : public pending_op {
public:
    using parser = std::function<T(rd_kafka_event_t*, error_code&)>;
    using failer = std::function<T(error_code, std::string_view)>;

    typed_op(admin_impl& owner, admin_handler<T> handler, parser parse, failer on_failure)
        : owner_(owner), handler_(std::move(handler)), parse_(std::move(parse)), on_failure_(std::move(on_failure)) {}

    void on_result(rd_kafka_event_t* event) override {
        if (const rd_kafka_resp_err_t err = rd_kafka_event_error(event)) {
            fail(make_error_code_from_kafka(err), text(rd_kafka_event_error_string(event)));
            return;
        }
        error_code ec;
        T value = parse_(event, ec);
        complete(ec, std::move(value));
    }

    void fail(error_code ec, std::string_view message) override {
        T value = on_failure_ ? on_failure_(ec, message) : T{};
        complete(ec, std::move(value));
    }

    void complete(error_code ec, T value);

    admin_handler<T>& handler() noexcept { return handler_; }

private:
    admin_impl& owner_;
    admin_handler<T> handler_;
    parser parse_;
    failer on_failure_;
};

class admin_impl final : public event_sink,
                         public registered_client,
                         public std::enable_shared_from_this<admin_impl> {
public:
    admin_impl(boost::asio::any_io_executor executor, const config& properties, admin_options options);
    ~admin_impl();

    void start() {
        boost::asio::use_service<client_registry>(boost::asio::query(executor_, boost::asio::execution::context))
            .add(weak_from_this());
        bridge_->start(shared_from_this(), this);
    }

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    const admin_options& options() const noexcept { return options_; }

    /// Registers an operation and sends its request with `send(rk, admin_options, queue)`.
    /// A closed client completes it with errc::client_closed.
    template <class T>
    void start_request(std::unique_ptr<typed_op<T>> op, rd_kafka_admin_op_t kind,
                       const std::function<void(rd_kafka_t*, rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& send);

    /// Registers an operation whose work `run(rk)` blocks: it runs on the worker thread.
    template <class T>
    using blocking_job = std::function<T(rd_kafka_t*, error_code&, const std::function<bool()>& abandoned)>;
    template <class T>
    void start_blocking(std::unique_ptr<typed_op<T>> op, blocking_job<T> run);

    /// Completes a handler at once, without a request (through the executor, never inline).
    template <class T>
    void reject(admin_handler<T> handler, error_code ec, T value) {
        deliver(std::move(handler), ec, std::move(value));
    }

    template <class T>
    void deliver(admin_handler<T> handler, error_code ec, T value) {
        if (auto slot = boost::asio::get_associated_cancellation_slot(handler); slot.is_connected()) slot.clear();
        if (context_gone_.load()) return;
        // post() hands the handler on to its own associated executor.
        boost::asio::post(executor_, boost::asio::append(std::move(handler), ec, std::move(value)));
    }

    void close(std::chrono::milliseconds timeout, any_completion_handler<void(error_code)> handler);

    // event_sink
    void on_event(rd_kafka_event_t* event) override;
    void after_drain() override {}

    // registered_client
    void on_context_shutdown() noexcept override {
        context_gone_.store(true);
        worker_.stop();
        if (bridge_ && bridge_->running()) bridge_->stop();
    }

private:
    enum class lifecycle : std::uint8_t { open, closing, closed };

    std::uint64_t next_id() { return next_id_.fetch_add(1) + 1; }
    std::unique_ptr<pending_op> take(std::uint64_t id);
    template <class T>
    void watch_cancellation(typed_op<T>& op, std::uint64_t id);
    void cancel(std::uint64_t id);
    void post_to_strand(any_completion_handler<void()> f) {
        if (!context_gone_.load()) boost::asio::post(bridge_->strand(), std::move(f));
    }
    void after_operation(); // on the strand: a close waiting for the last operation
    void finish_close(bool clean);
    void on_log(rd_kafka_event_t* event);
    void on_error(rd_kafka_event_t* event);
    void on_refused(error_code code, const std::string& reason); // on the strand

    boost::asio::any_io_executor executor_;
    admin_options options_;
    kafka_ptr rk_;
    queue_ptr queue_;
    std::optional<event_bridge> bridge_;
    worker_thread worker_;

    std::mutex mutex_; // guards state_, pending_, close_handlers_
    lifecycle state_ = lifecycle::open;
    std::unordered_map<std::uint64_t, std::unique_ptr<pending_op>> pending_;
    std::vector<any_completion_handler<void(error_code)>> close_handlers_;
    std::atomic<std::uint64_t> next_id_{0};
    std::optional<boost::asio::steady_timer> close_timer_;
    bool finishing_ = false; // on the strand
    std::atomic<bool> context_gone_{false};
    bool debug_ = false; // the `debug` property is set: log lines are printed without on_log
};

template <class T>
void typed_op<T>::complete(error_code ec, T value) {
    owner_.deliver(std::move(handler_), ec, std::move(value));
}

admin_impl::admin_impl(boost::asio::any_io_executor executor, const config& properties, admin_options options)
    : executor_(std::move(executor)), options_(std::move(options)), debug_(debugging(properties)) {
    config effective = properties;
    effective.set("log.queue", "true");
    auto conf = make_conf(effective);
    rd_kafka_conf_set_events(conf.get(), RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG);
    // librdkafka's admin client is a producer handle that never produces.
    rk_ = make_client(RD_KAFKA_PRODUCER, std::move(conf));
    queue_.reset(rd_kafka_queue_get_main(rk_.get()));
    rd_kafka_set_log_queue(rk_.get(), queue_.get());
    bridge_.emplace(executor_, queue_.get());
}

admin_impl::~admin_impl() {
    // Reached without an orderly close only when the execution context went away first:
    // nothing can be completed any more, pending handlers are destroyed uninvoked.
    pending_.clear();
    bridge_.reset();
    queue_.reset();
    rk_.reset();
}

std::unique_ptr<pending_op> admin_impl::take(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return nullptr;
    auto op = std::move(it->second);
    pending_.erase(it);
    return op;
}

template <class T>
void admin_impl::watch_cancellation(typed_op<T>& op, std::uint64_t id) {
    auto slot = boost::asio::get_associated_cancellation_slot(op.handler());
    if (!slot.is_connected()) return;
    slot.assign([weak = weak_from_this(), id](boost::asio::cancellation_type type) {
        if (type == boost::asio::cancellation_type::none) return;
        if (auto self = weak.lock()) self->cancel(id);
    });
}

void admin_impl::cancel(std::uint64_t id) {
    post_to_strand([self = shared_from_this(), id] {
        if (auto op = self->take(id)) {
            op->fail(boost::asio::error::operation_aborted, "cancelled");
            self->after_operation();
        }
    });
}

template <class T>
void admin_impl::start_request(std::unique_ptr<typed_op<T>> op, rd_kafka_admin_op_t kind,
                               const std::function<void(rd_kafka_t*, rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& send) {
    const std::uint64_t id = next_id();
    typed_op<T>* raw = op.get();
    watch_cancellation(*raw, id);
    // Under the lock that close() takes: a closing client never sends, and its handle
    // is released only after it stopped accepting operations.
    std::lock_guard lock(mutex_);
    if (state_ != lifecycle::open) {
        auto h = std::move(raw->handler());
        reject(std::move(h), errc::client_closed, T{});
        return;
    }
    admin_options_ptr opts(rd_kafka_AdminOptions_new(rk_.get(), kind));
    std::array<char, 256> errstr{};
    rd_kafka_AdminOptions_set_request_timeout(opts.get(), to_ms(options_.request_timeout), errstr.data(),
                                              errstr.size());
    if (kind == RD_KAFKA_ADMIN_OP_CREATETOPICS || kind == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
        kind == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS || kind == RD_KAFKA_ADMIN_OP_DELETERECORDS)
        rd_kafka_AdminOptions_set_operation_timeout(opts.get(), to_ms(options_.operation_timeout), errstr.data(),
                                                    errstr.size());
    rd_kafka_AdminOptions_set_opaque(opts.get(), reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)));
    pending_.emplace(id, std::move(op));
    send(rk_.get(), opts.get(), queue_.get());
}

template <class T>
void admin_impl::start_blocking(std::unique_ptr<typed_op<T>> op, blocking_job<T> run) {
    const std::uint64_t id = next_id();
    watch_cancellation(*op, id);
    typed_op<T>* raw = op.get();
    {
        std::lock_guard lock(mutex_);
        if (state_ != lifecycle::open) {
            auto h = std::move(raw->handler());
            reject(std::move(h), errc::client_closed, T{});
            return;
        }
        pending_.emplace(id, std::move(op));
    }
    // The client is destroyed on this same worker thread, after this job.
    worker_.run([self = worker_hold(shared_from_this(), executor_), id, run = std::move(run)] {
        error_code ec;
        // Cancelled, or aborted by close: the job stops waiting at its next slice.
        const auto abandoned = [&] {
            std::lock_guard lock(self->mutex_);
            return self->context_gone_.load() || !self->pending_.contains(id);
        };
        T value = run(self->rk_.get(), ec, abandoned);
        self->post_to_strand([self = self.shared(), id, ec, value = std::move(value)]() mutable {
            if (auto op = self->take(id)) {
                static_cast<typed_op<T>*>(op.get())->complete(ec, std::move(value));
                self->after_operation();
            }
        });
    });
}

void admin_impl::on_event(rd_kafka_event_t* event) {
    switch (rd_kafka_event_type(event)) {
    case RD_KAFKA_EVENT_LOG: on_log(event); return;
    case RD_KAFKA_EVENT_ERROR: on_error(event); return;
    case RD_KAFKA_EVENT_CREATETOPICS_RESULT:
    case RD_KAFKA_EVENT_DELETETOPICS_RESULT:
    case RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT:
    case RD_KAFKA_EVENT_ALTERCONFIGS_RESULT:
    case RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT:
    case RD_KAFKA_EVENT_DELETERECORDS_RESULT:
    case RD_KAFKA_EVENT_DELETEGROUPS_RESULT:
    case RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT:
    case RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT: {
        const auto id = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(rd_kafka_event_opaque(event)));
        if (auto op = take(id)) {
            op->on_result(event);
            after_operation();
        }
        return;
    }
    default: return;
    }
}

void admin_impl::on_log(rd_kafka_event_t* event) { report_log(event, options_.on_log, debug_, "admin"); }

void admin_impl::on_error(rd_kafka_event_t* event) {
    const client_error e{make_error_code_from_kafka(rd_kafka_event_error(event)),
                         rd_kafka_event_error_string(event) ? rd_kafka_event_error_string(event) : "",
                         rd_kafka_event_error_is_fatal(event) != 0};
    if (is_refusal(e.code))
        on_refused(e.code, std::string(e.reason));
    report_error(e, options_.on_error, "admin");
}

void admin_impl::on_refused(error_code code, const std::string& reason) {
    // See is_refusal(): operations started later succeed once the brokers accept the
    // client, or fail at the next refusal.
    std::unordered_map<std::uint64_t, std::unique_ptr<pending_op>> refused;
    {
        std::lock_guard lock(mutex_);
        refused.swap(pending_);
    }
    // A result that comes later finds no operation and is dropped; a blocking job sees
    // its operation gone and stops waiting.
    for (auto& [id, op] : refused) op->fail(code, reason);
    if (!refused.empty()) after_operation();
}

// ---- close ---------------------------------------------------------------------------

void admin_impl::close(std::chrono::milliseconds timeout, any_completion_handler<void(error_code)> handler) {
    {
        std::lock_guard lock(mutex_);
        if (state_ == lifecycle::closed) {
            if (!context_gone_.load()) boost::asio::post(executor_, boost::asio::append(std::move(handler), error_code{}));
            return;
        }
        close_handlers_.push_back(std::move(handler));
        if (state_ == lifecycle::closing) return;
        state_ = lifecycle::closing;
    }
    post_to_strand([self = shared_from_this(), timeout] {
        bool idle = false;
        {
            std::lock_guard lock(self->mutex_);
            idle = self->pending_.empty();
        }
        if (idle) {
            self->finish_close(true);
            return;
        }
        if (timeout == admin::no_timeout) return; // the last operation's completion finishes the close
        self->close_timer_.emplace(self->bridge_->strand(), timeout);
        self->close_timer_->async_wait([self](const boost::system::error_code& ec) {
            if (ec || self->finishing_) return;
            std::unordered_map<std::uint64_t, std::unique_ptr<pending_op>> left;
            {
                std::lock_guard lock(self->mutex_);
                left.swap(self->pending_);
            }
            for (auto& [id, op] : left) op->fail(boost::asio::error::operation_aborted, "the admin client was closed");
            self->finish_close(false);
        });
    });
}

void admin_impl::after_operation() {
    bool finish = false;
    {
        std::lock_guard lock(mutex_);
        finish = state_ == lifecycle::closing && pending_.empty();
    }
    if (finish) finish_close(true);
}

void admin_impl::finish_close(bool clean) {
    if (finishing_) return;
    finishing_ = true;
    if (close_timer_) close_timer_->cancel();
    bridge_->stop();
    worker_.run([self = worker_hold(shared_from_this(), executor_), clean] {
        self->queue_.reset();
        self->rk_.reset(); // rd_kafka_destroy may block briefly: here, not on the executor
        std::vector<any_completion_handler<void(error_code)>> handlers;
        {
            std::lock_guard lock(self->mutex_);
            self->state_ = lifecycle::closed;
            handlers.swap(self->close_handlers_);
        }
        if (self->context_gone_.load()) return;
        for (auto& h : handlers)
            boost::asio::post(self->executor_,
                              boost::asio::append(std::move(h), clean ? error_code{} : error_code(errc::timed_out)));
    });
}

// ---- the operations ------------------------------------------------------------------

namespace {

template <class T>
std::unique_ptr<typed_op<T>> make_op(admin_impl& impl, admin_handler<T> handler,
                                     typename typed_op<T>::parser parse, typename typed_op<T>::failer failure) {
    return std::make_unique<typed_op<T>>(impl, std::move(handler), std::move(parse), std::move(failure));
}

// Empty or duplicated names are the caller's mistake: say so before sending anything.
std::optional<std::string> check_names(const std::vector<std::string>& names, std::string_view what) {
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i].empty()) return fmt::format("{} name #{} is empty", what, i + 1);
        for (std::size_t j = 0; j < i; ++j)
            if (names[j] == names[i]) return fmt::format("{} '{}' is named twice", what, names[i]);
    }
    return std::nullopt;
}

std::vector<resource_result> invalid(const std::vector<std::string>& names, const std::string& message) {
    return all_failed(names, errc::invalid_argument, message);
}

} // namespace

void admin_create_topics(const std::shared_ptr<admin_impl>& impl, std::vector<new_topic> topics,
                         admin_handler<std::vector<resource_result>> handler) {
    std::vector<std::string> names;
    names.reserve(topics.size());
    for (const auto& t : topics) names.push_back(t.name);
    if (auto bad = check_names(names, "topic")) {
        impl->reject(std::move(handler), errc::invalid_argument, invalid(names, *bad));
        return;
    }
    if (topics.empty()) {
        impl->reject(std::move(handler), error_code{}, std::vector<resource_result>{});
        return;
    }
    // librdkafka checks the counts and config names locally: report that per topic.
    auto requests = std::make_shared<request_array<rd_kafka_NewTopic_t, rd_kafka_NewTopic_destroy>>();
    std::vector<resource_result> local;
    for (const auto& t : topics) {
        // librdkafka 2.0 lets 0 through to the broker; -1 means the broker's default.
        if (t.partitions == 0 || t.partitions < -1 || t.replication_factor == 0 || t.replication_factor < -1) {
            local.push_back({t.name, errc::invalid_argument,
                             fmt::format("{} must be at least 1 (or -1 for the broker's default), not {}",
                                         t.partitions < 1 && t.partitions != -1 ? "the partition count"
                                                                                : "the replication factor",
                                         t.partitions < 1 && t.partitions != -1 ? t.partitions
                                                                                : t.replication_factor)});
            continue;
        }
        std::array<char, 512> errstr{};
        rd_kafka_NewTopic_t* nt =
            rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor, errstr.data(), errstr.size());
        if (!nt) {
            local.push_back({t.name, errc::invalid_argument, errstr.data()});
            continue;
        }
        requests->items.push_back(nt);
        for (const auto& [k, v] : t.configs) {
            if (rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                local.push_back({t.name, errc::invalid_argument, fmt::format("config '{}' is not accepted", k)});
                break;
            }
        }
        if (local.empty() || local.back().name != t.name) local.push_back({t.name, {}, {}});
    }
    if (std::any_of(local.begin(), local.end(), [](const auto& r) { return bool(r.error); })) {
        // Nothing is sent when one topic is wrong: a batch is created as a whole or not at all
        // as far as the caller's mistakes go. The others are reported as not attempted.
        for (auto& r : local)
            if (!r.error) {
                r.error = errc::invalid_argument;
                r.message = "not attempted: another topic of the batch is invalid";
            }
        const error_code ec = first_failure(local);
        impl->reject(std::move(handler), ec, std::move(local));
        return;
    }
    auto op = make_op<std::vector<resource_result>>(
        *impl, std::move(handler),
        [names](rd_kafka_event_t* ev, error_code& ec) {
            std::size_t n = 0;
            const auto** t = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
            auto out = in_request_order(names, topic_results(t, n));
            ec = first_failure(out);
            return out;
        },
        [names](error_code ec, std::string_view msg) { return all_failed(names, ec, msg); });
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_CREATETOPICS,
                        [requests](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_CreateTopics(rk, requests->items.data(), requests->items.size(), o, q);
                        });
}

void admin_delete_topics(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> topics,
                         admin_handler<std::vector<resource_result>> handler) {
    if (auto bad = check_names(topics, "topic")) {
        impl->reject(std::move(handler), errc::invalid_argument, invalid(topics, *bad));
        return;
    }
    if (topics.empty()) {
        impl->reject(std::move(handler), error_code{}, std::vector<resource_result>{});
        return;
    }
    auto requests = std::make_shared<request_array<rd_kafka_DeleteTopic_t, rd_kafka_DeleteTopic_destroy>>();
    for (const auto& t : topics) requests->items.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
    auto op = make_op<std::vector<resource_result>>(
        *impl, std::move(handler),
        [topics](rd_kafka_event_t* ev, error_code& ec) {
            std::size_t n = 0;
            const auto** t = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
            auto out = in_request_order(topics, topic_results(t, n));
            ec = first_failure(out);
            return out;
        },
        [topics](error_code ec, std::string_view msg) { return all_failed(topics, ec, msg); });
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_DELETETOPICS,
                        [requests](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_DeleteTopics(rk, requests->items.data(), requests->items.size(), o, q);
                        });
}

void admin_create_partitions(const std::shared_ptr<admin_impl>& impl, std::string topic, std::int32_t total,
                             admin_handler<std::vector<resource_result>> handler) {
    const std::vector<std::string> names{topic};
    if (topic.empty()) {
        impl->reject(std::move(handler), errc::invalid_argument, invalid(names, "the topic name is empty"));
        return;
    }
    auto requests = std::make_shared<request_array<rd_kafka_NewPartitions_t, rd_kafka_NewPartitions_destroy>>();
    std::array<char, 512> errstr{};
    rd_kafka_NewPartitions_t* np =
        total > 0 ? rd_kafka_NewPartitions_new(topic.c_str(), static_cast<std::size_t>(total), errstr.data(),
                                               errstr.size())
                  : nullptr;
    if (!np) {
        const std::string why = total > 0 ? std::string(errstr.data())
                                          : fmt::format("a topic needs at least 1 partition, not {}", total);
        impl->reject(std::move(handler), errc::invalid_argument, invalid(names, why));
        return;
    }
    requests->items.push_back(np);
    auto op = make_op<std::vector<resource_result>>(
        *impl, std::move(handler),
        [names](rd_kafka_event_t* ev, error_code& ec) {
            std::size_t n = 0;
            const auto** t = rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
            auto out = in_request_order(names, topic_results(t, n));
            ec = first_failure(out);
            return out;
        },
        [names](error_code ec, std::string_view msg) { return all_failed(names, ec, msg); });
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_CREATEPARTITIONS,
                        [requests](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_CreatePartitions(rk, requests->items.data(), requests->items.size(), o, q);
                        });
}

namespace {

// rd_kafka_metadata() blocks for up to its timeout when no broker answers: wait in
// slices, so that a cancelled operation or a closing client frees the worker soon.
metadata_ptr fetch_metadata(rd_kafka_t* rk, bool all_topics, std::chrono::milliseconds timeout,
                            const std::function<bool()>& abandoned, error_code& ec) {
    using clock = std::chrono::steady_clock;
    constexpr auto slice = std::chrono::milliseconds(250);
    const auto deadline = clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        const rd_kafka_metadata_t* md = nullptr;
        const auto err = rd_kafka_metadata(rk, all_topics ? 1 : 0, nullptr, &md,
                                           to_ms(std::clamp(left, std::chrono::milliseconds(1), slice)));
        if (!err) return metadata_ptr(md);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || left <= slice || abandoned()) {
            ec = make_error_code_from_kafka(err);
            return nullptr;
        }
    }
}

} // namespace

void admin_describe_cluster(const std::shared_ptr<admin_impl>& impl, admin_handler<cluster_description> handler) {
    const auto timeout = impl->options().request_timeout;
    auto op = make_op<cluster_description>(*impl, std::move(handler), nullptr, nullptr);
    impl->start_blocking<cluster_description>(std::move(op), [timeout](rd_kafka_t* rk, error_code& ec,
                                                                       const std::function<bool()>& abandoned) {
        cluster_description d;
        // No topics: the brokers are all that is needed.
        const auto md = fetch_metadata(rk, false, timeout, abandoned, ec);
        if (!md) return d;
        for (int i = 0; i < md->broker_cnt; ++i)
            d.brokers.push_back({md->brokers[i].id, text(md->brokers[i].host), md->brokers[i].port});
        std::sort(d.brokers.begin(), d.brokers.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        // Both come from the metadata just received: no further wait.
        if (char* id = rd_kafka_clusterid(rk, 0)) {
            d.cluster_id = id;
            rd_kafka_mem_free(rk, id);
        }
        d.controller_id = rd_kafka_controllerid(rk, 0);
        return d;
    });
}

void admin_list_topics(const std::shared_ptr<admin_impl>& impl, admin_handler<std::vector<std::string>> handler) {
    const auto timeout = impl->options().request_timeout;
    auto op = make_op<std::vector<std::string>>(*impl, std::move(handler), nullptr, nullptr);
    impl->start_blocking<std::vector<std::string>>(std::move(op), [timeout](rd_kafka_t* rk, error_code& ec,
                                                                            const std::function<bool()>& abandoned) {
        std::vector<std::string> names;
        // Every topic, so that asking never creates one (a request naming a topic may,
        // with the broker's auto.create.topics.enable).
        const auto md = fetch_metadata(rk, true, timeout, abandoned, ec);
        if (!md) return names;
        for (int i = 0; i < md->topic_cnt; ++i)
            // A topic being created may still report leader_not_available: it exists.
            if (md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) names.push_back(text(md->topics[i].topic));
        std::sort(names.begin(), names.end());
        return names;
    });
}

void admin_describe_topics(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> topics,
                           admin_handler<std::vector<topic_description>> handler) {
    if (auto bad = check_names(topics, "topic")) {
        std::vector<topic_description> out;
        for (const auto& t : topics) out.push_back({t, {}, errc::invalid_argument, *bad});
        impl->reject(std::move(handler), errc::invalid_argument, std::move(out));
        return;
    }
    const auto timeout = impl->options().request_timeout;
    auto op = make_op<std::vector<topic_description>>(*impl, std::move(handler), nullptr, nullptr);
    impl->start_blocking<std::vector<topic_description>>(
        std::move(op), [timeout, topics = std::move(topics)](rd_kafka_t* rk, error_code& ec,
                                                             const std::function<bool()>& abandoned) {
            std::vector<topic_description> out;
            error_code request_ec;
            const auto md = fetch_metadata(rk, true, timeout, abandoned, request_ec);
            for (const auto& name : topics) {
                topic_description d{.name = name};
                if (!md) {
                    d.error = request_ec;
                    d.message = "the cluster's metadata could not be read";
                    out.push_back(std::move(d));
                    continue;
                }
                const rd_kafka_metadata_topic_t* found = nullptr;
                for (int i = 0; i < md->topic_cnt && !found; ++i)
                    if (name == md->topics[i].topic) found = &md->topics[i];
                if (!found) {
                    d.error = errc::unknown_topic_or_partition;
                    d.message = fmt::format("topic '{}' does not exist", name);
                } else {
                    // A topic-level error (e.g. leader_not_available just after creation)
                    // comes with whatever partitions the cluster did report.
                    if (found->err) {
                        d.error = make_error_code_from_kafka(found->err);
                        d.message = fmt::format("topic '{}': {}", name, d.error.message());
                    }
                    for (int p = 0; p < found->partition_cnt; ++p) {
                        const auto& src = found->partitions[p];
                        partition_description pd{.partition = src.id,
                                                 .leader = src.leader,
                                                 .replicas = {src.replicas, src.replicas + src.replica_cnt},
                                                 .in_sync = {src.isrs, src.isrs + src.isr_cnt},
                                                 .error = kafka_error(src.err)};
                        d.partitions.push_back(std::move(pd));
                    }
                    std::sort(d.partitions.begin(), d.partitions.end(),
                              [](const auto& a, const auto& b) { return a.partition < b.partition; });
                }
                out.push_back(std::move(d));
            }
            for (const auto& d : out)
                if (d.error) {
                    ec = d.error;
                    break;
                }
            return out;
        });
}

namespace {

std::vector<config_entry> config_entries(const rd_kafka_ConfigResource_t* res) {
    std::vector<config_entry> out;
    std::size_t n = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(res, &n);
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        const char* v = rd_kafka_ConfigEntry_value(entries[i]);
        out.push_back({.name = text(rd_kafka_ConfigEntry_name(entries[i])),
                       .value = v ? std::optional<std::string>(v) : std::nullopt,
                       .source = to_source(rd_kafka_ConfigEntry_source(entries[i])),
                       .is_default = rd_kafka_ConfigEntry_is_default(entries[i]) != 0,
                       .read_only = rd_kafka_ConfigEntry_is_read_only(entries[i]) != 0,
                       .sensitive = rd_kafka_ConfigEntry_is_sensitive(entries[i]) != 0});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

struct config_resource_deleter {
    void operator()(rd_kafka_ConfigResource_t* p) const noexcept { rd_kafka_ConfigResource_destroy(p); }
};
using config_resource_ptr = std::unique_ptr<rd_kafka_ConfigResource_t, config_resource_deleter>;

std::optional<std::string> check_resource(const config_resource& r) {
    if (r.name.empty())
        return r.type == config_resource::kind::topic ? "the topic name is empty" : "the broker id is empty";
    return std::nullopt;
}

} // namespace

void admin_describe_configs(const std::shared_ptr<admin_impl>& impl, config_resource resource,
                            admin_handler<std::vector<config_entry>> handler) {
    if (check_resource(resource)) {
        impl->reject(std::move(handler), errc::invalid_argument, std::vector<config_entry>{});
        return;
    }
    auto request = std::make_shared<config_resource_ptr>(rd_kafka_ConfigResource_new(to_rd(resource.type),
                                                                                     resource.name.c_str()));
    auto op = make_op<std::vector<config_entry>>(
        *impl, std::move(handler),
        [](rd_kafka_event_t* ev, error_code& ec) {
            std::size_t n = 0;
            const auto** res =
                rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
            if (n == 0) {
                ec = errc::failed;
                return std::vector<config_entry>{};
            }
            if (const auto err = rd_kafka_ConfigResource_error(res[0])) {
                ec = make_error_code_from_kafka(err);
                return std::vector<config_entry>{};
            }
            return config_entries(res[0]);
        },
        nullptr);
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
                        [request](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_ConfigResource_t* one[] = {request->get()};
                            rd_kafka_DescribeConfigs(rk, one, 1, o, q);
                        });
}

void admin_alter_configs(const std::shared_ptr<admin_impl>& impl, config_resource resource,
                         std::vector<config_alteration> changes,
                         admin_handler<std::vector<resource_result>> handler) {
    const std::vector<std::string> names{resource.name};
    if (auto bad = check_resource(resource)) {
        impl->reject(std::move(handler), errc::invalid_argument, invalid(names, *bad));
        return;
    }
    for (const auto& c : changes)
        if (c.name.empty()) {
            impl->reject(std::move(handler), errc::invalid_argument, invalid(names, "a config name is empty"));
            return;
        }
    // Step 1 reads the resource's own (dynamic) values; step 2 sends them back with the
    // changes applied, since AlterConfigs replaces them all.
    const auto own = resource.type == config_resource::kind::topic ? config_source::dynamic_topic
                                                                   : config_source::dynamic_broker;
    auto second_step = [weak = std::weak_ptr<admin_impl>(impl), resource, changes = std::move(changes), own, names,
                        h = std::move(handler)](error_code ec, std::vector<config_entry> current) mutable {
        const auto impl = weak.lock();
        if (!impl) return; // the client is gone: its handlers are destroyed uninvoked
        if (ec) {
            impl->deliver(std::move(h), ec, all_failed(names, ec, "reading the current configuration failed"));
            return;
        }
        std::map<std::string, std::string> merged;
        std::vector<std::string> secrets;
        for (const auto& e : current) {
            if (e.source != own) continue;
            if (e.value)
                merged[e.name] = *e.value;
            else
                secrets.push_back(e.name);
        }
        for (const auto& c : changes) {
            if (c.value)
                merged[c.name] = *c.value;
            else
                merged.erase(c.name);
            std::erase(secrets, c.name);
        }
        if (!secrets.empty()) {
            impl->deliver(std::move(h), error_code(errc::invalid_argument),
                          invalid(names, fmt::format("sensitive config '{}' is set and cannot be read back: "
                                                     "altering would erase it",
                                                     secrets.front())));
            return;
        }
        auto request = std::make_shared<config_resource_ptr>(
            rd_kafka_ConfigResource_new(to_rd(resource.type), resource.name.c_str()));
        for (const auto& [k, v] : merged) rd_kafka_ConfigResource_set_config(request->get(), k.c_str(), v.c_str());
        auto op = make_op<std::vector<resource_result>>(
            *impl, std::move(h),
            [names](rd_kafka_event_t* ev, error_code& ec2) {
                std::size_t n = 0;
                const auto** res =
                    rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
                std::vector<resource_result> out;
                if (n == 0)
                    out.push_back({names.front(), errc::failed, "the cluster's response did not mention it"});
                else
                    out.push_back({names.front(), kafka_error(rd_kafka_ConfigResource_error(res[0])),
                                   text(rd_kafka_ConfigResource_error_string(res[0]))});
                ec2 = out.front().error;
                return out;
            },
            [names](error_code ec2, std::string_view msg) { return all_failed(names, ec2, msg); });
        impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_ALTERCONFIGS,
                            [request](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                                rd_kafka_ConfigResource_t* one[] = {request->get()};
                                rd_kafka_AlterConfigs(rk, one, 1, o, q);
                            });
    };
    admin_describe_configs(impl, resource,
                           admin_handler<std::vector<config_entry>>(boost::asio::bind_executor(
                               impl->executor(), std::move(second_step))));
}

void admin_list_consumer_groups(const std::shared_ptr<admin_impl>& impl,
                                admin_handler<std::vector<consumer_group_listing>> handler) {
    auto op = make_op<std::vector<consumer_group_listing>>(
        *impl, std::move(handler),
        [](rd_kafka_event_t* ev, error_code& ec) {
            const auto* res = rd_kafka_event_ListConsumerGroups_result(ev);
            std::vector<consumer_group_listing> out;
            std::size_t n = 0;
            const auto** valid = rd_kafka_ListConsumerGroups_result_valid(res, &n);
            for (std::size_t i = 0; i < n; ++i)
                out.push_back({text(rd_kafka_ConsumerGroupListing_group_id(valid[i])),
                               to_state(rd_kafka_ConsumerGroupListing_state(valid[i])),
                               rd_kafka_ConsumerGroupListing_is_simple_consumer_group(valid[i]) != 0});
            std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.group_id < b.group_id; });
            std::size_t errors = 0;
            const auto** errs = rd_kafka_ListConsumerGroups_result_errors(res, &errors);
            if (errors > 0) ec = make_error_code_from_kafka(rd_kafka_error_code(errs[0]));
            return out;
        },
        nullptr);
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS,
                        [](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_ListConsumerGroups(rk, o, q);
                        });
}

void admin_describe_consumer_groups(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> groups,
                                    admin_handler<std::vector<consumer_group_description>> handler) {
    auto failed_all = [groups](error_code ec, std::string_view msg) {
        std::vector<consumer_group_description> out;
        for (const auto& g : groups) {
            // Filled in place: a braced temporary makes GCC 12 (-O3) warn of an uninitialized copy.
            auto& d = out.emplace_back();
            d.group_id = g;
            d.error = ec;
            d.message = msg;
        }
        return out;
    };
    if (auto bad = check_names(groups, "group")) {
        impl->reject(std::move(handler), errc::invalid_argument, failed_all(errc::invalid_argument, *bad));
        return;
    }
    if (groups.empty()) {
        impl->reject(std::move(handler), error_code{}, std::vector<consumer_group_description>{});
        return;
    }
    auto op = make_op<std::vector<consumer_group_description>>(
        *impl, std::move(handler),
        [groups](rd_kafka_event_t* ev, error_code& ec) {
            std::size_t n = 0;
            const auto** descs =
                rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
            std::vector<consumer_group_description> out;
            for (const auto& g : groups) {
                consumer_group_description d{.group_id = g};
                const rd_kafka_ConsumerGroupDescription_t* src = nullptr;
                for (std::size_t i = 0; i < n && !src; ++i)
                    if (g == text(rd_kafka_ConsumerGroupDescription_group_id(descs[i]))) src = descs[i];
                if (!src) {
                    d.error = errc::failed;
                    d.message = "the cluster's response did not mention it";
                } else if (const rd_kafka_error_t* err = rd_kafka_ConsumerGroupDescription_error(src)) {
                    d.error = make_error_code_from_kafka(rd_kafka_error_code(err));
                    d.message = text(rd_kafka_error_string(err));
                } else {
                    d.state = to_state(rd_kafka_ConsumerGroupDescription_state(src));
                    d.simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(src) != 0;
                    d.partition_assignor = text(rd_kafka_ConsumerGroupDescription_partition_assignor(src));
                    if (const rd_kafka_Node_t* c = rd_kafka_ConsumerGroupDescription_coordinator(src))
                        d.coordinator = {rd_kafka_Node_id(c), text(rd_kafka_Node_host(c)), rd_kafka_Node_port(c)};
                    const std::size_t members = rd_kafka_ConsumerGroupDescription_member_count(src);
                    for (std::size_t m = 0; m < members; ++m) {
                        const auto* md = rd_kafka_ConsumerGroupDescription_member(src, m);
                        member_description mem{.member_id = text(rd_kafka_MemberDescription_consumer_id(md)),
                                               .client_id = text(rd_kafka_MemberDescription_client_id(md)),
                                               .host = text(rd_kafka_MemberDescription_host(md))};
                        if (const char* gi = rd_kafka_MemberDescription_group_instance_id(md)) mem.group_instance_id = gi;
                        if (const auto* a = rd_kafka_MemberDescription_assignment(md))
                            if (const auto* parts = rd_kafka_MemberAssignment_partitions(a))
                                for (int p = 0; p < parts->cnt; ++p)
                                    mem.assignment.push_back({parts->elems[p].topic, parts->elems[p].partition});
                        d.members.push_back(std::move(mem));
                    }
                    // Kafka answers "Dead" with no error for a group it does not know.
                    if (d.state == consumer_group_state::dead && d.members.empty()) {
                        d.error = errc::group_id_not_found;
                        d.message = fmt::format("group '{}' does not exist", g);
                    }
                }
                out.push_back(std::move(d));
            }
            for (const auto& d : out)
                if (d.error) {
                    ec = d.error;
                    break;
                }
            return out;
        },
        failed_all);
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
                        [groups](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            std::vector<const char*> names;
                            for (const auto& g : groups) names.push_back(g.c_str());
                            rd_kafka_DescribeConsumerGroups(rk, names.data(), names.size(), o, q);
                        });
}

void admin_delete_consumer_groups(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> groups,
                                  admin_handler<std::vector<resource_result>> handler) {
    if (auto bad = check_names(groups, "group")) {
        impl->reject(std::move(handler), errc::invalid_argument, invalid(groups, *bad));
        return;
    }
    if (groups.empty()) {
        impl->reject(std::move(handler), error_code{}, std::vector<resource_result>{});
        return;
    }
    auto requests = std::make_shared<request_array<rd_kafka_DeleteGroup_t, rd_kafka_DeleteGroup_destroy>>();
    for (const auto& g : groups) requests->items.push_back(rd_kafka_DeleteGroup_new(g.c_str()));
    auto op = make_op<std::vector<resource_result>>(
        *impl, std::move(handler),
        [groups](rd_kafka_event_t* ev, error_code& ec) {
            std::size_t n = 0;
            const auto** res = rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
            std::vector<resource_result> got;
            for (std::size_t i = 0; i < n; ++i) {
                const rd_kafka_error_t* err = rd_kafka_group_result_error(res[i]);
                got.push_back({text(rd_kafka_group_result_name(res[i])),
                               err ? make_error_code_from_kafka(rd_kafka_error_code(err)) : error_code{},
                               err ? text(rd_kafka_error_string(err)) : std::string{}});
            }
            auto out = in_request_order(groups, std::move(got));
            ec = first_failure(out);
            return out;
        },
        [groups](error_code ec, std::string_view msg) { return all_failed(groups, ec, msg); });
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_DELETEGROUPS,
                        [requests](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_DeleteGroups(rk, requests->items.data(), requests->items.size(), o, q);
                        });
}

void admin_delete_records(const std::shared_ptr<admin_impl>& impl, std::vector<partition_offset> before,
                          admin_handler<std::vector<deleted_records>> handler) {
    auto failed_all = [before](error_code ec, std::string_view) {
        std::vector<deleted_records> out;
        for (const auto& p : before) out.push_back({p.topic, p.partition, -1, ec});
        return out;
    };
    for (const auto& p : before)
        if (p.topic.empty() || p.partition < 0 || (p.offset < 0 && p.offset != offsets::end)) {
            impl->reject(std::move(handler), errc::invalid_argument, failed_all(errc::invalid_argument, {}));
            return;
        }
    if (before.empty()) {
        impl->reject(std::move(handler), error_code{}, std::vector<deleted_records>{});
        return;
    }
    tpl_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(before.size())));
    for (const auto& p : before) rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset = p.offset;
    auto requests = std::make_shared<request_array<rd_kafka_DeleteRecords_t, rd_kafka_DeleteRecords_destroy>>();
    requests->items.push_back(rd_kafka_DeleteRecords_new(list.get()));
    auto op = make_op<std::vector<deleted_records>>(
        *impl, std::move(handler),
        [before](rd_kafka_event_t* ev, error_code& ec) {
            const auto* res = rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
            std::vector<deleted_records> out;
            for (const auto& p : before) {
                deleted_records d{p.topic, p.partition, -1, errc::failed};
                for (int i = 0; res && i < res->cnt; ++i) {
                    const auto& e = res->elems[i];
                    if (e.partition == p.partition && p.topic == e.topic) {
                        d.error = kafka_error(e.err);
                        d.low_watermark = e.err ? -1 : e.offset;
                        break;
                    }
                }
                out.push_back(std::move(d));
            }
            for (const auto& d : out)
                if (d.error) {
                    ec = d.error;
                    break;
                }
            return out;
        },
        failed_all);
    impl->start_request(std::move(op), RD_KAFKA_ADMIN_OP_DELETERECORDS,
                        [requests](rd_kafka_t* rk, rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                            rd_kafka_DeleteRecords(rk, requests->items.data(), requests->items.size(), o, q);
                        });
}

void admin_close(const std::shared_ptr<admin_impl>& impl, std::chrono::milliseconds timeout,
                 any_completion_handler<void(error_code)> handler) {
    impl->close(timeout, std::move(handler));
}

void abandon(std::shared_ptr<admin_impl> impl) noexcept {
    try {
        impl->close(std::chrono::milliseconds(0), any_completion_handler<void(error_code)>([](error_code) {}));
    } catch (...) {
        // Out of memory while closing: the impl's destructor still releases librdkafka.
    }
}

const boost::asio::any_io_executor& admin_executor(const admin_impl& impl) noexcept { return impl.executor(); }

error_code first_failure(const std::vector<resource_result>& results) noexcept {
    for (const auto& r : results)
        if (r.error) return r.error;
    return {};
}

namespace {

template <class Range, class Name, class Explain>
std::string failures(std::string_view operation, const Range& results, Name name, Explain explain) {
    std::string out(operation);
    std::size_t failed = 0;
    for (const auto& r : results) {
        if (!r.error) continue;
        const std::string why = explain(r);
        out += failed++ ? "; " : " ";
        out += fmt::format("'{}'", name(r));
        if (failed > 1 || why.empty()) out += fmt::format(": {}", r.error.message());
        if (!why.empty()) out += fmt::format(" ({})", why);
    }
    return out;
}

} // namespace

std::string describe_failures(std::string_view operation, const std::vector<resource_result>& results) {
    return failures(operation, results, [](const auto& r) { return r.name; }, [](const auto& r) { return r.message; });
}

std::string describe_failures(std::string_view operation, const std::vector<topic_description>& results) {
    return failures(operation, results, [](const auto& r) { return r.name; }, [](const auto& r) { return r.message; });
}

std::string describe_failures(std::string_view operation, const std::vector<consumer_group_description>& results) {
    return failures(operation, results, [](const auto& r) { return r.group_id; },
                    [](const auto& r) { return r.message; });
}

std::string describe_failures(std::string_view operation, const std::vector<deleted_records>& results) {
    return failures(operation, results, [](const auto& r) { return fmt::format("{}/{}", r.topic, r.partition); },
                    [](const auto&) { return std::string{}; });
}

void throw_admin_error(error_code ec, const std::string& context) { throw error(ec, context); }

} // namespace kcoro::detail

namespace kcoro {

std::string_view to_string(consumer_group_state s) noexcept {
    switch (s) {
    case consumer_group_state::preparing_rebalance: return "PreparingRebalance";
    case consumer_group_state::completing_rebalance: return "CompletingRebalance";
    case consumer_group_state::stable: return "Stable";
    case consumer_group_state::dead: return "Dead";
    case consumer_group_state::empty: return "Empty";
    case consumer_group_state::unknown: break;
    }
    return "Unknown";
}

admin::admin(executor_type executor, const config& properties, admin_options options)
    : impl_(std::make_shared<detail::admin_impl>(std::move(executor), properties, std::move(options))) {
    impl_->start();
}

admin& admin::operator=(admin&& other) noexcept {
    if (this != &other) {
        if (impl_) detail::abandon(std::move(impl_));
        impl_ = std::move(other.impl_);
    }
    return *this;
}

admin::~admin() {
    if (impl_) detail::abandon(std::move(impl_));
}

std::string admin::describe(const config_resource& r, std::string_view what) {
    if (r.type == config_resource::kind::topic) return fmt::format("{} topic '{}'", what, r.name);
    return fmt::format("{} broker {}", what, r.name);
}

} // namespace kcoro
