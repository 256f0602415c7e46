#include <kcoro/error.hpp>

#include <librdkafka/rdkafka.h>

#include <string>

namespace kcoro {

// The public header spells librdkafka's values out so that it need not include rdkafka.h.
static_assert(static_cast<int>(errc::queue_full) == RD_KAFKA_RESP_ERR__QUEUE_FULL);
static_assert(static_cast<int>(errc::message_timed_out) == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
static_assert(static_cast<int>(errc::unknown_topic) == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC);
static_assert(static_cast<int>(errc::unknown_partition) == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION);
static_assert(static_cast<int>(errc::all_brokers_down) == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN);
static_assert(static_cast<int>(errc::authentication) == RD_KAFKA_RESP_ERR__AUTHENTICATION);
static_assert(static_cast<int>(errc::purged_in_flight) == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT);
static_assert(static_cast<int>(errc::fatal) == RD_KAFKA_RESP_ERR__FATAL);
static_assert(static_cast<int>(errc::fenced) == RD_KAFKA_RESP_ERR__FENCED);
static_assert(static_cast<int>(errc::not_configured) == RD_KAFKA_RESP_ERR__NOT_CONFIGURED);
static_assert(static_cast<int>(errc::state) == RD_KAFKA_RESP_ERR__STATE);
static_assert(static_cast<int>(errc::message_too_large) == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
static_assert(static_cast<int>(errc::invalid_topic) == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION);
static_assert(static_cast<int>(errc::topic_authorization_failed) == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
static_assert(static_cast<int>(errc::producer_fenced) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED);
static_assert(static_cast<int>(errc::sasl_authentication_failed) == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED);

namespace {

class kafka_category final : public boost::system::error_category {
public:
    // A fixed id keeps the category unique across shared-library boundaries.
    constexpr kafka_category() noexcept : error_category(0x6b63'6f72'6f5f'6b61ULL) {}

    const char* name() const noexcept override { return "kcoro"; }

    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::unknown_config_key: return "unknown configuration property";
        case errc::invalid_config_value: return "invalid configuration value";
        case errc::client_closed: return "the client is closed";
        case errc::not_in_transaction:
            return "no transaction is open: a producer with a transactional.id sends only inside a transaction";
        case errc::transaction_aborted: return "the transaction was aborted: none of its records or offsets count";
        default: return rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(value));
        }
    }

    boost::system::error_condition default_error_condition(int value) const noexcept override {
        switch (value) {
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
            return boost::system::errc::timed_out;
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
            return boost::system::errc::invalid_argument;
        default:
            return {value, *this};
        }
    }
};

constexpr kafka_category the_category;

} // namespace

const boost::system::error_category& category() noexcept { return the_category; }

bool is_retriable(const error_code& ec) noexcept {
    if (ec.category() != category()) return false;
    switch (ec.value()) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
    case RD_KAFKA_RESP_ERR_LISTENER_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
        return true;
    default:
        return false;
    }
}

bool is_fatal(const error_code& ec) noexcept {
    if (ec.category() != category()) return false;
    switch (ec.value()) {
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return true;
    default:
        return false;
    }
}

} // namespace kcoro
