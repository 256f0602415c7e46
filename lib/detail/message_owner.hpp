// kcoro: what keeps a consumer's librdkafka client alive while its messages are.
#pragma once

#include <atomic>
#include <cstddef>

namespace kcoro::detail {

/// Counts one per message alive plus one for all other owners together: a drain turn takes
/// its messages' counts in one atomic add instead of a shared_ptr copy per message. Whoever
/// releases the last count destroys it.
class message_owner {
public:
    message_owner() = default;
    message_owner(const message_owner&) = delete;
    message_owner& operator=(const message_owner&) = delete;

    /// Counts for `n` messages about to be made; only while holding a count already.
    void add_messages(std::size_t n) noexcept { count_.fetch_add(n, std::memory_order_relaxed); }
    /// Gives back one count (a message's, or the other owners'), destroying it at the last.
    void release() noexcept {
        if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

protected:
    virtual ~message_owner() = default;

private:
    std::atomic<std::size_t> count_{1};
};

} // namespace kcoro::detail
