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

    ~impl() {
        if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    }

    void check(rd_kafka_resp_err_t err, std::string_view what) const {
        if (err) throw error(make_error_code_from_kafka(err), std::string("mock cluster: ").append(what));
    }
};

mock_cluster::mock_cluster(int brokers) : impl_(std::make_unique<impl>()) {
    if (brokers < 1) throw error(errc::invalid_argument, "mock cluster: at least one broker is needed");
    config props{{"log_level", "3"}};
    impl_->host = detail::make_client(RD_KAFKA_PRODUCER, detail::make_conf(props));
    impl_->cluster = rd_kafka_mock_cluster_new(impl_->host.get(), brokers);
    if (!impl_->cluster) throw error(errc::failed, "mock cluster: could not start");
}

mock_cluster::mock_cluster(mock_cluster&&) noexcept = default;
mock_cluster& mock_cluster::operator=(mock_cluster&&) noexcept = default;
mock_cluster::~mock_cluster() = default;

std::string mock_cluster::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(impl_->cluster); }

void mock_cluster::create_topic(std::string_view name, int partitions, int replication_factor) {
    const std::string topic(name);
    impl_->check(rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, replication_factor),
                 fmt::format("create topic '{}'", name));
}

void mock_cluster::broker_down(std::int32_t broker_id) {
    impl_->check(rd_kafka_mock_broker_set_down(impl_->cluster, broker_id), fmt::format("broker {} down", broker_id));
}

void mock_cluster::broker_up(std::int32_t broker_id) {
    impl_->check(rd_kafka_mock_broker_set_up(impl_->cluster, broker_id), fmt::format("broker {} up", broker_id));
}

void mock_cluster::set_round_trip_time(std::int32_t broker_id, std::chrono::milliseconds rtt) {
    impl_->check(rd_kafka_mock_broker_set_rtt(impl_->cluster, broker_id, static_cast<int>(rtt.count())),
                 fmt::format("broker {} round-trip time", broker_id));
}

void mock_cluster::push_request_errors(std::int16_t api_key, const std::vector<int>& errors) {
    std::vector<rd_kafka_resp_err_t> errs;
    errs.reserve(errors.size());
    for (int e : errors) errs.push_back(static_cast<rd_kafka_resp_err_t>(e));
    rd_kafka_mock_push_request_errors_array(impl_->cluster, api_key, errs.size(), errs.data());
}

void mock_cluster::set_partition_leader(std::string_view topic, std::int32_t partition, std::int32_t broker_id) {
    const std::string t(topic);
    impl_->check(rd_kafka_mock_partition_set_leader(impl_->cluster, t.c_str(), partition, broker_id),
                 fmt::format("leader of '{}' partition {}", topic, partition));
}

} // namespace kcoro
