// kcoro: errors.
//
// Every failure is reported as a boost::system::error_code in kcoro's category. Its
// value is librdkafka's rd_kafka_resp_err_t (so every Kafka and librdkafka error is
// representable and carries librdkafka's own text), plus a few codes of kcoro's own
// below -1000. `errc` names the values users commonly test for; any other value of
// the category is still a valid error with a meaningful message().
//
// Operations that throw (constructors, and the default awaitable form of the
// asynchronous operations) throw kcoro::error, a boost::system::system_error whose
// what() also names the thing involved: the topic, the partition, the config key.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <kcoro/detail/fmt.hpp>

#include <string>
#include <type_traits>

namespace kcoro {

using boost::system::error_code;

/// Error values of kcoro's category. Values match librdkafka's rd_kafka_resp_err_t
/// (negative: detected by the client; positive: returned by a broker).
enum class errc : int {
    // client-side
    bad_message = -199,
    destroyed = -197,
    failed = -196,
    transport = -195,
    resolve = -193,
    message_timed_out = -192,
    partition_eof = -191,
    unknown_partition = -190,
    unknown_topic = -188,
    all_brokers_down = -187,
    invalid_argument = -186,
    timed_out = -185,
    queue_full = -184,
    ssl = -181,
    conflict = -173,
    state = -172,
    not_implemented = -170,
    authentication = -169,
    purged_from_queue = -152,
    purged_in_flight = -151,
    fatal = -150,
    unsupported_feature = -165, ///< the cluster does not implement the request (e.g. the mock cluster and admin APIs)
    max_poll_exceeded = -147,   ///< the application did not receive within max.poll.interval.ms
    not_configured = -145,      ///< the feature is not configured (e.g. transactions without transactional.id)
    fenced = -144,              ///< a newer producer with the same transactional.id took over (fatal)
    auto_offset_reset = -140,   ///< auto.offset.reset=error and no valid offset
    // broker-side
    offset_out_of_range = 1,
    unknown_topic_or_partition = 3,
    leader_not_available = 5,
    not_leader_for_partition = 6,
    request_timed_out = 7,
    message_too_large = 10,
    network_exception = 13,
    invalid_topic = 17,
    record_list_too_large = 18,
    not_enough_replicas = 19,
    not_enough_replicas_after_append = 20,
    invalid_required_acks = 21,
    illegal_generation = 22,    ///< a commit from a group generation that is over
    unknown_member_id = 25,
    rebalance_in_progress = 27, ///< a commit while the group rebalances
    topic_authorization_failed = 29,
    group_authorization_failed = 30,
    cluster_authorization_failed = 31,
    topic_already_exists = 36,
    invalid_partitions = 37,
    invalid_replication_factor = 38,
    invalid_config = 40,
    invalid_producer_epoch = 47,
    transactional_id_authorization_failed = 53,
    sasl_authentication_failed = 58,
    invalid_record = 87,
    producer_fenced = 90,
    // broker-side, mostly reported by the admin client
    coordinator_not_available = 15,
    not_coordinator = 16,
    invalid_group_id = 24,
    unsupported_version = 35,
    invalid_replica_assignment = 39,
    not_controller = 41,
    invalid_request = 42,
    policy_violation = 44,
    non_empty_group = 68,
    group_id_not_found = 69,
    topic_deletion_disabled = 73,
    // kcoro's own
    unknown_config_key = -1001,   ///< a configuration property librdkafka does not know
    invalid_config_value = -1002, ///< a known property given a value it rejects
    client_closed = -1003,        ///< the client was closed before or during the operation
    not_in_transaction = -1010,   ///< a transactional producer was asked to send outside a transaction
    transaction_aborted = -1011,  ///< the transaction was aborted: none of its records or offsets count
};

/// The category of every error kcoro reports.
const boost::system::error_category& category() noexcept;

inline error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// An error_code of kcoro's category from a raw librdkafka rd_kafka_resp_err_t value.
inline error_code make_error_code_from_kafka(int rd_kafka_resp_err) noexcept {
    return {rd_kafka_resp_err, category()};
}

/// True when retrying the same operation later may succeed (leader moves, timeouts,
/// transport failures, a full local queue). Errors of other categories are never retriable.
bool is_retriable(const error_code& ec) noexcept;

/// True when the client can no longer be used (a fatal idempotence or transaction error,
/// a fenced producer): it must be closed and replaced.
bool is_fatal(const error_code& ec) noexcept;

/// The exception kcoro throws: the code, plus a message naming what was involved.
class error : public boost::system::system_error {
public:
    /// `context` names the thing involved, e.g. "send to topic 'orders' partition 3".
    error(error_code ec, const std::string& context) : system_error(ec, context) {}
    explicit error(error_code ec) : system_error(ec) {}
};

} // namespace kcoro

template <>
struct boost::system::is_error_code_enum<kcoro::errc> : std::true_type {};

/// Formats as the error's message, e.g. "Local: Unknown topic".
template <>
struct fmt::formatter<kcoro::errc> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(kcoro::errc e, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(kcoro::make_error_code(e).message(), ctx);
    }
};

/// Formats as what(): the context and the error's message.
template <>
struct fmt::formatter<kcoro::error> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::error& e, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(e.what(), ctx);
    }
};
