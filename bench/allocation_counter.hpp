// Heap allocations made by the whole benchmark program so far (see allocation_counter.cpp).
#pragma once

#include <cstddef>

std::size_t bench_allocations() noexcept;

/// Between on and off, with KCORO_BENCH_TRACE_ALLOCS=N in the environment, prints the
/// stack of each of the first N allocations to stderr: where a steady state allocates.
void bench_trace_allocations(bool on) noexcept;
