// An execution_context service that knows every live kcoro client of its context.
//
// Clients finish in the background (closing, destroying librdkafka on a worker thread)
// and post their results back to the executor. When the io_context itself is shut down
// (destroyed) first, this service stops that background work before the context's
// scheduler goes away: pending handlers are destroyed, as Asio does with its own.
#pragma once

#include <boost/asio/execution_context.hpp>

#include <memory>
#include <mutex>
#include <vector>

namespace kcoro::detail {

class registered_client {
public:
    /// The execution context is shutting down: stop background work now, never touch
    /// the executor again, and complete nothing.
    virtual void on_context_shutdown() noexcept = 0;

protected:
    ~registered_client() = default;
};

class client_registry final : public boost::asio::execution_context::service {
public:
    using key_type = client_registry;
    static inline boost::asio::execution_context::id id;

    explicit client_registry(boost::asio::execution_context& context) : service(context) {}

    void add(std::weak_ptr<registered_client> client);

private:
    void shutdown() override;

    std::mutex mutex_;
    std::vector<std::weak_ptr<registered_client>> clients_;
};

} // namespace kcoro::detail
