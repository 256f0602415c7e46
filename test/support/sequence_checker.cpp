#include "sequence_checker.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace kcoro::test {

void sequence_checker::sent(std::int32_t partition, std::int64_t seq) {
    auto& p = partitions_[partition];
    if (!p.position.try_emplace(seq, p.position.size()).second)
        throw std::logic_error(fmt::format("sequence_checker: {} sent twice to partition {}", seq, partition));
    ++sent_total_;
}

void sequence_checker::observed(std::int32_t partition, std::int64_t seq) {
    partitions_[partition].observed.push_back(seq);
    ++observed_total_;
}

std::int64_t sequence_checker::parse(std::string_view value) noexcept {
    std::int64_t n = 0;
    std::size_t i = 0;
    for (; i < value.size() && value[i] >= '0' && value[i] <= '9' && i < 18; ++i) n = n * 10 + (value[i] - '0');
    return i == 0 ? -1 : n;
}

sequence_checker::report sequence_checker::result() const {
    report r;
    r.sent = sent_total_;
    r.observed = observed_total_;
    for (const auto& [partition, p] : partitions_) {
        std::set<std::int64_t> seen;
        // The send-order position of the latest first sighting: a first sighting before it
        // was overtaken by a record sent later.
        std::size_t high = 0;
        bool any = false;
        for (const std::int64_t seq : p.observed) {
            const auto pos = p.position.find(seq);
            if (pos == p.position.end()) {
                r.unexpected.push_back({partition, seq});
                continue;
            }
            if (!seen.insert(seq).second) {
                r.duplicated.push_back({partition, seq});
                continue;
            }
            if (any && pos->second < high) r.reordered.push_back({partition, seq});
            else high = pos->second;
            any = true;
        }
        for (const auto& [seq, index] : p.position)
            if (!seen.contains(seq)) r.lost.push_back({partition, seq});
    }
    return r;
}

std::string sequence_checker::report::summary() const {
    auto list = [](const std::vector<entry>& es) {
        std::string out;
        const std::size_t shown = std::min<std::size_t>(es.size(), 10);
        for (std::size_t i = 0; i < shown; ++i)
            out += fmt::format("{}{}/{}", i ? " " : "", es[i].partition, es[i].seq);
        if (es.size() > shown) out += " ...";
        return out;
    };
    return fmt::format("sent {}, observed {}; lost {} [{}]; duplicated {} [{}]; reordered {} [{}]; unexpected {} [{}]",
                       sent, observed, lost.size(), list(lost), duplicated.size(), list(duplicated), reordered.size(),
                       list(reordered), unexpected.size(), list(unexpected));
}

} // namespace kcoro::test
