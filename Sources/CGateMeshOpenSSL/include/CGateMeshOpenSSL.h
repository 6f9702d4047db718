#ifndef CGATEMESH_OPENSSL_H
#define CGATEMESH_OPENSSL_H

#include <stddef.h>

// `copenssl_`-prefixed wrappers around OpenSSL (libssl, libcrypto) for Swift: OpenSSL's
// macros and variadic calls do not import. The peer transport (cluster issue) grows this;
// for now it reports the linked library so the node can log and check it at start-up.

/// The OpenSSL version text, e.g. "OpenSSL 3.0.19 1 Jul 2025".
const char *copenssl_version(void);
/// Initializes OpenSSL without the cleanup it otherwise runs at exit (OPENSSL_INIT_NO_ATEXIT).
/// Only the first initialization of the process decides, so call it before anything else uses
/// OpenSSL (libcurl included). Returns 1 on success.
int copenssl_init_without_exit_cleanup(void);
/// The OpenSSL version number (OPENSSL_VERSION_NUMBER of the linked library).
unsigned long copenssl_version_number(void);
/// Non-zero when the linked OpenSSL can negotiate TLS 1.3, which the peer transport requires.
int copenssl_supports_tls13(void);

/// HMAC-SHA256 of `data` under `key` into `out` (32 bytes). Returns 1 on success, 0 on failure.
int copenssl_hmac_sha256(const void *key, size_t key_length, const void *data, size_t data_length, unsigned char *out);

/// SHA-256 of `data` into `out` (32 bytes). Returns 1 on success, 0 on failure.
int copenssl_sha256(const void *data, size_t data_length, unsigned char *out);

// MARK: Cluster certificates (certs.c). PEM outputs are NUL-terminated and freed with copenssl_free.

void copenssl_free(void *p);
/// A self-signed CA (P-256), valid from now + not_before_offset_s for valid_seconds. 1 on success;
/// on failure 0 and a message in err.
int copenssl_ca_create(const char *common_name, long not_before_offset_s, long valid_seconds,
                       char **cert_pem, char **key_pem, char *err, size_t err_len);
/// A node certificate signed by the CA, for both TLS server and client use. san is an OpenSSL
/// subjectAltName list ("DNS:eu-1,DNS:localhost,IP:127.0.0.1") or empty.
int copenssl_cert_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *common_name, const char *san,
                        long not_before_offset_s, long valid_seconds, char **cert_pem, char **key_pem, char *err, size_t err_len);
/// The subject's common name and the end of validity (Unix seconds) of a PEM certificate.
int copenssl_cert_describe(const char *cert_pem, char *subject, size_t subject_len, long *not_after_unix);

// MARK: TLS 1.3 on memory BIOs (tls.c)

typedef struct copenssl_tls_ctx copenssl_tls_ctx;
typedef struct copenssl_tls copenssl_tls;

/// A context that trusts only ca_pem, presents cert_pem/key_pem and requires the peer's certificate.
copenssl_tls_ctx *copenssl_tls_ctx_new(int is_server, const char *ca_pem, const char *cert_pem, const char *key_pem,
                                       char *err, size_t err_len);
void copenssl_tls_ctx_free(copenssl_tls_ctx *ctx);
copenssl_tls *copenssl_tls_new(copenssl_tls_ctx *ctx, int is_server);
void copenssl_tls_free(copenssl_tls *t);
/// Bytes from the network into the engine. Returns how many were taken.
int copenssl_tls_feed(copenssl_tls *t, const void *data, size_t len);
/// Advances the handshake: 1 done, 0 needs more bytes, -1 failed (message in err).
int copenssl_tls_handshake(copenssl_tls *t, char *err, size_t err_len);
/// Plaintext out: bytes read (>0), 0 none yet, -2 the peer closed, -1 failed.
int copenssl_tls_read(copenssl_tls *t, void *buf, size_t cap, char *err, size_t err_len);
/// Plaintext in: bytes taken (>0), 0 not now, -1 failed.
int copenssl_tls_write(copenssl_tls *t, const void *buf, size_t len, char *err, size_t err_len);
/// Bytes for the network: how many were copied into buf (0 when none).
int copenssl_tls_drain(copenssl_tls *t, void *buf, size_t cap);
size_t copenssl_tls_pending_out(copenssl_tls *t);
/// Queues a close_notify.
int copenssl_tls_close(copenssl_tls *t);
/// The peer certificate's common name; its length, or -1 without one.
int copenssl_tls_peer_name(copenssl_tls *t, char *buf, size_t cap);

// MARK: Signed membership records (records.c)

typedef struct copenssl_key copenssl_key;
typedef struct copenssl_trust copenssl_trust;

/// A private key from PEM (NULL when it is not one).
copenssl_key *copenssl_key_private(const char *key_pem);
void copenssl_key_free(copenssl_key *key);
/// A signature of `data` (SHA-256) into `sig`: its length, or -1.
int copenssl_key_sign(copenssl_key *key, const void *data, size_t len, unsigned char *sig, size_t cap);
/// 1 when `sig` is the key's signature of `data`, else 0.
int copenssl_key_verify(copenssl_key *key, const void *data, size_t len, const unsigned char *sig, size_t sig_len);
/// A store that trusts only the CA in `ca_pem` (NULL when it is not a certificate).
copenssl_trust *copenssl_trust_new(const char *ca_pem);
void copenssl_trust_free(copenssl_trust *trust);
/// The public key of a DER certificate that the CA signed and that is valid now, with its common
/// name written to `name`; NULL when it is not one.
copenssl_key *copenssl_trust_check(copenssl_trust *trust, const unsigned char *der, size_t len, char *name, size_t name_cap);
/// The DER form of a PEM certificate into `out`: its length, or -1.
int copenssl_cert_der(const char *cert_pem, unsigned char *out, size_t cap);
/// The peer's certificate (DER) into `out`: its length, or -1.
int copenssl_tls_peer_certificate(copenssl_tls *t, unsigned char *out, size_t cap);

#endif
