// The consumer's local buffer: fetched messages (and consumer errors) that no pending
// receive has taken yet. A ring over one allocation, so steady consuming allocates nothing;
// it grows only when cancelled batches hand their messages back beyond its capacity. The
// capacity is a power of two: an index wraps with a mask, not a division (two per message).
#pragma once

#include <kcoro/error.hpp>
#include <kcoro/message.hpp>

#include <bit>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace kcoro::detail {

struct buffered_error {
    error_code ec;
    std::string context; ///< what the error is about ("topic 't' partition 0")
};

struct buffered {
    message msg;                           ///< empty for an error
    std::unique_ptr<buffered_error> error; ///< set for an error: rare, so kept out of the ring
};

class consumer_buffer {
public:
    explicit consumer_buffer(std::size_t capacity) : slots_(std::bit_ceil(capacity < 1 ? std::size_t{1} : capacity)) {}

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    std::size_t capacity() const noexcept { return slots_.size(); }

    buffered& front() noexcept { return slots_[head_]; }
    buffered& back() noexcept { return slots_[wrap(head_ + size_ - 1)]; }

    void push_back(buffered&& b) {
        if (size_ == slots_.size()) grow();
        slots_[wrap(head_ + size_)] = std::move(b);
        ++size_;
    }

    void push_front(buffered&& b) {
        if (size_ == slots_.size()) grow();
        head_ = wrap(head_ + slots_.size() - 1);
        slots_[head_] = std::move(b);
        ++size_;
    }

    /// Drops the front entry once its contents have been moved out (nothing to destroy).
    void drop_front() noexcept {
        head_ = wrap(head_ + 1);
        --size_;
    }

    buffered pop_front() {
        buffered out = std::move(front()); // leaves the slot empty
        drop_front();
        return out;
    }

    /// Removes the entries for which `drop` is true, keeping the order of the rest;
    /// the removed ones are appended to `removed` (destroyed by the caller, outside locks).
    /// Out of memory, it throws before changing anything.
    template <class Pred>
    void remove_if(Pred drop, std::vector<buffered>& removed) {
        std::size_t dropping = 0;
        for_each([&](const buffered& b) { dropping += drop(b) ? 1 : 0; });
        removed.reserve(removed.size() + dropping);
        const std::size_t n = size_;
        for (std::size_t i = 0; i < n; ++i) {
            buffered b = pop_front();
            if (drop(b))
                removed.push_back(std::move(b));
            else
                push_back(std::move(b));
        }
    }

    template <class F>
    void for_each(F f) const {
        for (std::size_t i = 0; i < size_; ++i) f(slots_[wrap(head_ + i)]);
    }

    void clear(std::vector<buffered>& removed) {
        removed.reserve(removed.size() + size_); // out of memory: throws before changing anything
        while (size_) removed.push_back(pop_front());
    }

private:
    std::size_t wrap(std::size_t i) const noexcept { return i & (slots_.size() - 1); }

    void grow() {
        std::vector<buffered> bigger(slots_.size() * 2);
        for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[wrap(head_ + i)]);
        slots_.swap(bigger);
        head_ = 0;
    }

    std::vector<buffered> slots_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

} // namespace kcoro::detail
