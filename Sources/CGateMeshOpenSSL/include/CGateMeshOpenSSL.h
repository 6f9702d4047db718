#ifndef CGATEMESH_OPENSSL_H
#define CGATEMESH_OPENSSL_H

#include <stddef.h>

// `copenssl_`-prefixed wrappers around OpenSSL (libssl, libcrypto) for Swift: OpenSSL's
// macros and variadic calls do not import. The peer transport (cluster issue) grows this;
// for now it reports the linked library so the node can log and check it at start-up.

/// The OpenSSL version text, e.g. "OpenSSL 3.0.19 1 Jul 2025".
const char *copenssl_version(void);
/// The OpenSSL version number (OPENSSL_VERSION_NUMBER of the linked library).
unsigned long copenssl_version_number(void);
/// Non-zero when the linked OpenSSL can negotiate TLS 1.3, which the peer transport requires.
int copenssl_supports_tls13(void);

/// HMAC-SHA256 of `data` under `key` into `out` (32 bytes). Returns 1 on success, 0 on failure.
int copenssl_hmac_sha256(const void *key, size_t key_length, const void *data, size_t data_length, unsigned char *out);

/// SHA-256 of `data` into `out` (32 bytes). Returns 1 on success, 0 on failure.
int copenssl_sha256(const void *data, size_t data_length, unsigned char *out);

#endif
