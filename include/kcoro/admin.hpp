// kcoro: the admin client (topics, partitions, configs, consumer groups, records).
//
//     kcoro::admin admin(co_await asio::this_coro::executor,
//                        {{"bootstrap.servers", "localhost:9092"}});
//     const kcoro::new_topic orders{.name = "orders", .partitions = 6, .replication_factor = 3};
//     co_await admin.create_topic(orders);      // throws kcoro::error naming 'orders'
//     kcoro::topic_description d = co_await admin.describe_topic("orders");
//
// Every operation has two forms, as in producer.hpp: with a completion token (signature
// void(error_code, T), or void(error_code) for operations that yield nothing), and
// without one, returning an asio::awaitable that throws kcoro::error. The exception's
// what() names the topic, group or resource involved and carries the cluster's own
// explanation, e.g. "create topic 'orders' (Topic 'orders' already exists.): Broker:
// Topic already exists".
//
// Errors are kcoro::errc values: topic_already_exists, invalid_partitions,
// invalid_replication_factor, invalid_config, unknown_topic_or_partition (a topic that
// does not exist), group_id_not_found, non_empty_group, offset_out_of_range, policy_violation,
// topic_deletion_disabled, timed_out / request_timed_out, invalid_argument (rejected
// before anything was sent: a partition count of 0, an empty name, ...),
// unsupported_feature (the cluster does not implement the request; see mock_cluster.hpp
// for what librdkafka's mock cluster answers), client_closed.
//
// Batches. create_topics(), delete_topics(), describe_topics(), describe_consumer_groups(),
// delete_consumer_groups() and delete_records() act on several names in one request and
// report each one's outcome, in the order asked: the vector always has one entry per name.
// The error_code given to a completion token is the first failure's (empty when all
// succeeded). The awaitable forms throw when any entry failed, naming every failed one and
// why; to keep the successes of a partly failed batch, use a token such as
// asio::as_tuple(asio::use_awaitable) and read the vector.
//
// Threads. Results come on the admin client's executor: librdkafka puts them on an event
// queue that the executor drains (the bridge, as for the producer); handlers run on their
// associated executor. Metadata queries (describe_cluster, describe_topics, list_topics)
// have no queue-based form in librdkafka 2.0: they run on the client's worker thread,
// never on the executor.
//
// Cancellation (per operation, through the handler's cancellation slot) ends the wait with
// asio::error::operation_aborted. A request already sent cannot be recalled: the cluster
// may still carry it out (a topic may still be created).
//
// Lifetimes. close() waits for outstanding operations (up to its timeout, then they
// complete with operation_aborted) and releases the client; later operations complete
// with errc::client_closed. Destroying an admin client aborts what is outstanding.
#pragma once

#include <kcoro/admin_options.hpp>
#include <kcoro/cluster_description.hpp>
#include <kcoro/config.hpp>
#include <kcoro/config_resource.hpp>
#include <kcoro/consumer_group_description.hpp>
#include <kcoro/deleted_records.hpp>
#include <kcoro/error.hpp>
#include <kcoro/new_topic.hpp>
#include <kcoro/resource_result.hpp>
#include <kcoro/topic_description.hpp>
#include <kcoro/topic_partition.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace kcoro {

