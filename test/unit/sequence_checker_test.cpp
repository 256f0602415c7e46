// The lost / duplicated / reordered checker of the fault suites, on planted faults.
#include "sequence_checker.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <vector>

using kcoro::test::sequence_checker;
using entry = sequence_checker::entry;

namespace {

// Sends 0..n-1 round-robin over `partitions` partitions.
sequence_checker sent_round_robin(int n, int partitions) {
    sequence_checker c;
    for (int i = 0; i < n; ++i) c.sent(i % partitions, i);
    return c;
}

} // namespace

TEST_CASE("sequence_checker: an exact replay is clean") {
    auto c = sent_round_robin(30, 3);
    for (int p = 0; p < 3; ++p)
        for (int i = p; i < 30; i += 3) c.observed(p, i);
    const auto r = c.result();
    CHECK(r.ok());
    CHECK(r.sent == 30);
    CHECK(r.observed == 30);
    CHECK(r.summary().find("lost 0") != std::string::npos);
}

TEST_CASE("sequence_checker: partitions interleave freely; order is per partition") {
    auto c = sent_round_robin(6, 2);
    for (int i : {1, 0, 3, 2, 5, 4}) c.observed(i % 2, i);
    CHECK(c.result().ok());
}

TEST_CASE("sequence_checker: a planted gap is lost") {
    auto c = sent_round_robin(10, 1);
    for (int i = 0; i < 10; ++i)
        if (i != 4 && i != 9) c.observed(0, i);
    const auto r = c.result();
    CHECK_FALSE(r.ok());
    CHECK(r.lost == std::vector<entry>{{0, 4}, {0, 9}});
    CHECK(r.duplicated.empty());
    CHECK(r.reordered.empty());
    CHECK(r.summary().find("lost 2 [0/4 0/9]") != std::string::npos);
}

TEST_CASE("sequence_checker: planted duplicates, and at-least-once replays") {
    auto c = sent_round_robin(8, 1);
    // A consumer that crashed after 5 and resumed from the committed offset 3.
    for (int i : {0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7}) c.observed(0, i);
    const auto r = c.result();
    CHECK_FALSE(r.ok());
    CHECK(r.ok_allowing_duplicates());
    CHECK(r.duplicated == std::vector<entry>{{0, 3}, {0, 4}, {0, 5}});
    CHECK(r.lost.empty());
    CHECK(r.reordered.empty());
}

TEST_CASE("sequence_checker: planted reorderings") {
    auto c = sent_round_robin(6, 1);
    for (int i : {0, 2, 1, 3, 5, 4}) c.observed(0, i);
    const auto r = c.result();
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.ok_allowing_duplicates());
    CHECK(r.reordered == std::vector<entry>{{0, 1}, {0, 4}});
    CHECK(r.lost.empty());
    CHECK(r.duplicated.empty());
}

TEST_CASE("sequence_checker: a record on the wrong partition, or never sent, is unexpected") {
    auto c = sent_round_robin(4, 2);
    c.observed(0, 0);
    c.observed(0, 1); // sent to partition 1
    c.observed(1, 3);
    c.observed(0, 2);
    c.observed(1, 99); // never sent
    const auto r = c.result();
    CHECK(r.unexpected == std::vector<entry>{{0, 1}, {1, 99}});
    CHECK(r.lost == std::vector<entry>{{1, 1}});
    CHECK_FALSE(r.ok_allowing_duplicates());
}

TEST_CASE("sequence_checker: a sequence sent twice is a test bug; values parse") {
    sequence_checker c;
    c.sent(0, 1);
    CHECK_THROWS_AS(c.sent(0, 1), std::logic_error);
    CHECK(sequence_checker::parse("000123-padding") == 123);
    CHECK(sequence_checker::parse("42") == 42);
    CHECK(sequence_checker::parse("") == -1);
    CHECK(sequence_checker::parse("x1") == -1);
}
