// The errors with which a broker turns a client away: a failed SASL authentication or
// TLS handshake.
#pragma once

#include <kcoro/error.hpp>

namespace kcoro::detail {

/// librdkafka 2.0 treats a refusal as transient and reconnects for ever, so what waits on
/// the cluster would end only at its timeout, as "timed out". Wrong credentials or an
/// untrusted certificate rarely fix themselves: each client fails what is outstanding at
/// once, with the reason, and keeps reconnecting.
inline bool is_refusal(const error_code& ec) noexcept {
    return ec == errc::authentication || ec == errc::ssl || ec == errc::sasl_authentication_failed;
}

} // namespace kcoro::detail
