#include <kcoro/producer.hpp>

#include "detail/cancellable.hpp"
#include "detail/client_config.hpp"
#include "detail/client_events.hpp"
#include "detail/producer_impl.hpp"
#include "detail/refusal.hpp"
#include "detail/topic_names.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cstring>
#include <atomic>
#include <cstdio>
#include <exception>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kcoro::detail {

namespace {

using boost::asio::any_completion_handler;
using clock = std::chrono::steady_clock;

constexpr int purge_all = RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT;

// What a send is about, for errors before librdkafka knows the record.
record_metadata metadata_for(std::string_view topic, std::optional<std::int32_t> partition) {
    record_metadata md;
    md.topic = intern_topic_name(topic);
    md.partition = partition.value_or(-1);
    return md;
}

std::string_view topic_of(const send_op* op) noexcept { return op->owned ? op->owned->topic : op->view->topic; }

// Records rd_kafka_produce_batch() can take: it takes neither headers nor timestamps, and
// records with an explicit partition go one by one, because librdkafka 2.0.2's batch call
// leaks a record refused for an unknown partition, and adds the unassigned partition (-1) to
// an open transaction when the topic's metadata is not known yet (the broker then refuses to
// end the transaction). Records the partitioner places take its own, correct path.
bool batchable(const send_op* op) noexcept {
    return op->owned ? op->owned->headers.empty() && !op->owned->timestamp && !op->owned->partition
                     : op->view->headers.empty() && !op->view->timestamp && !op->view->partition;
}

// Whether `op` can join a run started by `first`: one call takes one topic and one copy mode.
bool same_run(const send_op* first, const send_op* op) noexcept {
    return batchable(op) && (op->owned != nullptr) == (first->owned != nullptr) && topic_of(op) == topic_of(first);
}

} // namespace


producer_impl::producer_impl(boost::asio::any_io_executor executor, const config& properties,
                             producer_options options)
    : executor_(std::move(executor)), options_(std::move(options)), debug_(debugging(properties)) {
    config effective = properties;
    // Safe by default: no duplicates or reordering on retries (documented in producer.hpp).
    if (!effective.contains("enable.idempotence")) effective.set("enable.idempotence", "true");
    if (options_.partitioning) effective.set("partitioner", std::string(to_string(*options_.partitioning)));
    // Logs become events on our queue, so they are handled on the executor.
    effective.set("log.queue", "true");
    if (auto id = effective.get("transactional.id"); id && !id->empty()) {
        transactional_ = true;
        transactional_id_ = std::string(*id);
        // The budget for retrying each transactional step (librdkafka checks the value).
        if (auto t = effective.get("transaction.timeout.ms")) {
            long long ms = 0;
            if (std::from_chars(t->data(), t->data() + t->size(), ms).ec == std::errc{} && ms > 0)
                transaction_timeout_ = std::chrono::milliseconds(ms);
        }
    }
    auto conf = make_conf(effective);
    // Statistics are events only when statistics.interval.ms asks for them.
    rd_kafka_conf_set_events(conf.get(),
                             RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_STATS);
    rk_ = make_client(RD_KAFKA_PRODUCER, std::move(conf));
    queue_.reset(rd_kafka_queue_get_main(rk_.get()));
    rd_kafka_set_log_queue(rk_.get(), queue_.get());
    bridge_.emplace(executor_, queue_.get());
}

producer_impl::~producer_impl() {
    // Reached only without an orderly close (e.g. the io_context was destroyed with the
    // producer's handlers pending). Nothing can be completed any more: release what
    // librdkafka still holds, without invoking handlers.
    {
        std::lock_guard lock(waiting_mutex_);
        while (send_op* op = waiting_head_) {
            waiting_head_ = op->next;
            op->release();
        }
    }
    if (!rk_) return;
    bridge_.reset();
    rd_kafka_purge(rk_.get(), purge_all);
    rd_kafka_flush(rk_.get(), 0);
    while (event_ptr event{rd_kafka_queue_poll(queue_.get(), 0)}) {
        if (rd_kafka_event_type(event.get()) != RD_KAFKA_EVENT_DR) continue;
        while (const rd_kafka_message_t* m = rd_kafka_event_message_next(event.get()))
            if (auto* op = static_cast<send_op*>(m->_private)) op->release();
    }
    last_topic_.store(nullptr);
    topics_.clear();
    queue_.reset();
    rk_.reset();
}

// ---- sending ---------------------------------------------------------------------

producer_impl::topic_entry* producer_impl::topic_for(std::string_view name) {
    // Most producers send to one topic at a time: skip the lock and the hash for it.
    if (topic_entry* last = last_topic_.load(std::memory_order_acquire); last && last->name == name) return last;
    std::lock_guard lock(topics_mutex_);
    if (auto it = topics_.find(name); it != topics_.end()) {
        last_topic_.store(it->second.get(), std::memory_order_release);
        return it->second.get();
    }
    topic_entry* created = create_topic_entry(name);
    if (created) last_topic_.store(created, std::memory_order_release);
    return created;
}

producer_impl::topic_entry* producer_impl::create_topic_entry(std::string_view name) {
    auto entry = std::make_unique<topic_entry>();
    entry->name = intern_topic_name(name);
    // Each handle inherits the default topic configuration and points back at its
    // entry, so a delivery report finds the interned name without a lookup.
    rd_kafka_topic_conf_t* tconf = rd_kafka_default_topic_conf_dup(rk_.get());
    rd_kafka_topic_conf_set_opaque(tconf, entry.get());
    if (options_.partition_with) {
        entry->partition_with = &options_.partition_with;
        rd_kafka_topic_conf_set_partitioner_cb(tconf, &producer_impl::call_partitioner);
    }
    const std::string name_z(name);
    entry->handle.reset(rd_kafka_topic_new(rk_.get(), name_z.c_str(), tconf));
    if (!entry->handle) return nullptr; // invalid name; librdkafka freed tconf
    auto* raw = entry.get();
    topics_.emplace(entry->name, std::move(entry));
    return raw;
}

