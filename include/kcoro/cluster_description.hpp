// kcoro: the brokers of a cluster, as the admin client describes them.
#pragma once

#include <kcoro/detail/fmt.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace kcoro {

/// A broker (a Kafka node).
struct broker_description {
    std::int32_t id = -1;
    std::string host{};
    std::int32_t port = 0;

    friend bool operator==(const broker_description&, const broker_description&) = default;
};

/// What admin::describe_cluster() reports.
struct cluster_description {
    std::string cluster_id{};          ///< empty when the cluster does not report one
    std::int32_t controller_id = -1;   ///< -1 when the cluster does not report one
    std::vector<broker_description> brokers{}; ///< ordered by id
};

} // namespace kcoro

/// Formats as "id@host:port".
template <>
struct fmt::formatter<kcoro::broker_description> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const kcoro::broker_description& b, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}@{}:{}", b.id, b.host, b.port);
    }
};