namespace detail {
class admin_impl;

template <class... T>
using admin_handler = boost::asio::any_completion_handler<void(error_code, T...)>;

void admin_create_topics(const std::shared_ptr<admin_impl>& impl, std::vector<new_topic> topics,
                         admin_handler<std::vector<resource_result>> handler);
void admin_delete_topics(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> topics,
                         admin_handler<std::vector<resource_result>> handler);
void admin_create_partitions(const std::shared_ptr<admin_impl>& impl, std::string topic, std::int32_t total,
                             admin_handler<std::vector<resource_result>> handler);
void admin_describe_cluster(const std::shared_ptr<admin_impl>& impl, admin_handler<cluster_description> handler);
void admin_list_topics(const std::shared_ptr<admin_impl>& impl, admin_handler<std::vector<std::string>> handler);
void admin_describe_topics(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> topics,
                           admin_handler<std::vector<topic_description>> handler);
void admin_describe_configs(const std::shared_ptr<admin_impl>& impl, config_resource resource,
                            admin_handler<std::vector<config_entry>> handler);
void admin_alter_configs(const std::shared_ptr<admin_impl>& impl, config_resource resource,
                         std::vector<config_alteration> changes, admin_handler<std::vector<resource_result>> handler);
void admin_list_consumer_groups(const std::shared_ptr<admin_impl>& impl,
                                admin_handler<std::vector<consumer_group_listing>> handler);
void admin_describe_consumer_groups(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> groups,
                                    admin_handler<std::vector<consumer_group_description>> handler);
void admin_delete_consumer_groups(const std::shared_ptr<admin_impl>& impl, std::vector<std::string> groups,
                                  admin_handler<std::vector<resource_result>> handler);
void admin_delete_records(const std::shared_ptr<admin_impl>& impl, std::vector<partition_offset> before,
                          admin_handler<std::vector<deleted_records>> handler);
void admin_close(const std::shared_ptr<admin_impl>& impl, std::chrono::milliseconds timeout,
                 boost::asio::any_completion_handler<void(error_code)> handler);
void abandon(std::shared_ptr<admin_impl> impl) noexcept;
const boost::asio::any_io_executor& admin_executor(const admin_impl& impl) noexcept;

/// The first failure of a batch (empty error_code when none failed).
error_code first_failure(const std::vector<resource_result>& results) noexcept;
/// "operation: 'a': <error> (<explanation>); 'b': ..." listing the failed entries.
std::string describe_failures(std::string_view operation, const std::vector<resource_result>& results);
std::string describe_failures(std::string_view operation, const std::vector<topic_description>& results);
std::string describe_failures(std::string_view operation, const std::vector<consumer_group_description>& results);
std::string describe_failures(std::string_view operation, const std::vector<deleted_records>& results);
[[noreturn]] void throw_admin_error(error_code ec, const std::string& context);

// Asio 1.81's async_result turns a void(error_code, T) handler into a void(error_code)
// one through this adaptor: the handler's executor, allocator and cancellation slot are
// those of the wrapped handler.
template <class Handler>
struct drop_value {
    Handler handler;
    template <class T>
    void operator()(error_code ec, T&&) && {
        std::move(handler)(ec);
    }
    using executor_type = boost::asio::associated_executor_t<Handler>;
    executor_type get_executor() const noexcept { return boost::asio::get_associated_executor(handler); }
    using allocator_type = boost::asio::associated_allocator_t<Handler>;
    allocator_type get_allocator() const noexcept { return boost::asio::get_associated_allocator(handler); }
    using cancellation_slot_type = boost::asio::associated_cancellation_slot_t<Handler>;
    cancellation_slot_type get_cancellation_slot() const noexcept {
        return boost::asio::get_associated_cancellation_slot(handler);
    }
};
template <class Handler>
drop_value(Handler) -> drop_value<Handler>;
} // namespace detail

class admin {
public:
    using executor_type = boost::asio::any_io_executor;

    /// Waits with no deadline.
    static constexpr std::chrono::milliseconds no_timeout = std::chrono::milliseconds::max();

    /// Creates an admin client from librdkafka properties (bootstrap.servers, security,
    /// client.id, ...). Throws kcoro::error naming the key when a property is unknown or
    /// its value rejected. No connection is made before the first operation.
    admin(executor_type executor, const config& properties, admin_options options = {});

    template <class ExecutionContext>
        requires std::is_convertible_v<ExecutionContext&, boost::asio::execution_context&>
    admin(ExecutionContext& context, const config& properties, admin_options options = {})
        : admin(context.get_executor(), properties, std::move(options)) {}

    admin(admin&&) noexcept = default;
    admin& operator=(admin&& other) noexcept;
    admin(const admin&) = delete;
    admin& operator=(const admin&) = delete;

    /// Aborts outstanding operations (operation_aborted) and releases the client in the
    /// background: it never blocks.
    ~admin();

    executor_type get_executor() const noexcept { return detail::admin_executor(*impl_); }

    // ---- topics -------------------------------------------------------------------------

