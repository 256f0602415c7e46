// kcoro: producer options beyond librdkafka's properties: where logs, statistics and
// error events go, how records are partitioned, and what a full local queue means.
//
//     kcoro::producer p(io, cfg, {.on_log = [](const kcoro::log_entry& e) { ... },
//                                 .partitioning = kcoro::partitioner::murmur2_random});
//
// Threads. on_log, on_statistics and on_error run on the producer's executor (on the
// strand that drains librdkafka's event queue), never on librdkafka's threads, so they may
// touch the caller's state the way any handler of that executor may. A custom partitioner
// is the exception: see custom_partitioner.
#pragma once

#include <kcoro/client_events.hpp>
#include <kcoro/error.hpp>

#include <kcoro/detail/fmt.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace kcoro {

/// librdkafka's built-in partitioners (its `partitioner` property), for records with
/// no explicit partition. Records without a key go to a random partition with every
/// choice except consistent/murmur2/fnv1a, which send them all to one partition.
enum class partitioner : std::uint8_t {
    consistent_random, ///< librdkafka's default: CRC32 of the key
    consistent,        ///< CRC32 of the key; keyless records all hash alike
    random,            ///< ignores the key
    murmur2,           ///< the Java client's key hash (keyless records all hash alike)
    murmur2_random,    ///< the Java client's default: murmur2 of the key, keyless random
    fnv1a,             ///< the Go (Sarama) client's key hash
    fnv1a_random       ///< fnv1a of the key, keyless random
};

/// librdkafka's name for a partitioner (its `partitioner` property value).
std::string_view to_string(partitioner p) noexcept;

/// A user partitioner: given the topic, the key and the topic's partition count, returns
/// a partition in [0, partition_count); any other value fails the record with
/// errc::unknown_partition. Records without a key are placed by librdkafka's sticky
/// partitioning (sticky.partitioning.linger.ms; set it to 0 to have them passed here,
/// with a nullopt key).
///
/// librdkafka calls it on its own threads, possibly several at once, while the
/// executor runs other code: it must be a pure function of its arguments (or
/// synchronise what it shares) and must not use the producer or its executor. If it
/// throws, the exception is swallowed and the record fails with errc::unknown_partition:
/// exceptions never cross into librdkafka's C code.
using custom_partitioner =
    std::function<std::int32_t(std::string_view topic, std::optional<std::string_view> key, std::int32_t partition_count)>;

/// What send() does when librdkafka's local queue (queue.buffering.max.messages /
/// queue.buffering.max.kbytes) is full.
enum class full_queue : std::uint8_t {
    wait,     ///< suspend until delivery reports free room (the default; never busy-loops)
    fail_fast ///< complete at once with errc::queue_full
};

struct producer_options {
    /// librdkafka's log lines. Unset: lines at level 3 (error) or more severe are printed
    /// to stderr, and every line when the `debug` property is set.
    std::function<void(const log_entry&)> on_log{};

    /// librdkafka's statistics JSON, every `statistics.interval.ms` (set that
    /// property: librdkafka emits none by default). The view is valid during the call only.
    std::function<void(std::string_view json)> on_statistics{};

    /// Client-level error events. Unset: they are printed to stderr. Fatal errors are
    /// reported here as well as failing the sends (errc::fatal).
    std::function<void(const client_error&)> on_error{};

    /// The built-in partitioner. Unset: the `partitioner` property if given, else
    /// librdkafka's default (consistent_random).
    std::optional<kcoro::partitioner> partitioning{};

    /// A user partitioner; overrides `partitioning`. See custom_partitioner for the
    /// threading rules.
    custom_partitioner partition_with{};

    kcoro::full_queue when_queue_full = full_queue::wait;
};

} // namespace kcoro

template <>
struct fmt::formatter<kcoro::partitioner> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(kcoro::partitioner p, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(kcoro::to_string(p), ctx);
    }
};
