// A thread-safe recycling pool for operation state.
//
// Sends are started on any thread and completed on the executor; their state has a
// handful of distinct sizes. Blocks are kept on per-size free lists, so a steady
// stream of operations allocates nothing after warm-up. Batches need larger blocks
// (one element per record): those are kept in power-of-two classes, up to a bound on
// the bytes cached, enough for a window of batches of thousands of records.
#pragma once

#include <kcoro/detail/pooled_allocator.hpp>

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

// For pooled_allocator<T, op_pool>.
inline void* allocate_op(op_pool& pool, std::size_t size) { return pool.allocate(size); }
inline void deallocate_op(op_pool& pool, void* p, std::size_t size) noexcept { pool.deallocate(p, size); }

} // namespace kcoro::detail