// Runs on librdkafka's threads (or inside produce()): touches nothing but its arguments
// and the user's function, and lets no exception out into C.
std::int32_t producer_impl::call_partitioner(const rd_kafka_topic_t*, const void* key, size_t keylen,
                                             std::int32_t partition_count, void* topic_opaque, void*) noexcept {
    const auto* entry = static_cast<const topic_entry*>(topic_opaque);
    try {
        std::optional<std::string_view> k;
        if (key) k.emplace(static_cast<const char*>(key), keylen);
        const std::int32_t p = (*entry->partition_with)(entry->name, k, partition_count);
        // Out of range: an invalid partition, which fails the record with unknown_partition.
        return p >= 0 && p < partition_count ? p : partition_count;
    } catch (...) {
        return partition_count;
    }
}

record_metadata producer_impl::describe(const send_op* op) const {
    return op->owned ? metadata_for(op->owned->topic, op->owned->partition)
                     : metadata_for(op->view->topic, op->view->partition);
}

rd_kafka_resp_err_t producer_impl::produce(send_op* op) {
    std::string_view topic;
    std::optional<std::int32_t> partition;
    std::optional<std::string_view> key, value;
    std::optional<kcoro::timestamp> ts;
    if (op->owned) {
        const record& r = *op->owned;
        topic = r.topic;
        partition = r.partition;
        if (r.key) key = *r.key;
        if (r.value) value = *r.value;
        ts = r.timestamp;
    } else {
        const record_view& r = *op->view;
        topic = r.topic;
        partition = r.partition;
        key = r.key;
        value = r.value;
        ts = r.timestamp;
    }
    if (topic.empty()) return RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;
    // librdkafka sends a null pointer as null: a present but empty view (whose data() may
    // be null) must stay empty, not turn into a null key or a tombstone.
    if (value && !value->data()) value = std::string_view("", 0);
    if (key && !key->data()) key = std::string_view("", 0);
    topic_entry* t = topic_for(topic);
    if (!t) return RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;

    const std::size_t header_count = op->owned ? op->owned->headers.size() : op->view->headers.size();
    if (header_count == 0 && !ts) {
        // The common record: rd_kafka_produce() is cheaper than the var-arg producev().
        op->enqueued = true; // before librdkafka may report it, on any thread
        if (rd_kafka_produce(t->handle.get(), partition.value_or(RD_KAFKA_PARTITION_UA),
                             op->owned ? RD_KAFKA_MSG_F_COPY : 0, value ? const_cast<char*>(value->data()) : nullptr,
                             value ? value->size() : 0, key ? key->data() : nullptr, key ? key->size() : 0, op) == 0)
            return RD_KAFKA_RESP_ERR_NO_ERROR;
        op->enqueued = false;
        return rd_kafka_last_error();
    }
    constexpr std::size_t fixed_args = 7;
    constexpr std::size_t inline_args = 24;
    rd_kafka_vu_t inline_vu[inline_args];
    std::vector<rd_kafka_vu_t> heap_vu; // only for records with many headers
    rd_kafka_vu_t* vu = inline_vu;
    if (fixed_args + header_count > inline_args) {
        heap_vu.resize(fixed_args + header_count);
        vu = heap_vu.data();
    }
    std::size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_RKT;
    vu[n++].u.rkt = t->handle.get();
    vu[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vu[n++].u.i32 = partition.value_or(RD_KAFKA_PARTITION_UA);
    // An owning record is copied into librdkafka; a view's value is referenced.
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = op->owned ? RD_KAFKA_MSG_F_COPY : 0;
    vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[n++].u.ptr = op;
    if (value) {
        vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
        vu[n].u.mem.ptr = const_cast<char*>(value->data());
        vu[n++].u.mem.size = value->size();
    }
    if (key) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = const_cast<char*>(key->data());
        vu[n++].u.mem.size = key->size();
    }
    if (ts) {
        vu[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vu[n++].u.i64 = ts->time_since_epoch().count();
    }
    // Header names must be NUL-terminated for librdkafka: owned headers are std::string.
    // A name with a NUL byte inside would be cut short silently: refused instead.
    std::vector<std::string> view_header_names;
    for (std::size_t i = 0; i < header_count; ++i) {
        const std::string_view name = op->owned ? std::string_view(op->owned->headers[i].key) : op->view->headers[i].key;
        if (name.find('\0') != std::string_view::npos) return RD_KAFKA_RESP_ERR__INVALID_ARG;
    }
    for (std::size_t i = 0; i < header_count; ++i) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        if (op->owned) {
            const header& h = op->owned->headers[i];
            vu[n].u.header.name = h.key.c_str();
            vu[n].u.header.val = h.value ? h.value->data() : nullptr;
            vu[n].u.header.size = h.value ? static_cast<ssize_t>(h.value->size()) : 0;
        } else {
            const header_view& h = op->view->headers[i];
            if (view_header_names.empty()) view_header_names.reserve(header_count);
            vu[n].u.header.name = view_header_names.emplace_back(h.key).c_str();
            vu[n].u.header.val = h.value ? (h.value->data() ? h.value->data() : "") : nullptr;
            vu[n].u.header.size = h.value ? static_cast<ssize_t>(h.value->size()) : 0;
        }
        ++n;
    }
    op->enqueued = true; // before librdkafka may report it, on any thread
    error_ptr err(rd_kafka_produceva(rk_.get(), vu, n));
    if (!err) return RD_KAFKA_RESP_ERR_NO_ERROR;
    op->enqueued = false;
    return rd_kafka_error_code(err.get());
}

void producer_impl::produce_run(send_op* const* ops, std::size_t n, rd_kafka_resp_err_t* errs) {
    // One call per run: librdkafka then reads the clock and locks the topic once, not per record.
    topic_entry* t = topic_for(topic_of(ops[0]));
    if (!t) {
        for (std::size_t k = 0; k < n; ++k) errs[k] = RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;
        return;
    }
    std::array<rd_kafka_message_t, max_run> messages;
    for (std::size_t k = 0; k < n; ++k) {
        send_op* op = ops[k];
        std::optional<std::string_view> key, value;
        if (op->owned) {
            if (op->owned->key) key = *op->owned->key;
            if (op->owned->value) value = *op->owned->value;
        } else {
            key = op->view->key;
            value = op->view->value;
        }
        rd_kafka_message_t& m = messages[k];
        std::memset(&m, 0, sizeof m);
        // As in produce(): a present but empty value or key stays empty, not null.
        if (value) {
            m.payload = const_cast<char*>(value->data() ? value->data() : "");
            m.len = value->size();
        }
        if (key) {
            m.key = const_cast<char*>(key->data() ? key->data() : "");
            m.key_len = key->size();
        }
        m._private = op;
        op->enqueued = true; // before librdkafka may report it, on any thread
    }
    // Every record to the partitioner, which also adds partitions to an open transaction.
    rd_kafka_produce_batch(t->handle.get(), RD_KAFKA_PARTITION_UA, ops[0]->owned ? RD_KAFKA_MSG_F_COPY : 0,
                           messages.data(), static_cast<int>(n));
    for (std::size_t k = 0; k < n; ++k) {
        errs[k] = messages[k].err;
        if (errs[k] != RD_KAFKA_RESP_ERR_NO_ERROR) ops[k]->enqueued = false;
    }
}

