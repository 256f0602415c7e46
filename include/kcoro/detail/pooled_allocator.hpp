// kcoro internals: a standard allocator over a recycling pool.
#pragma once

#include <cstddef>

namespace kcoro::detail {

/// A standard allocator over `Owner`'s recycling pool, reached through
/// allocate_op(Owner&, size) and deallocate_op(Owner&, p, size), found by argument-dependent
/// lookup. For the handlers kcoro hands to Asio itself: Asio allocates their operations
/// through the handler's associated allocator, and its own per-thread cache (two blocks per
/// kind) misses whenever sizes interleave.
template <class T, class Owner>
class pooled_allocator {
public:
    using value_type = T;

    explicit pooled_allocator(Owner& owner) noexcept : owner_(&owner) {}
    template <class U>
    pooled_allocator(const pooled_allocator<U, Owner>& other) noexcept : owner_(other.owner_) {}

    T* allocate(std::size_t n) { return static_cast<T*>(allocate_op(*owner_, n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { deallocate_op(*owner_, p, n * sizeof(T)); }

    template <class U>
    bool operator==(const pooled_allocator<U, Owner>& other) const noexcept {
        return owner_ == other.owner_;
    }

private:
    template <class U, class O>
    friend class pooled_allocator;
    Owner* owner_;
};

} // namespace kcoro::detail
