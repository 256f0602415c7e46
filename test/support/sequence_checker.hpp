// Checks a consumed stream against what was produced: nothing lost, nothing duplicated,
// per partition in the order it was sent. Shared by the fault suites (real cluster and
// mock cluster); tested itself on planted gaps, duplicates and reorderings.
//
//     kcoro::test::sequence_checker check;
//     check.sent(partition, seq);            // in the order the producer sent them
//     ...
//     check.observed(partition, seq);        // in the order a consumer read them
//     auto r = check.result();
//     CHECK_MESSAGE(r.ok(), r.summary());
//
// Sequence numbers identify records: each must be sent at most once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kcoro::test {

class sequence_checker {
public:
    /// A record the producer sent (and, for a fault test, that was acknowledged), in the
    /// order it was sent to its partition. Throws std::logic_error if `seq` was sent already.
    void sent(std::int32_t partition, std::int64_t seq);

    /// A record a consumer read, in the order it was read from its partition.
    void observed(std::int32_t partition, std::int64_t seq);

    /// Parses the decimal sequence number a fault test writes as a record's value
    /// (leading digits; the rest, e.g. padding, is ignored). -1 when there are none.
    static std::int64_t parse(std::string_view value) noexcept;

    struct entry {
        std::int32_t partition = -1;
        std::int64_t seq = -1;
        friend bool operator==(const entry&, const entry&) = default;
    };

    struct report {
        std::vector<entry> lost;        ///< sent, never observed
        std::vector<entry> duplicated;  ///< observed more than once (one entry per extra copy)
        std::vector<entry> reordered;   ///< observed after a record sent later to its partition
        std::vector<entry> unexpected;  ///< observed, never sent (or on another partition)
        std::size_t sent = 0;
        std::size_t observed = 0;

        bool ok() const noexcept { return lost.empty() && duplicated.empty() && reordered.empty() && unexpected.empty(); }
        /// Nothing lost, reordered or unexpected: what at-least-once consumers promise.
        bool ok_allowing_duplicates() const noexcept { return lost.empty() && reordered.empty() && unexpected.empty(); }
        /// Counts, and the first few of each kind: for a test's failure message.
        std::string summary() const;
    };

    /// Compares what was observed with what was sent.
    report result() const;

    std::size_t sent_count() const noexcept { return sent_total_; }
    std::size_t observed_count() const noexcept { return observed_total_; }

private:
    struct partition_state {
        std::map<std::int64_t, std::size_t> position; // seq -> index in send order
        std::vector<std::int64_t> observed;           // seqs in the order read
    };
    std::map<std::int32_t, partition_state> partitions_;
    std::size_t sent_total_ = 0;
    std::size_t observed_total_ = 0;
};

} // namespace kcoro::test