std::size_t producer_impl::hand_over_run(send_op* const* ops, std::size_t n) {
    std::array<rd_kafka_resp_err_t, max_run> errs;
    produce_run(ops, n, errs.data());
    for (std::size_t k = 0; k < n; ++k) {
        const rd_kafka_resp_err_t err = errs[k];
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ops[k]->accepted(false);
            continue;
        }
        // librdkafka refuses every later record of the call too: they wait in order.
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && options_.when_queue_full == full_queue::wait) return k;
        fail(ops[k], enqueue_error(err));
    }
    return n;
}

bool producer_impl::send_gate_open(const transaction_state* tx) const noexcept {
    if (!transactional_) return true;
    // A transactional producer sends only inside its open transaction (librdkafka would
    // refuse the record with a bare "erroneous state").
    if (!transaction_open_.load(std::memory_order_acquire)) return false;
    return !tx || tx->state.load(std::memory_order_acquire) == transaction_state::status::open;
}

void producer_impl::start_send(send_op* op, const transaction_state* tx) {
    if (state_.load(std::memory_order_acquire) != lifecycle::open) {
        fail(op, errc::client_closed);
        return;
    }
    if (fatal_.load(std::memory_order_acquire)) {
        fail(op, fatal_op_code());
        return;
    }
    if (!send_gate_open(tx)) {
        fail(op, errc::not_in_transaction);
        return;
    }
    // Behind records already waiting for room, to keep their order.
    if (has_waiting_.load(std::memory_order_acquire)) {
        std::lock_guard lock(waiting_mutex_);
        if (waiting_head_) {
            op->status.store(send_op::state::waiting_for_room, std::memory_order_relaxed);
            push_waiting(op);
            return;
        }
    }
    const rd_kafka_resp_err_t err = produce(op);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        op->accepted(false);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && options_.when_queue_full == full_queue::wait) {
        std::lock_guard lock(waiting_mutex_);
        auto expected = send_op::state::in_flight;
        if (!op->status.compare_exchange_strong(expected, send_op::state::waiting_for_room)) {
            op->release(); // cancelled meanwhile; its handler has been completed
            return;
        }
        const bool first = waiting_head_ == nullptr;
        push_waiting(op);
        // Delivery reports that freed room before we queued would not retry us: retry once.
        if (first) bridge_->post(&retry_waiting_on, shared_from_this());
        return;
    }
    fail(op, enqueue_error(err));
}

void producer_impl::start_batch(batch_base* batch, const transaction_state* tx) {
    // One count for this loop, so a batch whose records all complete before the loop
    // ends is not completed (and freed) under it.
    batch->remaining.store(batch->count + 1, std::memory_order_relaxed);
    // Queues elements [from, count) and the run's refused tail for room, in order.
    const auto wait_for_room = [&](std::size_t from, send_op* const* refused, std::size_t refused_count) {
        std::lock_guard lock(waiting_mutex_);
        const bool first = waiting_head_ == nullptr;
        for (std::size_t k = 0; k < refused_count; ++k) {
            refused[k]->status.store(send_op::state::waiting_for_room, std::memory_order_relaxed);
            push_waiting(refused[k]);
        }
        for (std::size_t k = from; k < batch->count; ++k) {
            batch->elements[k].status.store(send_op::state::waiting_for_room, std::memory_order_relaxed);
            push_waiting(&batch->elements[k]);
        }
        // Delivery reports that freed room before we queued would not retry us: retry once.
        if (first && waiting_head_)
            bridge_->post(&retry_waiting_on, shared_from_this());
    };
    std::size_t i = 0;
    while (i < batch->count) {
        const bool sendable = state_.load(std::memory_order_acquire) == lifecycle::open &&
                              !fatal_.load(std::memory_order_acquire) && send_gate_open(tx);
        // Once records wait for room, the rest of the batch queues behind them, in
        // order, under one lock (retry_waiting() enqueues them as room frees up).
        if (sendable && has_waiting_.load(std::memory_order_acquire) &&
            options_.when_queue_full == full_queue::wait) {
            wait_for_room(i, nullptr, 0);
            break;
        }
        send_op* first = &batch->elements[i];
        if (!sendable || !batchable(first)) {
            start_send(first, tx);
            ++i;
            continue;
        }
        // A run of records for one topic goes to librdkafka in one call.
        std::array<send_op*, max_run> run;
        std::size_t n = 0;
        while (i + n < batch->count && n < max_run && same_run(first, &batch->elements[i + n])) {
            run[n] = &batch->elements[i + n];
            ++n;
        }
        const std::size_t handed = hand_over_run(run.data(), n);
        i += n;
        if (handed < n) {
            wait_for_room(i, run.data() + handed, n - handed);
            break;
        }
    }
    batch->release_one(false, true);
}

void producer_impl::cancel_batch(batch_base* batch) {
    // Records still waiting for room are never sent: unlink them.
    send_op* unlinked = nullptr;
    {
        std::lock_guard lock(waiting_mutex_);
        send_op** link = &waiting_head_;
        send_op* prev = nullptr;
        while (send_op* op = *link) {
            if (op->group == batch) {
                *link = op->next;
                op->next = unlinked;
                unlinked = op;
                op->status.store(send_op::state::abandoned);
            } else {
                prev = op;
                link = &op->next;
            }
        }
        waiting_tail_ = prev;
        if (!waiting_head_) has_waiting_.store(false, std::memory_order_release);
    }
    // Their reports say so, then the await ends; the rest report into nothing.
    for (send_op* op = unlinked; op; op = op->next) {
        auto* e = static_cast<batch_element*>(op);
        batch->reports[e->index] = delivery_report{boost::asio::error::operation_aborted, describe(op)};
        batch->failed.fetch_add(1, std::memory_order_relaxed);
    }
    batch->complete_early();
    while (send_op* op = unlinked) {
        unlinked = op->next;
        op->release();
    }
}

