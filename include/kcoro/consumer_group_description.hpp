// kcoro: consumer groups, as the admin client lists and describes them.
#pragma once

#include <kcoro/cluster_description.hpp>
#include <kcoro/error.hpp>
#include <kcoro/topic_partition.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kcoro {

/// A group's state, as its coordinator reports it.
enum class consumer_group_state : std::uint8_t {
    unknown,
    preparing_rebalance,
    completing_rebalance,
    stable,
    dead,
    empty
};

/// Kafka's name of a state ("Stable", "Empty", ...).
std::string_view to_string(consumer_group_state s) noexcept;

/// One entry of admin::list_consumer_groups().
struct consumer_group_listing {
    std::string group_id{};
    consumer_group_state state = consumer_group_state::unknown;
    bool simple = false; ///< a group with no members that only commits offsets (manual assignment)
};

/// A member of a described group.
struct member_description {
    std::string member_id{};
    std::optional<std::string> group_instance_id{}; ///< static membership (group.instance.id)
    std::string client_id{};
    std::string host{};
    std::vector<topic_partition> assignment{};
};

/// What admin::describe_consumer_groups() reports for one group.
struct consumer_group_description {
    std::string group_id{};
    consumer_group_state state = consumer_group_state::unknown;
    bool simple = false;
    std::string partition_assignor{};
    broker_description coordinator{};
    std::vector<member_description> members{};
    error_code error{};    ///< e.g. errc::group_id_not_found
    std::string message{}; ///< explains `error`
};

} // namespace kcoro
