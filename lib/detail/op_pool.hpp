// A thread-safe recycling pool for operation state.
//
// Sends are started on any thread and completed on the executor; their state has a
// handful of distinct sizes. Blocks are kept on per-size free lists, so a steady
// stream of operations allocates nothing after warm-up. Batches need larger blocks
// (one element per record): those are kept in power-of-two classes, up to a bound on
// the bytes cached, enough for a window of batches of thousands of records.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>

namespace kcoro::detail {

class op_pool {
public:
    op_pool() = default;
    op_pool(const op_pool&) = delete;
    op_pool& operator=(const op_pool&) = delete;
    ~op_pool();

    void* allocate(std::size_t size);
    void deallocate(void* p, std::size_t size) noexcept;

private:
    struct free_block {
        free_block* next;
    };
    static constexpr std::array<std::size_t, 5> class_sizes{64, 128, 256, 512, 1024};
    static constexpr std::size_t max_cached_per_class = 1 << 17;
    // Large classes: 2 KiB << i, up to 2 KiB << (large_classes - 1) = 64 MiB.
    static constexpr std::size_t large_classes = 16;
    static constexpr std::size_t max_large_cached_bytes = std::size_t(64) << 20;

    static int size_class(std::size_t size) noexcept;
    static int large_class(std::size_t size) noexcept;
    static std::size_t large_size(int c) noexcept { return std::size_t(2048) << c; }

    std::mutex mutex_;
    std::array<free_block*, class_sizes.size()> free_{};
    std::array<std::size_t, class_sizes.size()> cached_{};
    std::array<free_block*, large_classes> large_free_{};
    std::size_t large_cached_bytes_ = 0;
};

/// A standard allocator over an op_pool, for the handlers kcoro hands to Asio itself (waits,
/// posts): Asio allocates their operations through the handler's associated allocator, and
/// its own per-thread cache (two blocks per kind) misses whenever sizes interleave.
template <class T>
class op_pool_allocator {
public:
    using value_type = T;

    explicit op_pool_allocator(op_pool& pool) noexcept : pool_(&pool) {}
    template <class U>
    op_pool_allocator(const op_pool_allocator<U>& other) noexcept : pool_(other.pool_) {}

    T* allocate(std::size_t n) { return static_cast<T*>(pool_->allocate(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { pool_->deallocate(p, n * sizeof(T)); }

    template <class U>
    bool operator==(const op_pool_allocator<U>& other) const noexcept {
        return pool_ == other.pool_;
    }

private:
    template <class U>
    friend class op_pool_allocator;
    op_pool* pool_;
};

} // namespace kcoro::detail