    /// Creates topics: void(error_code, std::vector<resource_result>), one result per topic.
    /// Completes when the controller created them (or admin_options::operation_timeout
    /// passed); metadata on other brokers may lag briefly.
    template <class CompletionToken>
    auto create_topics(const std::vector<new_topic>& topics, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<resource_result>)>(
            [impl = impl_](auto handler, std::vector<new_topic> t) {
                detail::admin_create_topics(impl, std::move(t), std::move(handler));
            },
            token, topics);
    }
    boost::asio::awaitable<std::vector<resource_result>> create_topics(std::vector<new_topic> topics) {
        auto op = create_topics(topics, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("create topics", results));
        co_return std::move(results);
    }

    /// Creates one topic: void(error_code).
    template <class CompletionToken>
    auto create_topic(const new_topic& topic, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, new_topic t) {
                std::vector<new_topic> one{std::move(t)};
                detail::admin_create_topics(impl, std::move(one), detail::drop_value{std::move(handler)});
            },
            token, topic);
    }
    boost::asio::awaitable<void> create_topic(new_topic topic) {
        const std::string name = topic.name;
        std::vector<new_topic> one{std::move(topic)};
        auto op = create_topics(one, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("create topic", results));
    }

    /// Deletes topics: void(error_code, std::vector<resource_result>). A topic that does
    /// not exist fails with errc::unknown_topic_or_partition.
    template <class CompletionToken>
    auto delete_topics(const std::vector<std::string>& topics, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<resource_result>)>(
            [impl = impl_](auto handler, std::vector<std::string> t) {
                detail::admin_delete_topics(impl, std::move(t), std::move(handler));
            },
            token, topics);
    }
    boost::asio::awaitable<std::vector<resource_result>> delete_topics(std::vector<std::string> topics) {
        auto op = delete_topics(topics, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("delete topics", results));
        co_return std::move(results);
    }

    template <class CompletionToken>
    auto delete_topic(const std::string& topic, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, std::string t) {
                std::vector<std::string> one{std::move(t)};
                detail::admin_delete_topics(impl, std::move(one), detail::drop_value{std::move(handler)});
            },
            token, topic);
    }
    boost::asio::awaitable<void> delete_topic(std::string topic) {
        std::vector<std::string> one{std::move(topic)};
        auto op = delete_topics(one, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("delete topic", results));
    }

    /// Grows a topic to `total_partitions` partitions: void(error_code). Kafka cannot
    /// shrink a topic: a count not above the current one fails with errc::invalid_partitions.
    template <class CompletionToken>
    auto create_partitions(const std::string& topic, std::int32_t total_partitions, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, std::string t, std::int32_t n) {
                detail::admin_create_partitions(impl, std::move(t), n, detail::drop_value{std::move(handler)});
            },
            token, topic, total_partitions);
    }
    boost::asio::awaitable<void> create_partitions(std::string topic, std::int32_t total_partitions) {
        auto token = boost::asio::as_tuple(boost::asio::deferred);
        auto op = boost::asio::async_initiate<decltype(token), void(error_code, std::vector<resource_result>)>(
            [impl = impl_](auto handler, std::string t, std::int32_t n) {
                detail::admin_create_partitions(impl, std::move(t), n, std::move(handler));
            },
            token, topic, total_partitions);
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("create partitions for topic", results));
    }

    /// The topics' partitions, leaders, replicas and in-sync replicas:
    /// void(error_code, std::vector<topic_description>), one per name. A topic that does
    /// not exist has errc::unknown_topic_or_partition (asking never creates it).
    template <class CompletionToken>
    auto describe_topics(const std::vector<std::string>& topics, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<topic_description>)>(
            [impl = impl_](auto handler, std::vector<std::string> t) {
                detail::admin_describe_topics(impl, std::move(t), std::move(handler));
            },
            token, topics);
    }
    boost::asio::awaitable<std::vector<topic_description>> describe_topics(std::vector<std::string> topics) {
        auto op = describe_topics(topics, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("describe topics", results));
        co_return std::move(results);
    }

    /// One topic: void(error_code, topic_description).
    template <class CompletionToken>
    auto describe_topic(const std::string& topic, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, topic_description)>(
            [impl = impl_](auto handler, std::string t) {
                std::vector<std::string> one{std::move(t)};
                detail::admin_describe_topics(impl, std::move(one), single{std::move(handler)});
            },
            token, topic);
    }
    boost::asio::awaitable<topic_description> describe_topic(std::string topic) {
        auto op = describe_topic(topic, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, result] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("describe topic", std::vector{result}));
        co_return std::move(result);
    }

    /// The names of all topics (internal ones such as __consumer_offsets included),
    /// sorted: void(error_code, std::vector<std::string>).
    template <class CompletionToken>
    auto list_topics(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<std::string>)>(
            [impl = impl_](auto handler) { detail::admin_list_topics(impl, std::move(handler)); }, token);
    }
    boost::asio::awaitable<std::vector<std::string>> list_topics() {
        auto op = list_topics(boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, names] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, "list topics");
        co_return std::move(names);
    }

    // ---- cluster ------------------------------------------------------------------------

    /// The brokers, the controller and the cluster id: void(error_code, cluster_description).
    template <class CompletionToken>
    auto describe_cluster(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, cluster_description)>(
            [impl = impl_](auto handler) { detail::admin_describe_cluster(impl, std::move(handler)); }, token);
    }
    boost::asio::awaitable<cluster_description> describe_cluster() {
        auto op = describe_cluster(boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, d] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, "describe cluster");
        co_return std::move(d);
    }

    // ---- configs ------------------------------------------------------------------------

    /// Every configuration value of a topic or broker, with its source:
    /// void(error_code, std::vector<config_entry>).
    template <class CompletionToken>
    auto describe_configs(const config_resource& resource, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<config_entry>)>(
            [impl = impl_](auto handler, config_resource r) {
                detail::admin_describe_configs(impl, std::move(r), std::move(handler));
            },
            token, resource);
    }
    boost::asio::awaitable<std::vector<config_entry>> describe_configs(config_resource resource) {
        auto op = describe_configs(resource, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, entries] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, describe(resource, "describe configs of"));
        co_return std::move(entries);
    }

    /// Changes some configuration values of a topic or broker and leaves the others as
    /// they are: void(error_code). librdkafka 2.0 has no IncrementalAlterConfigs, and
    /// Kafka's AlterConfigs replaces a resource's whole dynamic configuration, so this
    /// reads the current dynamic values first and sends them back with the changes. It
    /// is not atomic: a change made by someone else between the two requests is lost.
    /// A resource with sensitive dynamic values (which Kafka never returns) is refused
    /// with errc::invalid_argument rather than have them erased.
    template <class CompletionToken>
    auto alter_configs(const config_resource& resource, const std::vector<config_alteration>& changes,
                       CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, config_resource r, std::vector<config_alteration> c) {
                detail::admin_alter_configs(impl, std::move(r), std::move(c), detail::drop_value{std::move(handler)});
            },
            token, resource, changes);
    }
    boost::asio::awaitable<void> alter_configs(config_resource resource, std::vector<config_alteration> changes) {
        auto token = boost::asio::as_tuple(boost::asio::deferred);
        auto op = boost::asio::async_initiate<decltype(token), void(error_code, std::vector<resource_result>)>(
            [impl = impl_](auto handler, config_resource r, std::vector<config_alteration> c) {
                detail::admin_alter_configs(impl, std::move(r), std::move(c), std::move(handler));
            },
            token, resource, changes);
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures(describe(resource, "alter configs of"), results));
    }

    // ---- consumer groups ------------------------------------------------------------------

    /// Every consumer group of the cluster: void(error_code, std::vector<consumer_group_listing>).
    /// When some brokers could not be asked, the error_code says why and the vector holds
    /// what the others reported.
    template <class CompletionToken>
    auto list_consumer_groups(CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<consumer_group_listing>)>(
            [impl = impl_](auto handler) { detail::admin_list_consumer_groups(impl, std::move(handler)); }, token);
    }
    boost::asio::awaitable<std::vector<consumer_group_listing>> list_consumer_groups() {
        auto op = list_consumer_groups(boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, groups] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, "list consumer groups");
        co_return std::move(groups);
    }

    /// Members, assignments, state and coordinator of groups:
    /// void(error_code, std::vector<consumer_group_description>). A group that does not
    /// exist (Kafka reports it as "Dead") has errc::group_id_not_found.
    template <class CompletionToken>
    auto describe_consumer_groups(const std::vector<std::string>& groups, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken,
                                           void(error_code, std::vector<consumer_group_description>)>(
            [impl = impl_](auto handler, std::vector<std::string> g) {
                detail::admin_describe_consumer_groups(impl, std::move(g), std::move(handler));
            },
            token, groups);
    }
    boost::asio::awaitable<std::vector<consumer_group_description>>
    describe_consumer_groups(std::vector<std::string> groups) {
        auto op = describe_consumer_groups(groups, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("describe consumer groups", results));
        co_return std::move(results);
    }

    template <class CompletionToken>
    auto describe_consumer_group(const std::string& group, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, consumer_group_description)>(
            [impl = impl_](auto handler, std::string g) {
                std::vector<std::string> one{std::move(g)};
                detail::admin_describe_consumer_groups(impl, std::move(one), single{std::move(handler)});
            },
            token, group);
    }
    boost::asio::awaitable<consumer_group_description> describe_consumer_group(std::string group) {
        auto op = describe_consumer_group(group, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, result] = co_await std::move(op);
        if (ec)
            detail::throw_admin_error(ec, detail::describe_failures("describe consumer group", std::vector{result}));
        co_return std::move(result);
    }

    /// Deletes consumer groups (their committed offsets): void(error_code,
    /// std::vector<resource_result>). A group with members fails with errc::non_empty_group,
    /// an unknown one with errc::group_id_not_found.
    template <class CompletionToken>
    auto delete_consumer_groups(const std::vector<std::string>& groups, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<resource_result>)>(
            [impl = impl_](auto handler, std::vector<std::string> g) {
                detail::admin_delete_consumer_groups(impl, std::move(g), std::move(handler));
            },
            token, groups);
    }
    boost::asio::awaitable<std::vector<resource_result>> delete_consumer_groups(std::vector<std::string> groups) {
        auto op = delete_consumer_groups(groups, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("delete consumer groups", results));
        co_return std::move(results);
    }

    // ---- records --------------------------------------------------------------------------

    /// Deletes the records of each partition before its offset (offsets::end: all of
    /// them): void(error_code, std::vector<deleted_records>) with each partition's new low
    /// watermark. An offset beyond the partition's end fails with errc::offset_out_of_range.
    template <class CompletionToken>
    auto delete_records(const std::vector<partition_offset>& before, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code, std::vector<deleted_records>)>(
            [impl = impl_](auto handler, std::vector<partition_offset> b) {
                detail::admin_delete_records(impl, std::move(b), std::move(handler));
            },
            token, before);
    }
    boost::asio::awaitable<std::vector<deleted_records>> delete_records(std::vector<partition_offset> before) {
        auto op = delete_records(before, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec, results] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, detail::describe_failures("delete records", results));
        co_return std::move(results);
    }

    // ---- lifetime -------------------------------------------------------------------------

    /// Waits up to `timeout` for outstanding operations (the rest complete with
    /// operation_aborted, and close with errc::timed_out), then releases the client.
    /// Later operations fail with errc::client_closed. Closing twice is harmless.
    template <class CompletionToken>
    auto close(std::chrono::milliseconds timeout, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(error_code)>(
            [impl = impl_](auto handler, std::chrono::milliseconds t) {
                detail::admin_close(impl, t, std::move(handler));
            },
            token, timeout);
    }
    boost::asio::awaitable<void> close(std::chrono::milliseconds timeout = no_timeout) {
        auto op = close(timeout, boost::asio::as_tuple(boost::asio::deferred));
        auto [ec] = co_await std::move(op);
        if (ec) detail::throw_admin_error(ec, "close admin client");
    }

private:
    // Turns a one-element batch result into that element (as a handler adaptor, so the
    // handler's associated executor, allocator and cancellation slot stay in effect).
    template <class Handler>
    struct single {
        Handler handler;
        template <class T>
        void operator()(error_code ec, std::vector<T> results) && {
            T one = results.empty() ? T{} : std::move(results.front());
            std::move(handler)(ec, std::move(one));
        }
        using executor_type = boost::asio::associated_executor_t<Handler>;
        executor_type get_executor() const noexcept { return boost::asio::get_associated_executor(handler); }
        using allocator_type = boost::asio::associated_allocator_t<Handler>;
        allocator_type get_allocator() const noexcept { return boost::asio::get_associated_allocator(handler); }
        using cancellation_slot_type = boost::asio::associated_cancellation_slot_t<Handler>;
        cancellation_slot_type get_cancellation_slot() const noexcept {
            return boost::asio::get_associated_cancellation_slot(handler);
        }
    };
    template <class Handler>
    single(Handler) -> single<Handler>;

    static std::string describe(const config_resource& r, std::string_view what);

    std::shared_ptr<detail::admin_impl> impl_;
};

} // namespace kcoro
