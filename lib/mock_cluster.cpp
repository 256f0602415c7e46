#include <kcoro/mock_cluster.hpp>

#include <kcoro/error.hpp>

#include "detail/client_config.hpp"
#include "detail/rdkafka_ptr.hpp"

#include <librdkafka/rdkafka_mock.h>

#include <fmt/format.h>

namespace kcoro {

struct mock_cluster::impl {
    // librdkafka's mock cluster lives inside a client handle (its logging and threads).
    detail::kafka_ptr host;
    rd_kafka_mock_cluster_t* cluster = nullptr;
    int brokers = 0;

    ~impl() {
        if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    }

    void check(rd_kafka_resp_err_t err, std::string_view what) const {
        if (err) throw error(make_error_code_from_kafka(err), std::string("mock cluster: ").append(what));
    }
};

mock_cluster::mock_cluster(int brokers) : impl_(std::make_unique<impl>()) {
    if (brokers < 1)
        throw error(errc::invalid_argument, fmt::format("mock cluster: at least one broker is needed, not {}", brokers));
    config props{{"log_level", "3"}};
    impl_->host = detail::make_client(RD_KAFKA_PRODUCER, detail::make_conf(props));
    impl_->cluster = rd_kafka_mock_cluster_new(impl_->host.get(), brokers);
    if (!impl_->cluster) throw error(errc::failed, "mock cluster: could not start");
    impl_->brokers = brokers;
}

mock_cluster::mock_cluster(mock_cluster&&) noexcept = default;
mock_cluster& mock_cluster::operator=(mock_cluster&&) noexcept = default;
mock_cluster::~mock_cluster() = default;

std::string mock_cluster::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(impl_->cluster); }

int mock_cluster::broker_count() const noexcept { return impl_->brokers; }

void mock_cluster::check_broker(std::int32_t broker_id, std::string_view what, bool allow_all) const {
    if (allow_all && broker_id == all_brokers) return;
    if (broker_id < 1 || broker_id > impl_->brokers)
        throw error(errc::invalid_argument,
                    fmt::format("mock cluster: {}: no broker {} (the brokers are 1..{}{})", what, broker_id,
                                impl_->brokers, allow_all ? ", or all_brokers" : ""));
}

// ---- topics -----------------------------------------------------------------------------

void mock_cluster::create_topic(std::string_view name, int partitions, int replication_factor) {
    const std::string what = fmt::format("create topic '{}'", name);
    if (name.empty()) throw error(errc::invalid_argument, "mock cluster: create topic: the name is empty");
    if (partitions < 1)
        throw error(errc::invalid_argument,
                    fmt::format("mock cluster: {}: at least one partition is needed, not {}", what, partitions));
    if (replication_factor < 1 || replication_factor > impl_->brokers)
        throw error(errc::invalid_replication_factor,
                    fmt::format("mock cluster: {}: replication factor {} with {} broker(s)", what,
                                replication_factor, impl_->brokers));
    const std::string topic(name);
    impl_->check(rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, replication_factor), what);
}

void mock_cluster::set_partition_leader(std::string_view topic, std::int32_t partition, std::int32_t broker_id) {
    const std::string what = fmt::format("leader of '{}' partition {}", topic, partition);
    if (broker_id != -1) check_broker(broker_id, what, false);
    const std::string t(topic);
    impl_->check(rd_kafka_mock_partition_set_leader(impl_->cluster, t.c_str(), partition, broker_id), what);
}

void mock_cluster::set_topic_error(std::string_view topic, error_code e) {
    if (e && e.category() != category())
        throw error(errc::invalid_argument,
                    fmt::format("mock cluster: error of topic '{}': not a kcoro error ({})", topic, e.message()));
    const std::string t(topic);
    rd_kafka_mock_topic_set_error(impl_->cluster, t.c_str(), static_cast<rd_kafka_resp_err_t>(e.value()));
}

// ---- brokers ----------------------------------------------------------------------------

void mock_cluster::broker_down(std::int32_t broker_id) {
    const std::string what = fmt::format("broker {} down", broker_id);
    check_broker(broker_id, what, true);
    impl_->check(rd_kafka_mock_broker_set_down(impl_->cluster, broker_id), what);
}

