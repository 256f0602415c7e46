// Heap allocations made by the whole benchmark program so far (see allocation_counter.cpp).
#pragma once

#include <cstddef>

std::size_t bench_allocations() noexcept;

/// Between on and off, with KCORO_BENCH_TRACE_ALLOCS=N in the environment, prints the
/// stack of each of the first N allocations to stderr: where a steady state allocates.
void bench_trace_allocations(bool on) noexcept;

/// The allocations of a path's steady state: counted (and traced, see above) between 20%
/// and 80% of its messages. Tell it each time the count of completed messages moves.
struct steady_window {
    std::size_t from = 0, to = 0;
    std::size_t at_from = 0, at_to = 0;
    explicit steady_window(std::size_t n) : from(n / 5), to(n * 4 / 5) {}
    void on_done(std::size_t done_before, std::size_t done_after) noexcept {
        if (done_before < from && done_after >= from) {
            at_from = bench_allocations();
            bench_trace_allocations(true);
        }
        if (done_before < to && done_after >= to) {
            at_to = bench_allocations();
            bench_trace_allocations(false);
        }
    }
    double per_message() const noexcept { return double(at_to - at_from) / double(to - from); }
};
