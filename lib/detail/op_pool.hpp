// A thread-safe recycling pool for operation state.
//
// Sends are started on any thread and completed on the executor; their state has a
// handful of distinct sizes. Blocks are kept on per-size free lists, so a steady
// stream of operations allocates nothing after warm-up.
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

    static int size_class(std::size_t size) noexcept;

    std::mutex mutex_;
    std::array<free_block*, class_sizes.size()> free_{};
    std::array<std::size_t, class_sizes.size()> cached_{};
};

} // namespace kcoro::detail
