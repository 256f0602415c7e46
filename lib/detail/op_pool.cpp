#include "op_pool.hpp"

#include <new>
#include <utility>

namespace kcoro::detail {

namespace {
constexpr std::align_val_t block_alignment{alignof(std::max_align_t)};
}

op_pool::~op_pool() {
    for (auto*& head : free_)
        while (head) ::operator delete(std::exchange(head, head->next), block_alignment);
    for (auto*& head : large_free_)
        while (head) ::operator delete(std::exchange(head, head->next), block_alignment);
}

int op_pool::size_class(std::size_t size) noexcept {
    for (std::size_t i = 0; i < class_sizes.size(); ++i)
        if (size <= class_sizes[i]) return static_cast<int>(i);
    return -1;
}

int op_pool::large_class(std::size_t size) noexcept {
    for (std::size_t i = 0; i < large_classes; ++i)
        if (size <= large_size(static_cast<int>(i))) return static_cast<int>(i);
    return -1;
}

void* op_pool::allocate(std::size_t size) {
    if (const int c = size_class(size); c >= 0) {
        {
            std::lock_guard lock(mutex_);
            if (free_block* b = free_[c]) {
                free_[c] = b->next;
                --cached_[c];
                return b;
            }
        }
        return ::operator new(class_sizes[c], block_alignment);
    }
    const int c = large_class(size);
    if (c < 0) return ::operator new(size, block_alignment);
    {
        std::lock_guard lock(mutex_);
        if (free_block* b = large_free_[c]) {
            large_free_[c] = b->next;
            large_cached_bytes_ -= large_size(c);
            return b;
        }
    }
    return ::operator new(large_size(c), block_alignment);
}

void op_pool::deallocate(void* p, std::size_t size) noexcept {
    if (const int c = size_class(size); c >= 0) {
        std::lock_guard lock(mutex_);
        if (cached_[c] < max_cached_per_class) {
            free_[c] = ::new (p) free_block{free_[c]};
            ++cached_[c];
            return;
        }
    } else if (const int l = large_class(size); l >= 0) {
        std::lock_guard lock(mutex_);
        if (large_cached_bytes_ + large_size(l) <= max_large_cached_bytes) {
            large_free_[l] = ::new (p) free_block{large_free_[l]};
            large_cached_bytes_ += large_size(l);
            return;
        }
    }
    ::operator delete(p, block_alignment);
}

} // namespace kcoro::detail