void producer_impl::push_waiting(send_op* op) {
    op->next = nullptr;
    if (waiting_tail_)
        waiting_tail_->next = op;
    else
        waiting_head_ = op;
    waiting_tail_ = op;
    has_waiting_.store(true, std::memory_order_release);
}

void producer_impl::fail(send_op* op, error_code ec) {
    const record_metadata md = describe(op);
    auto expected = send_op::state::in_flight;
    if (op->status.compare_exchange_strong(expected, send_op::state::abandoned))
        op->complete(ec, md, false); // never inline: we may be inside the initiating call
    else
        op->release();
}

void producer_impl::retry_waiting_on(void* self) { static_cast<producer_impl*>(self)->retry_waiting(); }

void producer_impl::retry_waiting() {
    std::lock_guard lock(waiting_mutex_);
    while (send_op* op = waiting_head_) {
        if (state_.load(std::memory_order_acquire) != lifecycle::open) return;
        // The head of the list: a run for one call to librdkafka, or one record on its own.
        std::array<send_op*, max_run> run;
        std::array<rd_kafka_resp_err_t, max_run> errs;
        std::size_t n = 0;
        const bool as_run = batchable(op);
        if (as_run)
            for (send_op* o = op; o && n < max_run && same_run(op, o); o = o->next) run[n++] = o;
        else
            run[n++] = op;
        // Relaxed, as every status change under waiting_mutex_: the mutex orders it for
        // cancel(), and librdkafka's queues order it before the record's delivery report.
        for (std::size_t k = 0; k < n; ++k) run[k]->status.store(send_op::state::in_flight, std::memory_order_relaxed);
        if (as_run)
            produce_run(run.data(), n, errs.data());
        else
            errs[0] = produce(op);
        for (std::size_t k = 0; k < n; ++k) {
            const rd_kafka_resp_err_t err = errs[k];
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && options_.when_queue_full == full_queue::wait) {
                for (std::size_t j = k; j < n; ++j)
                    run[j]->status.store(send_op::state::waiting_for_room, std::memory_order_relaxed);
                return;
            }
            waiting_head_ = run[k]->next;
            if (!waiting_head_) {
                waiting_tail_ = nullptr;
                has_waiting_.store(false, std::memory_order_release);
            }
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                run[k]->status.store(send_op::state::abandoned);
                run[k]->complete(enqueue_error(err), describe(run[k]), false);
            } else {
                run[k]->accepted(false);
            }
        }
    }
}

void producer_impl::abort_waiting(error_code ec) {
    send_op* list;
    {
        std::lock_guard lock(waiting_mutex_);
        list = std::exchange(waiting_head_, nullptr);
        waiting_tail_ = nullptr;
        has_waiting_.store(false, std::memory_order_release);
    }
    while (send_op* op = list) {
        list = op->next;
        op->status.store(send_op::state::abandoned);
        op->complete(ec, describe(op), false);
    }
}

void producer_impl::cancel(send_op* op) {
    std::unique_lock lock(waiting_mutex_);
    if (op->status.load() == send_op::state::waiting_for_room) {
        // Never handed to librdkafka: unlink it, and it is as if it was never sent.
        send_op** link = &waiting_head_;
        send_op* prev = nullptr;
        while (*link && *link != op) {
            prev = *link;
            link = &(*link)->next;
        }
        if (!*link) return;
        *link = op->next;
        if (waiting_tail_ == op) waiting_tail_ = prev;
        if (!waiting_head_) has_waiting_.store(false, std::memory_order_release);
        op->status.store(send_op::state::abandoned);
        lock.unlock();
        op->complete(boost::asio::error::operation_aborted, describe(op), false);
        return;
    }
    lock.unlock();
    if (!op->cancellable_in_flight) return;
    // Accepted by librdkafka: end the wait now; the memory waits for the delivery report.
    auto expected = send_op::state::in_flight;
    if (op->status.compare_exchange_strong(expected, send_op::state::abandoned))
        op->complete_early(boost::asio::error::operation_aborted, describe(op));
}

// ---- events ------------------------------------------------------------------------

void producer_impl::on_event(rd_kafka_event_t* event) {
    if (context_gone_.load(std::memory_order_relaxed)) {
        // The execution context is shutting down: complete nothing, release the memory.
        if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_DR)
            while (const rd_kafka_message_t* m = rd_kafka_event_message_next(event))
                if (auto* op = static_cast<send_op*>(m->_private)) op->release();
        return;
    }
    switch (rd_kafka_event_type(event)) {
    case RD_KAFKA_EVENT_DR: complete_deliveries(event); break;
    case RD_KAFKA_EVENT_LOG: on_log(event); break;
    case RD_KAFKA_EVENT_ERROR: on_error(event); break;
    case RD_KAFKA_EVENT_STATS: on_stats(event); break;
    default: break;
    }
}

void producer_impl::finish_delivery(send_op* op, error_code ec, const record_metadata& md) {
    auto expected = send_op::state::in_flight;
    if (op->status.compare_exchange_strong(expected, send_op::state::abandoned))
        op->complete(ec, md, true);
    else
        op->release(); // its handler was completed by cancellation
}

// A delivery event's reports are taken out before the event is destroyed, and records
// waiting for room are handed to librdkafka before the handlers run: librdkafka frees the
// delivered records' room only when their event is destroyed, and a full local queue
// (the steady state of a fast sender) would otherwise stay full while they complete.
std::size_t producer_impl::take(rd_kafka_queue_t* queue, std::size_t) {
    event_ptr event(rd_kafka_queue_poll(queue, 0));
    if (!event) return 0;
    if (rd_kafka_event_type(event.get()) != RD_KAFKA_EVENT_DR || context_gone_.load(std::memory_order_relaxed) ||
        !has_waiting_.load(std::memory_order_acquire)) {
        on_event(event.get()); // nothing waits for room: one pass (collecting first costs)
        return 1;
    }
    try {
        collected_.reserve(static_cast<std::size_t>(rd_kafka_event_message_count(event.get())));
    } catch (const std::bad_alloc&) {
        on_event(event.get()); // no room to collect them: one pass, the event alive
        return 1;
    }
    collect_deliveries(event.get()); // cannot throw now
    event.reset();
    // The collected reports are completed even if the refill fails (a post out of memory).
    std::exception_ptr refill_failure;
    try {
        if (has_waiting_.load(std::memory_order_acquire)) retry_waiting();
    } catch (...) {
        refill_failure = std::current_exception();
    }
    complete_collected();
    if (refill_failure) std::rethrow_exception(refill_failure);
    return 1;
}

