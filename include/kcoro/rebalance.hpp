// kcoro: consumer group rebalances, as a consumer's hook sees them.
#pragma once

#include <kcoro/topic_partition.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <vector>

namespace kcoro {

struct rebalance_event {
    enum class kind : std::uint8_t {
        assigned, ///< partitions were added to this member (already assigned when the hook runs)
        revoked,  ///< partitions are being taken away (still assigned while the hook runs)
        lost      ///< partitions were lost (session timeout, fencing): committing them fails
    };

    kind type = kind::assigned;
    /// The partitions added or removed (with cooperative rebalancing, only the change).
    std::vector<topic_partition> partitions{};
    /// True with the cooperative-sticky assignor (incremental rebalances).
    bool cooperative = false;
};

/// Runs on the consumer's executor for every rebalance. The rebalance does not go on
/// until the awaitable completes: on `revoked` it is the place to commit what was
/// processed. Exceptions are reported on stderr and do not stop the rebalance.
using rebalance_hook = std::function<boost::asio::awaitable<void>(rebalance_event)>;

} // namespace kcoro
