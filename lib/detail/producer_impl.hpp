// kcoro internals: the producer's core, shared by lib/producer.cpp and lib/transaction.cpp.
#pragma once

#include <kcoro/producer.hpp>
#include <kcoro/topic_partition.hpp>

#include "client_registry.hpp"
#include "event_bridge.hpp"
#include "op_pool.hpp"
#include "rdkafka_ptr.hpp"
#include "worker_thread.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace kcoro::detail {

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

    void start_send(send_op* op);
    void start_batch(batch_base* batch);
    void cancel_batch(batch_base* batch);
    void cancel(send_op* op);
    error_code fatal_code() const;
    std::string fatal_reason() const;
    void flush(std::chrono::milliseconds timeout, boost::asio::any_completion_handler<void(error_code)> handler);
    void close(std::chrono::milliseconds timeout, boost::asio::any_completion_handler<void(error_code)> handler);
    std::size_t in_flight() const noexcept {
        std::lock_guard lock(client_mutex_);
        return rk_ ? static_cast<std::size_t>(rd_kafka_outq_len(rk_.get())) : 0;
    }

    // event_sink
    void on_event(rd_kafka_event_t* event) override;
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
    topic_entry* topic_for(std::string_view name);
    topic_entry* create_topic_entry(std::string_view name); // under topics_mutex_
    void fail(send_op* op, error_code ec);
    void finish_delivery(send_op* op, error_code ec, const record_metadata& md);
    void complete_deliveries(rd_kafka_event_t* event);
    void retry_waiting();
    void abort_waiting(error_code ec = boost::asio::error::operation_aborted);
    void on_fatal();
    void push_waiting(send_op* op);
    bool flush_until(std::chrono::steady_clock::time_point deadline, bool is_close);
    void on_log(rd_kafka_event_t* event);
    void on_error(rd_kafka_event_t* event);
    void on_stats(rd_kafka_event_t* event);
    record_metadata describe(const send_op* op) const;
    void complete_with(boost::asio::any_completion_handler<void(error_code)> handler, error_code ec);
    void post_to_strand(boost::asio::any_completion_handler<void()> f);

    boost::asio::any_io_executor executor_;
    producer_options options_;
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
    // Set when the execution context shuts down: background work then completes nothing.
    std::atomic<bool> context_gone_{false};
    std::mutex close_mutex_;
    std::vector<boost::asio::any_completion_handler<void(error_code)>> close_handlers_;
};

} // namespace kcoro::detail