producer_impl::record_report producer_impl::read_report(const rd_kafka_message_t* m) {
    record_report r{static_cast<send_op*>(m->_private), {}, {}};
    if (!r.op) return r;
    r.md.topic = static_cast<const topic_entry*>(rd_kafka_topic_opaque(m->rkt))->name;
    r.md.partition = m->partition;
    // librdkafka says "no offset" as -1001 (failures, implicit acks) or -1 (acks=0).
    r.md.offset = m->offset >= 0 ? m->offset : -1;
    rd_kafka_timestamp_type_t tstype;
    const std::int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    r.md.timestamp = kcoro::timestamp(std::chrono::milliseconds(ts < 0 ? 0 : ts));
    r.md.timestamp_type = tstype == RD_KAFKA_TIMESTAMP_CREATE_TIME       ? timestamp_type::create_time
                          : tstype == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? timestamp_type::log_append_time
                                                                         : timestamp_type::not_available;
    // After a fatal error every failure (purged, or failed by librdkafka) is that error.
    // Records purged because the brokers refused the client report why (on_refused).
    const int refused = refused_.load(std::memory_order_relaxed);
    r.ec = !m->err ? error_code{}
           : m->err == RD_KAFKA_RESP_ERR__FATAL || fatal_.load(std::memory_order_relaxed)
               ? fatal_op_code()
           : m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE && refused != 0 &&
                   state_.load(std::memory_order_relaxed) == lifecycle::open
               ? make_error_code_from_kafka(refused)
               : make_error_code_from_kafka(m->err);
    if (!m->err && refused != 0) refused_.store(0, std::memory_order_relaxed); // a broker accepts us again
    return r;
}

// A handler that throws must not strand the rest of the reports: its exception is kept
// (the first one) and the next report completed.
void producer_impl::complete_report(const record_report& r, std::exception_ptr& first_exception) noexcept {
    try {
        finish_delivery(r.op, r.ec, r.md);
    } catch (...) {
        if (!first_exception) first_exception = std::current_exception();
    }
}

// Completes each record as its report is read: one pass, with the event still alive.
void producer_impl::complete_deliveries(rd_kafka_event_t* event) {
    // The first handler exception propagates once all have completed (out of
    // io_context::run, as Asio does).
    std::exception_ptr first_exception;
    while (const rd_kafka_message_t* m = rd_kafka_event_message_next(event)) {
        if (const record_report r = read_report(m); r.op) complete_report(r, first_exception);
    }
    if (first_exception) std::rethrow_exception(first_exception);
}

// Into collected_, reserved for the event's reports by the caller.
void producer_impl::collect_deliveries(rd_kafka_event_t* event) {
    collected_.clear();
    while (const rd_kafka_message_t* m = rd_kafka_event_message_next(event))
        if (record_report r = read_report(m); r.op) collected_.push_back(r);
}

void producer_impl::complete_collected() {
    // As complete_deliveries(). Taken out of the member first: should a handler ever lead
    // to another drain, that one fills a vector of its own.
    std::vector<record_report> reports = std::exchange(collected_, {});
    std::exception_ptr first_exception;
    for (const record_report& r : reports) complete_report(r, first_exception);
    reports.clear();
    if (collected_.capacity() < reports.capacity()) collected_ = std::move(reports); // kept: no allocation next time
    if (first_exception) std::rethrow_exception(first_exception);
}

void producer_impl::after_drain() {
    if (context_gone_.load(std::memory_order_relaxed)) return;
    if (has_waiting_.load(std::memory_order_acquire)) retry_waiting();
}

void producer_impl::on_log(rd_kafka_event_t* event) { report_log(event, options_.on_log, debug_, "producer"); }

void producer_impl::on_stats(rd_kafka_event_t* event) {
    if (!options_.on_statistics) return;
    if (const char* json = rd_kafka_event_stats(event)) options_.on_statistics(json);
}

void producer_impl::on_error(rd_kafka_event_t* event) {
    const bool fatal = rd_kafka_event_error_is_fatal(event) != 0;
    error_code code = make_error_code_from_kafka(rd_kafka_event_error(event));
    std::string reason = rd_kafka_event_error_string(event) ? rd_kafka_event_error_string(event) : "";
    if (fatal) {
        // The event says only "fatal": the underlying error comes from rd_kafka_fatal_error().
        std::array<char, 512> buf{};
        const rd_kafka_resp_err_t underlying = rd_kafka_fatal_error(rk_.get(), buf.data(), buf.size());
        {
            std::lock_guard lock(fatal_mutex_);
            if (underlying != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fatal_code_ = make_error_code_from_kafka(underlying);
                fatal_reason_ = buf.data();
            } else {
                fatal_code_ = code;
                fatal_reason_ = reason;
            }
            code = fatal_code_;
            reason = fatal_reason_;
        }
        fatal_.store(true, std::memory_order_release);
        on_fatal();
    } else if (is_refusal(code)) {
        on_refused(code, reason);
    }
    report_error(client_error{code, reason, fatal}, options_.on_error, "producer");
}

void producer_impl::on_fatal() {
    // Nothing more can be delivered: fail what waits for room, and purge what librdkafka
    // holds, whose reports then complete with errc::fatal (errc::fenced for a fenced producer).
    abort_waiting(fatal_op_code());
    std::lock_guard lock(client_mutex_);
    if (rk_) rd_kafka_purge(rk_.get(), purge_all | RD_KAFKA_PURGE_F_NON_BLOCKING);
}

