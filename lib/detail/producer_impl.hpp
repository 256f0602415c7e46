// kcoro internals: the producer's core, shared by lib/producer.cpp and lib/transaction.cpp.
#pragma once

#include <kcoro/group_metadata.hpp>
#include <kcoro/producer.hpp>
#include <kcoro/transaction.hpp>
#include <kcoro/topic_partition.hpp>

#include "cancellable.hpp"
#include "client_registry.hpp"
#include "event_bridge.hpp"
#include "op_pool.hpp"
#include "rdkafka_ptr.hpp"
#include "worker_thread.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kcoro::detail {

class producer_impl;

/// One transaction, shared by its `kcoro::transaction` handle and the producer's jobs.
struct transaction_state {
    enum class status : std::uint8_t {
        open,      ///< begun; sends and offsets join it
        ending,    ///< a commit or abort is under way
        committed, ///< committed: its records and offsets count
        aborted    ///< aborted (by abort(), an error, or being dropped open): nothing of it counts
    };

    explicit transaction_state(std::shared_ptr<producer_impl> p) : producer(std::move(p)) {}

    std::shared_ptr<producer_impl> producer;
    std::atomic<status> state{status::open};
};

class producer_impl final : public event_sink,
                            public registered_client,
                            public std::enable_shared_from_this<producer_impl> {
public:
    producer_impl(boost::asio::any_io_executor executor, const config& properties, producer_options options);
    ~producer_impl();

    void start() {
        boost::asio::use_service<client_registry>(boost::asio::query(executor_, boost::asio::execution::context))
            .add(weak_from_this());
        bridge_->start(shared_from_this(), this);
    }

    const boost::asio::any_io_executor& executor() const noexcept { return executor_; }
    op_pool& pool() noexcept { return pool_; }

    /// `tx`: the transaction the send was made through (nullptr: through the producer).
    void start_send(send_op* op, const transaction_state* tx = nullptr);
    void start_batch(batch_base* batch, const transaction_state* tx = nullptr);
    /// Completes a send that was refused before librdkafka saw it.
    void fail(send_op* op, error_code ec);
    void cancel_batch(batch_base* batch);
    void cancel(send_op* op);
    error_code fatal_code() const;
    std::string fatal_reason() const;
    /// librdkafka's text for the last authentication or TLS refusal, when `ec` is its code.
    std::string refusal_reason(error_code ec) const;
    /// What operations fail with once the producer hit a fatal error: errc::fenced when a
    /// newer producer with the same transactional.id took over, else errc::fatal.
    error_code fatal_op_code() const;
    /// What a send librdkafka refused to enqueue fails with.
    error_code enqueue_error(rd_kafka_resp_err_t err) const;
    bool context_gone() const noexcept { return context_gone_.load(); }
    void complete_with(boost::asio::any_completion_handler<void(error_code)> handler, error_code ec);

    // ---- transactions (lib/transaction.cpp) ----------------------------------------------
    using begin_handler = boost::asio::any_completion_handler<void(error_code, kcoro::transaction)>;
    bool transactional() const noexcept { return transactional_; }
    void init_transactions(boost::asio::any_completion_handler<void(error_code)> handler);
    void begin_transaction(begin_handler handler);
    void send_offsets(const std::shared_ptr<transaction_state>& tx, std::vector<partition_offset> offsets,
                      group_metadata group, boost::asio::any_completion_handler<void(error_code)> handler);
    void commit_transaction(const std::shared_ptr<transaction_state>& tx,
                            boost::asio::any_completion_handler<void(error_code)> handler);
    void abort_transaction(const std::shared_ptr<transaction_state>& tx,
                           boost::asio::any_completion_handler<void(error_code)> handler);
    void set_transaction_failure(std::string text);
    /// What the last failed transactional step was about (for exceptions' messages).
    std::string transaction_failure(error_code ec, std::string_view step) const;
    void flush(std::chrono::milliseconds timeout, boost::asio::any_completion_handler<void(error_code)> handler);
    void close(std::chrono::milliseconds timeout, boost::asio::any_completion_handler<void(error_code)> handler);
    std::size_t in_flight() const noexcept {
        std::lock_guard lock(client_mutex_);
        return rk_ ? static_cast<std::size_t>(rd_kafka_outq_len(rk_.get())) : 0;
    }

    // event_sink
    void on_event(rd_kafka_event_t* event) override;
    std::size_t take(rd_kafka_queue_t* queue, std::size_t budget) override;
    void after_drain() override;

    // registered_client
    void on_context_shutdown() noexcept override {
        context_gone_.store(true);
        worker_.stop();
        // No handler runs any more, so the bridge may be stopped from here. Its reference
        // to this client would otherwise keep it alive for ever (a leak): stopping drops
        // it, and what is left is released, not completed (see on_event).
        if (bridge_ && bridge_->running()) bridge_->stop();
    }

private:
    enum class lifecycle : std::uint8_t { open, closing, closed };

    struct topic_entry {
        std::string_view name; // interned
        topic_ptr handle;
        const custom_partitioner* partition_with = nullptr;
    };

    static std::int32_t call_partitioner(const rd_kafka_topic_t* rkt, const void* key, size_t keylen,
                                         std::int32_t partition_count, void* topic_opaque, void* msg_opaque) noexcept;

    rd_kafka_resp_err_t produce(send_op* op);
    /// The most records handed to librdkafka in one call.
    static constexpr std::size_t max_run = 64;
    /// Hands ops[0, n) (one topic, one copy mode, no partition, headers or timestamp) to librdkafka in
    /// one call; errs[k] receives each one's result (a full queue refuses the rest of the call).
    void produce_run(send_op* const* ops, std::size_t n, rd_kafka_resp_err_t* errs);
    /// produce_run(), then completes what librdkafka refused for good. Returns how many were
    /// handed over: in wait mode the rest met a full queue, for the caller to queue in order.
    std::size_t hand_over_run(send_op* const* ops, std::size_t n);
    topic_entry* topic_for(std::string_view name);
    topic_entry* create_topic_entry(std::string_view name); // under topics_mutex_
    void finish_delivery(send_op* op, error_code ec, const record_metadata& md);
    struct record_report {
        send_op* op; // null: a record not sent by kcoro
        error_code ec;
        record_metadata md;
    };
    record_report read_report(const rd_kafka_message_t* m);
    void complete_report(const record_report& r, std::exception_ptr& first_exception) noexcept;
    void complete_deliveries(rd_kafka_event_t* event);
    void collect_deliveries(rd_kafka_event_t* event);
    void complete_collected();
    // On the strand. Kept between events, so it grows to the largest delivery event (up to
    // batch.num.messages reports) once.
    std::vector<record_report> collected_;
    void retry_waiting();
    static void retry_waiting_on(void* self); // for event_bridge::post
    void abort_waiting(error_code ec = boost::asio::error::operation_aborted);
    void on_fatal();
    void on_refused(error_code code, const std::string& reason);
    void push_waiting(send_op* op);
    bool flush_until(std::chrono::steady_clock::time_point deadline, bool is_close,
                     const cancellable_wait* wait = nullptr);
    void on_log(rd_kafka_event_t* event);
    void on_error(rd_kafka_event_t* event);
    void on_stats(rd_kafka_event_t* event);
    record_metadata describe(const send_op* op) const;
    void post_to_strand(boost::asio::any_completion_handler<void()> f);

    boost::asio::any_io_executor executor_;
    producer_options options_;
    bool debug_ = false; // the `debug` property is set: log lines are printed without on_log
    op_pool pool_;
    // Declared before the bridge: the bridge detaches from the queue when destroyed.
    kafka_ptr rk_;
    queue_ptr queue_;
    mutable std::mutex client_mutex_; // guards rk_ against release at close
    std::mutex topics_mutex_;
    std::unordered_map<std::string_view, std::unique_ptr<topic_entry>> topics_;
    std::atomic<topic_entry*> last_topic_{nullptr};
    std::optional<event_bridge> bridge_;
    worker_thread worker_;

    std::mutex waiting_mutex_;
    send_op* waiting_head_ = nullptr;
    send_op* waiting_tail_ = nullptr;
    std::atomic<bool> has_waiting_{false};

    std::atomic<lifecycle> state_{lifecycle::open};
    std::atomic<bool> fatal_{false};
    mutable std::mutex fatal_mutex_;
    error_code fatal_code_;
    std::string fatal_reason_;
    // The last authentication or TLS failure (0: none since the last delivery): records it
    // purged report it instead of "purged" (see on_refused).
    std::atomic<int> refused_{0};
    std::string refused_reason_; // under fatal_mutex_
    // Set when the execution context shuts down: background work then completes nothing.
    std::atomic<bool> context_gone_{false};
    std::mutex close_mutex_;
    std::vector<boost::asio::any_completion_handler<void(error_code)>> close_handlers_;

    // ---- transactions: the steps run on worker_, one after another ----
    enum class txn_phase : std::uint8_t {
        uninitialised, ///< init_transactions() not done yet
        ready,         ///< no transaction open
        open,          ///< txn_current_ is open (or ending)
        must_abort     ///< librdkafka holds a failed transaction whose abort did not complete
    };
    bool send_gate_open(const transaction_state* tx) const noexcept;
    error_code prepare_transactions(std::chrono::steady_clock::time_point deadline); // worker
    error_code abort_now(std::chrono::steady_clock::time_point deadline);            // worker
    error_code step_failed(const rd_kafka_error_t* e, std::string_view step);        // worker
    void finish_transaction(transaction_state& tx, transaction_state::status outcome, txn_phase next);
    void abort_open_transaction_for_close(std::chrono::steady_clock::time_point deadline); // worker
    void note_fatal(const rd_kafka_error_t* e);

    bool transactional_ = false;
    std::string transactional_id_;
    std::chrono::milliseconds transaction_timeout_{60'000};
    // Open from a successful begin until commit or abort starts: sends pass only then.
    std::atomic<bool> transaction_open_{false};
    mutable std::mutex txn_mutex_;
    txn_phase txn_phase_ = txn_phase::uninitialised;
    // Weak: the handle owns the transaction (and the transaction its producer).
    std::weak_ptr<transaction_state> txn_current_;
    std::string txn_failure_;
};

/// enqueue() through a transaction (`tx`) or through the producer (nullptr).
void start_enqueue_in(producer_impl& impl, const transaction_state* tx, const record* owned, const record_view* view,
                      boost::asio::any_completion_handler<void(error_code, delivery)> handler);

} // namespace kcoro::detail
