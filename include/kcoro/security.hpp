// kcoro: typed helpers for connecting to a secured cluster (TLS, SASL).
//
// They only set librdkafka's own properties on a kcoro::config; anything they set can
// equally be written by hand (see README, "Connecting to a secured cluster"):
//
//   kcoro::config c{{"bootstrap.servers", "broker:9094"}};
//   kcoro::security::use_sasl_ssl(c, {.mechanism = "SCRAM-SHA-512", .username = "app",
//                                     .password = read_secret()},
//                                 {.ca_location = "/etc/kafka/ca.pem"});
//
// The password is a config secret (config::is_secret): describe() and the fmt formatter
// print it as "[redacted]", and kcoro's errors never echo it.
#pragma once

#include <kcoro/config.hpp>

#include <string>

namespace kcoro::security {

/// TLS settings (security.protocol SSL or SASL_SSL).
struct tls {
    /// PEM file (or directory) of the CAs that sign the brokers' certificates
    /// ("ssl.ca.location"); empty: the system's default trust store.
    std::string ca_location{};
    /// Check that the broker's certificate names the host connected to
    /// ("ssl.endpoint.identification.algorithm" https). Turn off only for tests.
    bool verify_hostname = true;
};

/// SASL credentials: mechanism "SCRAM-SHA-512", "SCRAM-SHA-256" or "PLAIN".
struct sasl {
    std::string mechanism = "SCRAM-SHA-512";
    std::string username{};
    std::string password{};
};

namespace detail {
inline void set_tls(config& c, const tls& t) {
    if (!t.ca_location.empty()) c.set("ssl.ca.location", t.ca_location);
    c.set("ssl.endpoint.identification.algorithm", t.verify_hostname ? "https" : "none");
}
inline void set_sasl(config& c, const sasl& s) {
    c.set("sasl.mechanism", s.mechanism);
    c.set("sasl.username", s.username);
    c.set("sasl.password", s.password);
}
} // namespace detail

/// TLS without client authentication: security.protocol=SSL.
inline config& use_ssl(config& c, const tls& t = {}) {
    c.set("security.protocol", "SSL");
    detail::set_tls(c, t);
    return c;
}

/// SASL over plain TCP: security.protocol=SASL_PLAINTEXT (PLAIN then sends the password
/// in clear text: use it on trusted networks only).
inline config& use_sasl_plaintext(config& c, const sasl& s) {
    c.set("security.protocol", "SASL_PLAINTEXT");
    detail::set_sasl(c, s);
    return c;
}

/// SASL over TLS: security.protocol=SASL_SSL.
inline config& use_sasl_ssl(config& c, const sasl& s, const tls& t = {}) {
    c.set("security.protocol", "SASL_SSL");
    detail::set_sasl(c, s);
    detail::set_tls(c, t);
    return c;
}

} // namespace kcoro::security