void producer_impl::on_refused(error_code code, const std::string& reason) {
    // librdkafka 2.0 treats a failed authentication or TLS handshake as transient: it
    // reconnects for ever and queued records time out (message.timeout.ms, 5 min by
    // default) as "timed out". Wrong credentials or an untrusted certificate rarely fix
    // themselves, so the records waiting fail now, with the reason: everything queued in
    // the client (records already sent to a broker complete as usual). The client goes on
    // reconnecting: later sends succeed once the brokers accept it, and fail the same way
    // at the next refusal (librdkafka reports one per reconnection attempt) otherwise.
    // Untested case: a refusal after records of a partition were already acknowledged
    // (credentials revoked mid-stream). With idempotence the purge may then leave a
    // sequence gap that librdkafka reports at reconnection as a fatal error (errc::fatal,
    // still never silent); the tests cover refusals of a client's first connection.
    if (state_.load(std::memory_order_acquire) != lifecycle::open) return;
    {
        std::lock_guard lock(fatal_mutex_);
        refused_reason_ = reason;
    }
    refused_.store(code.value(), std::memory_order_relaxed);
    abort_waiting(code);
    std::lock_guard lock(client_mutex_);
    if (rk_) rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_NON_BLOCKING);
}

std::string producer_impl::refusal_reason(error_code ec) const {
    if (ec.category() != category() || ec.value() != refused_.load(std::memory_order_relaxed)) return {};
    std::lock_guard lock(fatal_mutex_);
    return refused_reason_;
}

error_code producer_impl::fatal_code() const {
    if (!fatal_.load(std::memory_order_acquire)) return {};
    std::lock_guard lock(fatal_mutex_);
    return fatal_code_;
}

error_code producer_impl::fatal_op_code() const {
    error_code underlying;
    if (fatal_.load(std::memory_order_acquire)) {
        std::lock_guard lock(fatal_mutex_);
        underlying = fatal_code_;
    } else {
        // librdkafka may report a record failed by a fatal error before its error event
        // reached the executor: ask it directly.
        std::lock_guard lock(client_mutex_);
        std::array<char, 8> unused{};
        if (rk_) underlying = make_error_code_from_kafka(rd_kafka_fatal_error(rk_.get(), unused.data(), unused.size()));
    }
    switch (underlying.value()) {
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
        return errc::fenced;
    default:
        return errc::fatal;
    }
}

error_code producer_impl::enqueue_error(rd_kafka_resp_err_t err) const {
    return err == RD_KAFKA_RESP_ERR__FATAL ? fatal_op_code() : make_error_code_from_kafka(err);
}

std::string producer_impl::fatal_reason() const {
    if (!fatal_.load(std::memory_order_acquire)) return {};
    std::lock_guard lock(fatal_mutex_);
    return fatal_reason_;
}

// ---- flush and close ---------------------------------------------------------------

void producer_impl::complete_with(any_completion_handler<void(error_code)> handler, error_code ec) {
    // After the context shut down the handler is destroyed uninvoked, as Asio does.
    if (context_gone_.load()) return;
    // post() hands the handler on to its own associated executor.
    boost::asio::post(executor_, boost::asio::append(std::move(handler), ec));
}

void producer_impl::post_to_strand(any_completion_handler<void()> f) {
    if (!context_gone_.load()) boost::asio::post(bridge_->strand(), std::move(f));
}