void mock_cluster::broker_up(std::int32_t broker_id) {
    const std::string what = fmt::format("broker {} up", broker_id);
    check_broker(broker_id, what, true);
    impl_->check(rd_kafka_mock_broker_set_up(impl_->cluster, broker_id), what);
}

void mock_cluster::set_round_trip_time(std::int32_t broker_id, std::chrono::milliseconds rtt) {
    const std::string what = fmt::format("broker {} round-trip time", broker_id);
    check_broker(broker_id, what, true);
    if (rtt.count() < 0 || rtt > std::chrono::hours(1))
        throw error(errc::invalid_argument, fmt::format("mock cluster: {}: {} ms is out of range", what, rtt.count()));
    impl_->check(rd_kafka_mock_broker_set_rtt(impl_->cluster, broker_id, static_cast<int>(rtt.count())), what);
}

void mock_cluster::set_rack(std::int32_t broker_id, std::string_view rack) {
    const std::string what = fmt::format("rack of broker {}", broker_id);
    check_broker(broker_id, what, true);
    const std::string r(rack);
    impl_->check(rd_kafka_mock_broker_set_rack(impl_->cluster, broker_id, r.c_str()), what);
}

void mock_cluster::set_group_coordinator(std::string_view group_id, std::int32_t broker_id) {
    const std::string what = fmt::format("coordinator of group '{}'", group_id);
    check_broker(broker_id, what, false);
    const std::string key(group_id);
    impl_->check(rd_kafka_mock_coordinator_set(impl_->cluster, "group", key.c_str(), broker_id), what);
}

void mock_cluster::set_transaction_coordinator(std::string_view transactional_id, std::int32_t broker_id) {
    const std::string what = fmt::format("coordinator of transactional id '{}'", transactional_id);
    check_broker(broker_id, what, false);
    const std::string key(transactional_id);
    impl_->check(rd_kafka_mock_coordinator_set(impl_->cluster, "transaction", key.c_str(), broker_id), what);
}

// ---- injected errors --------------------------------------------------------------------

void mock_cluster::push_request_errors(kafka_api api, const std::vector<errc>& errors) {
    std::vector<rd_kafka_resp_err_t> errs;
    errs.reserve(errors.size());
    for (errc e : errors) errs.push_back(static_cast<rd_kafka_resp_err_t>(e));
    rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<std::int16_t>(api), errs.size(), errs.data());
}

void mock_cluster::push_request_errors(std::int16_t api_key, const std::vector<int>& errors) {
    std::vector<rd_kafka_resp_err_t> errs;
    errs.reserve(errors.size());
    for (int e : errors) errs.push_back(static_cast<rd_kafka_resp_err_t>(e));
    rd_kafka_mock_push_request_errors_array(impl_->cluster, api_key, errs.size(), errs.data());
}

void mock_cluster::push_broker_responses(std::int32_t broker_id, kafka_api api,
                                         const std::vector<broker_response>& responses) {
    const std::string what = fmt::format("responses of broker {}", broker_id);
    check_broker(broker_id, what, false);
    // The C call is variadic: one call per response keeps the order (each appends).
    for (const auto& r : responses) {
        if (r.delay.count() < 0 || r.delay > std::chrono::hours(1))
            throw error(errc::invalid_argument,
                        fmt::format("mock cluster: {}: a delay of {} ms is out of range", what, r.delay.count()));
        impl_->check(rd_kafka_mock_broker_push_request_error_rtts(impl_->cluster, broker_id,
                                                                  static_cast<std::int16_t>(api), 1,
                                                                  static_cast<rd_kafka_resp_err_t>(r.error),
                                                                  static_cast<int>(r.delay.count())),
                     what);
    }
}

std::size_t mock_cluster::pending_broker_responses(std::int32_t broker_id, kafka_api api) const {
    const std::string what = fmt::format("responses of broker {}", broker_id);
    check_broker(broker_id, what, false);
    std::size_t n = 0;
    impl_->check(rd_kafka_mock_broker_error_stack_cnt(impl_->cluster, broker_id, static_cast<std::int16_t>(api), &n),
                 what);
    return n;
}

void mock_cluster::clear_request_errors(kafka_api api) {
    rd_kafka_mock_clear_request_errors(impl_->cluster, static_cast<std::int16_t>(api));
}

} // namespace kcoro
