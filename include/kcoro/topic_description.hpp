// kcoro: a topic's partitions, leaders and replicas, as the admin client describes them.
#pragma once

#include <kcoro/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace kcoro {

/// One partition of a described topic. Broker ids refer to cluster_description::brokers.
struct partition_description {
    std::int32_t partition = 0;
    std::int32_t leader = -1;                ///< -1: no leader at the moment
    std::vector<std::int32_t> replicas{};    ///< the assigned replicas, preferred leader first
    std::vector<std::int32_t> in_sync{};     ///< the in-sync replicas (ISR)
    error_code error{};                      ///< e.g. errc::leader_not_available
};

/// What admin::describe_topics() reports for one topic.
struct topic_description {
    std::string name{};
    std::vector<partition_description> partitions{}; ///< ordered by partition
    error_code error{};                              ///< e.g. errc::unknown_topic_or_partition
    std::string message{};                           ///< explains `error`
};

} // namespace kcoro