bool producer_impl::flush_until(clock::time_point deadline, bool is_close, const cancellable_wait* wait) {
    constexpr auto slice = std::chrono::milliseconds(100);
    for (;;) {
        if (wait && wait->cancelled()) return false; // nobody waits any more: free the worker
        // A close supersedes a flush that is still running.
        if (!is_close && state_.load(std::memory_order_acquire) != lifecycle::open) return false;
        if (context_gone_.load()) return false;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        const int wait_ms = static_cast<int>(std::clamp(left, std::chrono::milliseconds(0), slice).count());
        // In event mode rd_kafka_flush only waits (the executor drains the reports),
        // and it makes the broker threads send lingering batches at once.
        const bool empty = rd_kafka_flush(rk_.get(), wait_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
        const bool waiting = has_waiting_.load(std::memory_order_acquire);
        if (empty && !waiting) return true;
        if (left.count() <= 0) return false;
        if (empty) std::this_thread::sleep_for(std::chrono::milliseconds(1)); // waiting list being retried
    }
}

void producer_impl::flush(std::chrono::milliseconds timeout, any_completion_handler<void(error_code)> handler) {
    if (state_.load(std::memory_order_acquire) != lifecycle::open) {
        complete_with(std::move(handler), errc::client_closed);
        return;
    }
    const auto deadline = timeout == producer::no_timeout ? clock::time_point::max() : clock::now() + timeout;
    auto [wrapped, wait] = cancellable_wait::wrap(std::move(handler), executor_);
    worker_.run([self = worker_hold(shared_from_this(), executor_), deadline, h = std::move(wrapped),
                 wait = std::move(wait)]() mutable {
        const bool done = self->flush_until(deadline, false, wait.get());
        error_code ec;
        if (!done)
            ec = self->state_.load() != lifecycle::open ? error_code(boost::asio::error::operation_aborted)
                                                        : error_code(errc::timed_out);
        self->complete_with(std::move(h), ec);
    });
}

void producer_impl::close(std::chrono::milliseconds timeout, any_completion_handler<void(error_code)> handler) {
    {
        std::lock_guard lock(close_mutex_);
        if (state_.load() == lifecycle::closed) {
            complete_with(std::move(handler), {});
            return;
        }
        // Cancelling a close ends its wait only: the close goes on, within its deadline.
        close_handlers_.push_back(cancellable_wait::wrap(std::move(handler), executor_).first);
        if (state_.exchange(lifecycle::closing) == lifecycle::closing) return; // already under way
    }
    const auto deadline = timeout == producer::no_timeout ? clock::time_point::max() : clock::now() + timeout;
    worker_.run([self = worker_hold(shared_from_this(), executor_), deadline] {
        // An open transaction is aborted, not left for the broker to time out.
        if (self->transactional_) self->abort_open_transaction_for_close(deadline);
        bool clean = self->flush_until(deadline, true);
        if (!clean) {
            // Out of time: abort what is left. Purged records get delivery reports with
            // _PURGE_QUEUE / _PURGE_INFLIGHT, which the executor completes as usual.
            self->post_to_strand([self = self.shared()] { self->abort_waiting(); });
            rd_kafka_purge(self->rk_.get(), purge_all);
            // Purged reports come at once; the bound only guards against an executor
            // that stopped running.
            const auto purge_deadline = clock::now() + std::chrono::seconds(10);
            while (!self->context_gone_.load() && rd_kafka_flush(self->rk_.get(), 100) != RD_KAFKA_RESP_ERR_NO_ERROR &&
                   clock::now() < purge_deadline) {
            }
        }
        self->post_to_strand([self = self.shared(), clean] {
            self->abort_waiting();
            // Every remaining report completes its operation before the queue goes: the
            // bridge's stop() drains a single turn. A throwing handler must not stop
            // the close half-way; its exception is rethrown once the close is under way.
            std::exception_ptr thrown;
            while (event_ptr event{rd_kafka_queue_poll(self->queue_.get(), 0)}) {
                try {
                    self->on_event(event.get());
                } catch (...) {
                    if (!thrown) thrown = std::current_exception();
                }
            }
            self->bridge_->stop();
            self->worker_.run([self = worker_hold(self, self->executor_), clean] {
                {
                    std::lock_guard lock(self->client_mutex_);
                    self->last_topic_.store(nullptr);
                    self->topics_.clear();
                    self->queue_.reset();
                    self->rk_.reset(); // rd_kafka_destroy: may block briefly, so here
                }
                std::vector<any_completion_handler<void(error_code)>> handlers;
                {
                    std::lock_guard lock(self->close_mutex_);
                    self->state_.store(lifecycle::closed);
                    handlers.swap(self->close_handlers_);
                }
                for (auto& h : handlers)
                    self->complete_with(std::move(h), clean ? error_code{} : error_code(errc::timed_out));
            });
            if (thrown) std::rethrow_exception(thrown);
        });
    });
}

// ---- enqueue() and delivery -----------------------------------------------------------

// The state behind an enqueue() and its `delivery`. Two references keep it: the enqueue
// side (its handler, then the delivery handle it yields) and librdkafka (until the
// delivery report). Memory comes from the producer's pool; the owner reference keeps
// the pool alive for a delivery handle that outlives its producer.
//
// Boost 1.81's any_completion_handler::operator=(any_completion_handler&&) wraps the
// source in a new handler built from an lvalue of itself (endless recursion): handlers
// are only ever moved by construction or swap() here.
struct delivery_state final : send_op {
    explicit delivery_state(std::shared_ptr<producer_impl> o)
        : send_op(&do_complete, &do_release, &do_accepted), owner(std::move(o)) {
        cancellable_in_flight = false;
    }

    static delivery_state* create(const std::shared_ptr<producer_impl>& owner) {
        void* mem = owner->pool().allocate(sizeof(delivery_state));
        return ::new (mem) delivery_state(owner);
    }

    void destroy() {
        std::shared_ptr<producer_impl> o = std::move(owner);
        this->~delivery_state();
        o->pool().deallocate(this, sizeof(delivery_state));
    }

    struct cancel_enqueue {
        delivery_state* self;
        void operator()(boost::asio::cancellation_type_t) const { cancel_send(*self->owner, self); }
    };

    struct cancel_wait {
        delivery_state* self;
        void operator()(boost::asio::cancellation_type_t) const {
            any_completion_handler<void(error_code, record_metadata)> h;
            record_metadata md;
            {
                std::lock_guard lock(self->mutex);
                h.swap(self->waiter);
                md = self->md;
            }
            if (h) post_handler(self->owner->executor(), std::move(h), boost::asio::error::operation_aborted, md);
        }
    };

    template <class Handler, class... Args>
    static void post_handler(const boost::asio::any_io_executor& ex, Handler h, Args&&... args) {
        auto slot = boost::asio::get_associated_cancellation_slot(h);
        if (slot.is_connected()) slot.clear();
        boost::asio::post(ex, boost::asio::append(std::move(h), std::forward<Args>(args)...));
    }

    // Librdkafka accepted the record: the enqueue completes with the delivery handle.
    static void do_accepted(send_op* op, bool) {
        auto* self = static_cast<delivery_state*>(op);
        any_completion_handler<void(error_code, delivery)> h;
        {
            std::lock_guard lock(self->mutex);
            h.swap(self->on_enqueued);
        }
        post_handler(self->owner->executor(), std::move(h), error_code{}, delivery_access::make(self));
    }

    static void do_complete(send_op* op, error_code ec, const record_metadata& md, bool may_run_inline,
                            bool free_memory) {
        auto* self = static_cast<delivery_state*>(op);
        if (!free_memory) return; // cancellation never ends an accepted enqueue early
        if (!self->enqueued) {
            // Refused before acceptance: the enqueue fails, no delivery exists.
            any_completion_handler<void(error_code, delivery)> h = std::move(self->on_enqueued);
            const boost::asio::any_io_executor ex = self->owner->executor();
            self->destroy();
            post_handler(ex, std::move(h), ec, delivery{});
            (void)md;
            return;
        }
        any_completion_handler<void(error_code, record_metadata)> waiter;
        bool last;
        {
            std::lock_guard lock(self->mutex);
            self->done = true;
            self->ec = ec;
            self->md = md;
            waiter.swap(self->waiter);
            last = --self->refs == 0;
        }
        const boost::asio::any_io_executor ex = self->owner->executor();
        if (last) self->destroy();
        if (!waiter) return;
        auto slot = boost::asio::get_associated_cancellation_slot(waiter);
        if (slot.is_connected()) slot.clear();
        if (may_run_inline)
            boost::asio::dispatch(ex, boost::asio::append(std::move(waiter), ec, md));
        else
            boost::asio::post(ex, boost::asio::append(std::move(waiter), ec, md));
    }

    static void do_release(send_op* op) {
        auto* self = static_cast<delivery_state*>(op);
        if (!self->enqueued) {
            self->destroy();
            return;
        }
        self->drop();
    }

    void drop() {
        bool last;
        {
            std::lock_guard lock(mutex);
            waiter = nullptr; // no executor to complete on any more
            last = --refs == 0;
        }
        if (last) destroy();
    }

    std::shared_ptr<producer_impl> owner;
    std::mutex mutex;
    int refs = 2;
    bool done = false;
    error_code ec;
    record_metadata md;
    any_completion_handler<void(error_code, delivery)> on_enqueued;
    any_completion_handler<void(error_code, record_metadata)> waiter;
};

void start_enqueue_in(producer_impl& impl, const transaction_state* tx, const record* owned,
                      const record_view* view, any_completion_handler<void(error_code, delivery)> handler) {
    delivery_state* s = delivery_state::create(impl.shared_from_this());
    s->owned = owned;
    s->view = view;
    s->on_enqueued.swap(handler);
    auto slot = boost::asio::get_associated_cancellation_slot(s->on_enqueued);
    if (slot.is_connected()) slot.template emplace<delivery_state::cancel_enqueue>(delivery_state::cancel_enqueue{s});
    impl.start_send(s, tx);
}

void start_enqueue(producer_impl& impl, const record* owned, const record_view* view,
                   any_completion_handler<void(error_code, delivery)> handler) {
    start_enqueue_in(impl, nullptr, owned, view, std::move(handler));
}

void start_delivery_wait(delivery_state* s, any_completion_handler<void(error_code, record_metadata)> handler) {
    if (!s) {
        // No producer to complete on: the system executor hands it to the handler's own.
        boost::asio::post(boost::asio::system_executor(), boost::asio::append(std::move(handler), error_code(errc::invalid_argument),
                                                  record_metadata{}));
        return;
    }
    std::unique_lock lock(s->mutex);
    if (s->done) {
        const error_code ec = s->ec;
        const record_metadata md = s->md;
        lock.unlock();
        boost::asio::post(s->owner->executor(), boost::asio::append(std::move(handler), ec, md));
        return;
    }
    s->waiter.swap(handler);
    auto slot = boost::asio::get_associated_cancellation_slot(s->waiter);
    if (slot.is_connected()) slot.template emplace<delivery_state::cancel_wait>(delivery_state::cancel_wait{s});
}

void release_delivery(delivery_state* s) noexcept {
    any_completion_handler<void(error_code, record_metadata)> waiter;
    bool last;
    {
        std::lock_guard lock(s->mutex);
        waiter.swap(s->waiter);
        last = --s->refs == 0;
    }
    // A wait still pending on a dropped delivery ends now.
    if (waiter) {
        try {
            delivery_state::post_handler(s->owner->executor(), std::move(waiter), boost::asio::error::operation_aborted,
                                         record_metadata{});
        } catch (...) {
        }
    }
    if (last) s->destroy();
}

bool delivery_ready(const delivery_state* s) noexcept {
    std::lock_guard lock(const_cast<delivery_state*>(s)->mutex);
    return s->done;
}

// ---- the functions the header's templates call -------------------------------------

void* allocate_op(producer_impl& impl, std::size_t size) { return impl.pool().allocate(size); }
void deallocate_op(producer_impl& impl, void* p, std::size_t size) noexcept { impl.pool().deallocate(p, size); }
const boost::asio::any_io_executor& io_executor(const producer_impl& impl) noexcept { return impl.executor(); }
void cancel_send(producer_impl& impl, send_op* op) { impl.cancel(op); }
void start_send(producer_impl& impl, send_op* op) { impl.start_send(op); }
void start_batch(producer_impl& impl, batch_base* batch) { impl.start_batch(batch); }
void cancel_batch(producer_impl& impl, batch_base* batch) { impl.cancel_batch(batch); }

std::string describe_failure(const producer_impl& impl, error_code ec, std::string context) {
    if (ec != errc::fatal && ec != errc::fenced) {
        // An authentication or TLS refusal: librdkafka's text says which broker and why.
        const std::string reason = impl.refusal_reason(ec);
        return reason.empty() ? context : fmt::format("{} ({})", context, reason);
    }
    const std::string reason = impl.fatal_reason();
    if (reason.empty()) return context;
    return fmt::format("{} (fatal: {}: {})", context, impl.fatal_code().message(), reason);
}

void start_flush(const std::shared_ptr<producer_impl>& impl, std::chrono::milliseconds timeout,
                 any_completion_handler<void(error_code)> handler) {
    impl->flush(timeout, std::move(handler));
}

void start_close(const std::shared_ptr<producer_impl>& impl, std::chrono::milliseconds timeout,
                 any_completion_handler<void(error_code)> handler) {
    impl->close(timeout, std::move(handler));
}

void abandon(std::shared_ptr<producer_impl> impl) noexcept {
    try {
        impl->close(std::chrono::milliseconds(0), any_completion_handler<void(error_code)>([](error_code) {}));
    } catch (...) {
        // Out of memory while closing: the impl's destructor still releases librdkafka.
    }
}

std::string describe_send_failure(const record_metadata& md, std::string_view topic) {
    // Any partition but "unassigned" (-1), including a negative one the caller gave.
    if (md.partition != -1) return fmt::format("send to topic '{}' partition {}", topic, md.partition);
    return fmt::format("send to topic '{}'", topic);
}

void throw_error(error_code ec, const std::string& context) { throw error(ec, context); }

std::exception_ptr make_send_failure(const producer_impl* producer, error_code ec, const record_metadata& md,
                                     std::string_view topic) noexcept {
    try {
        std::string context = describe_send_failure(md, topic.empty() ? md.topic : topic);
        if (producer) context = describe_failure(*producer, ec, std::move(context));
        return std::make_exception_ptr(error(ec, context));
    } catch (...) {
        return std::current_exception();
    }
}

} // namespace kcoro::detail

