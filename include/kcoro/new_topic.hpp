// kcoro: a topic to create, as the admin client takes it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace kcoro {

/// A topic for admin::create_topics(). -1 leaves the partition count or the
/// replication factor to the broker's defaults (num.partitions,
/// default.replication.factor).
struct new_topic {
    std::string name{};
    std::int32_t partitions = -1;
    std::int16_t replication_factor = -1;
    /// Topic-level settings, by Kafka's names: {{"cleanup.policy", "compact"}, ...}.
    std::map<std::string, std::string> configs{};
};

} // namespace kcoro
