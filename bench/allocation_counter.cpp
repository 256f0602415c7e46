// Counts every heap allocation of the benchmark program (operator new in all its forms,
// and C11 aligned_alloc, which Asio's aligned_new may use): linked into each benchmark.
#include "allocation_counter.hpp"

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>

#include <execinfo.h>
#include <unistd.h>

namespace {
std::atomic<std::size_t> g_allocations{0};
} // namespace

std::size_t bench_allocations() noexcept { return g_allocations.load(std::memory_order_relaxed); }

namespace {

std::atomic<bool> g_tracing{false};
std::atomic<long> g_traces_left{0};
thread_local bool t_in_trace = false; // backtrace() may allocate: no recursion

void trace_allocation(std::size_t size) noexcept {
    if (!g_tracing.load(std::memory_order_relaxed) || t_in_trace) return;
    if (g_traces_left.fetch_sub(1, std::memory_order_relaxed) <= 0) return;
    t_in_trace = true;
    void* frames[32];
    const int n = ::backtrace(frames, 32);
    char line[64];
    const int len = std::snprintf(line, sizeof line, "allocation of %zu bytes:\n", size);
    if (len > 0) (void)!::write(STDERR_FILENO, line, static_cast<std::size_t>(len));
    ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
    t_in_trace = false;
}

void* counted_alloc(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    trace_allocation(size);
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t size, std::size_t align) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    trace_allocation(size);
    void* p = nullptr;
    if (align < sizeof(void*)) align = sizeof(void*);
    if (::posix_memalign(&p, align, size ? size : 1) != 0) throw std::bad_alloc();
    return p;
}
} // namespace

void bench_trace_allocations(bool on) noexcept {
    static const long limit = [] {
        const char* n = std::getenv("KCORO_BENCH_TRACE_ALLOCS");
        return n ? std::atol(n) : 0L;
    }();
    if (limit <= 0) return;
    if (on) {
        void* warm[1];
        (void)::backtrace(warm, 1); // loads the unwinder now, not inside an allocation
        g_traces_left.store(limit, std::memory_order_relaxed);
    }
    g_tracing.store(on, std::memory_order_relaxed);
}

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return counted_alloc(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new(std::size_t n, std::align_val_t a) { return counted_aligned_alloc(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_aligned_alloc(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// C11 aligned_alloc (Asio's aligned_new may use it), counted too.
extern "C" void* aligned_alloc(std::size_t align, std::size_t size) noexcept {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    trace_allocation(size);
    void* p = nullptr;
    if (align < sizeof(void*)) align = sizeof(void*);
    return ::posix_memalign(&p, align, size ? size : 1) == 0 ? p : nullptr;
}