namespace kcoro {

std::string_view to_string(partitioner p) noexcept {
    switch (p) {
    case partitioner::consistent_random: return "consistent_random";
    case partitioner::consistent: return "consistent";
    case partitioner::random: return "random";
    case partitioner::murmur2: return "murmur2";
    case partitioner::murmur2_random: return "murmur2_random";
    case partitioner::fnv1a: return "fnv1a";
    case partitioner::fnv1a_random: return "fnv1a_random";
    }
    return "consistent_random";
}

producer::producer(executor_type executor, const config& properties, producer_options options)
    : impl_(std::make_shared<detail::producer_impl>(std::move(executor), properties, std::move(options))) {
    impl_->start();
}

producer& producer::operator=(producer&& other) noexcept {
    if (this != &other) {
        if (impl_) detail::abandon(std::move(impl_));
        impl_ = std::move(other.impl_);
    }
    return *this;
}

producer::~producer() {
    if (impl_) detail::abandon(std::move(impl_));
}

producer::executor_type producer::get_executor() const noexcept { return impl_->executor(); }

std::size_t producer::in_flight() const noexcept { return impl_->in_flight(); }

error_code producer::fatal_error() const { return impl_->fatal_code(); }

std::string producer::fatal_reason() const { return impl_->fatal_reason(); }

void producer::check_batch_size(std::size_t records, std::size_t reports) {
    if (records != reports)
        throw error(errc::invalid_argument,
                    fmt::format("send_batch: {} records but {} reports (one report per record)", records, reports));
}

} // namespace kcoro
