#include "client_registry.hpp"

#include <algorithm>

namespace kcoro::detail {

void client_registry::add(std::weak_ptr<registered_client> client) {
    std::lock_guard lock(mutex_);
    // Forget clients that are gone, so a long-lived context does not accumulate them.
    std::erase_if(clients_, [](const auto& c) { return c.expired(); });
    clients_.push_back(std::move(client));
}

void client_registry::shutdown() {
    std::vector<std::weak_ptr<registered_client>> clients;
    {
        std::lock_guard lock(mutex_);
        clients.swap(clients_);
    }
    for (auto& weak : clients)
        if (auto client = weak.lock()) client->on_context_shutdown();
}

} // namespace kcoro::detail
