// Heap allocations made by the whole benchmark program so far (see allocation_counter.cpp).
#pragma once

#include <cstddef>

std::size_t bench_allocations() noexcept;
