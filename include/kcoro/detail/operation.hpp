// kcoro internals: the type-erased state of a pending send, as the compiled core sees it.
//
// A send_op lives from initiation until librdkafka's delivery report for the record
// (or until it fails before being enqueued). Its memory comes from the producer's
// recycling pool (or from the handler's associated allocator when it has its own), so a
// steady stream of sends allocates nothing. The handler is completed at most once:
// either by the delivery report, or earlier by cancellation (after which the memory
// still waits for the delivery report, because librdkafka holds a pointer to it).
#pragma once

#include <kcoro/error.hpp>
#include <kcoro/record.hpp>
#include <kcoro/record_metadata.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace kcoro::detail {

class send_op {
public:
    enum class state : std::uint8_t {
        waiting_for_room, ///< not yet accepted by librdkafka (local queue full)
        in_flight,        ///< accepted; its delivery report is pending
        abandoned         ///< cancelled after acceptance: the handler has been completed
    };

    /// Where the record's bytes come from. They stay valid until completion (the
    /// caller's obligation, as for Asio buffers).
    const record* owned = nullptr;
    const record_view* view = nullptr;

    send_op* next = nullptr; ///< link in the producer's list of sends waiting for room
    /// The batch this op belongs to (nullptr for single sends): cancelling a batch
    /// unlinks all of its ops that wait for room.
    const void* group = nullptr;
    std::atomic<state> status{state::in_flight};
    /// False for enqueue(): once accepted, cancellation no longer applies to the op
    /// (the delivery has its own wait, cancelled separately).
    bool cancellable_in_flight = true;
    /// Set just before the record is handed to librdkafka, reset if it was refused: a
    /// completion with it set is a delivery report, without it a failure to enqueue.
    bool enqueued = false;

    /// Called once librdkafka has accepted the record, on the thread that enqueued it
    /// (nullptr: nothing to do). `may_run_inline` as for complete().
    void accepted(bool may_run_inline) {
        if (accepted_fn_) accepted_fn_(this, may_run_inline);
    }

    /// Completes the handler with (ec, md) and frees the op. `may_run_inline`: the
    /// caller runs on the producer's executor outside any initiating function, so a
    /// handler bound to that executor may be invoked directly.
    void complete(error_code ec, const record_metadata& md, bool may_run_inline) {
        complete_fn_(this, ec, md, may_run_inline, true);
    }

    /// Completes the handler (never inline) but keeps the memory: the delivery report
    /// for this op is still to come and will call release().
    void complete_early(error_code ec, const record_metadata& md) {
        complete_fn_(this, ec, md, false, false);
    }

    /// Frees the op without completing the handler (it was completed early, or the
    /// whole client is being torn down without an executor to complete on).
    void release() { release_fn_(this); }

protected:
    using complete_fn = void (*)(send_op*, error_code, const record_metadata&, bool, bool);
    using release_fn = void (*)(send_op*);
    using accepted_fn = void (*)(send_op*, bool);

    send_op(complete_fn c, release_fn r, accepted_fn a = nullptr) noexcept
        : complete_fn_(c), release_fn_(r), accepted_fn_(a) {}
    ~send_op() = default;

private:
    complete_fn complete_fn_;
    release_fn release_fn_;
    accepted_fn accepted_fn_;
};

} // namespace kcoro::detail
