// A TLS 1.3 endpoint on memory BIOs: the caller moves bytes between it and a socket (or another
// engine, in tests). Both sides present certificates and verify the other's against the cluster
// CA; nothing here touches a file descriptor.
#include "CGateMeshOpenSSL.h"
#include "der.h"
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

struct copenssl_tls {
    SSL *ssl;
    BIO *in;
    BIO *out;
};

static void tls_error(SSL *ssl, char *err, size_t err_len, const char *what) {
    if (err == NULL || err_len == 0) return;
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_get_error();
    char reason[200] = "";
    if (e != 0) ERR_error_string_n(e, reason, sizeof reason);
    if (verify != X509_V_OK) {
        snprintf(err, err_len, "%s: certificate verification failed: %s%s%s", what, X509_verify_cert_error_string(verify),
                 reason[0] ? "; " : "", reason);
    } else {
        snprintf(err, err_len, "%s%s%s", what, reason[0] ? ": " : "", reason);
    }
    ERR_clear_error();
}

copenssl_tls_ctx *copenssl_tls_ctx_new(int is_server, const char *ca_pem, const char *cert_pem, const char *key_pem,
                                       char *err, size_t err_len) {
    SSL_CTX *ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) { tls_error(NULL, err, err_len, "cannot create a TLS context"); return NULL; }
    int ok = SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
    // The cluster CA is the only trust anchor.
    BIO *b = ok ? BIO_new_mem_buf(ca_pem, -1) : NULL;
    X509 *ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ok = ok && ca != NULL && X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) == 1;
    X509_free(ca);
    if (!ok) { tls_error(NULL, err, err_len, "cannot load the cluster CA certificate"); SSL_CTX_free(ctx); return NULL; }
    if (cert_pem == NULL || cert_pem[0] == 0) {
        // No certificate of our own (only tests build such a context: a peer must refuse it).
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        return (copenssl_tls_ctx *)ctx;
    }
    b = BIO_new_mem_buf(cert_pem, -1);
    X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ok = cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) { tls_error(NULL, err, err_len, "cannot load the node certificate and key"); SSL_CTX_free(ctx); return NULL; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 2);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (is_server) SSL_CTX_set_num_tickets(ctx, 0);
    return (copenssl_tls_ctx *)ctx;
}

void copenssl_tls_ctx_free(copenssl_tls_ctx *ctx) { SSL_CTX_free((SSL_CTX *)ctx); }

copenssl_tls *copenssl_tls_new(copenssl_tls_ctx *ctx, int is_server) {
    copenssl_tls *t = OPENSSL_zalloc(sizeof *t);
    if (t == NULL) return NULL;
    t->ssl = SSL_new((SSL_CTX *)ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        OPENSSL_free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->in, -1);
    SSL_set_bio(t->ssl, t->in, t->out);  // the SSL owns both BIOs now
    if (is_server) SSL_set_accept_state(t->ssl); else SSL_set_connect_state(t->ssl);
    return t;
}

void copenssl_tls_free(copenssl_tls *t) {
    if (t == NULL) return;
    SSL_free(t->ssl);
    OPENSSL_free(t);
}

int copenssl_tls_feed(copenssl_tls *t, const void *data, size_t len) {
    if (len == 0) return 0;
    return BIO_write(t->in, data, (int)len);
}

int copenssl_tls_handshake(copenssl_tls *t, char *err, size_t err_len) {
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { ERR_clear_error(); return 0; }
    tls_error(t->ssl, err, err_len, "TLS handshake failed");
    return -1;
}

int copenssl_tls_read(copenssl_tls *t, void *buf, size_t cap, char *err, size_t err_len) {
    size_t n = 0;
    int r = SSL_read_ex(t->ssl, buf, cap, &n);
    if (r == 1) return (int)n;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { ERR_clear_error(); return 0; }
    if (e == SSL_ERROR_ZERO_RETURN) { ERR_clear_error(); return -2; }
    tls_error(t->ssl, err, err_len, "TLS read failed");
    return -1;
}

int copenssl_tls_write(copenssl_tls *t, const void *buf, size_t len, char *err, size_t err_len) {
    size_t n = 0;
    int r = SSL_write_ex(t->ssl, buf, len, &n);
    if (r == 1) return (int)n;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { ERR_clear_error(); return 0; }
    tls_error(t->ssl, err, err_len, "TLS write failed");
    return -1;
}

int copenssl_tls_drain(copenssl_tls *t, void *buf, size_t cap) {
    if (BIO_ctrl_pending(t->out) == 0) return 0;
    int n = BIO_read(t->out, buf, (int)cap);
    return n > 0 ? n : 0;
}

size_t copenssl_tls_pending_out(copenssl_tls *t) { return BIO_ctrl_pending(t->out); }

int copenssl_tls_close(copenssl_tls *t) { return SSL_shutdown(t->ssl) >= 0; }

int copenssl_tls_peer_name(copenssl_tls *t, char *buf, size_t cap) {
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    if (peer == NULL) return -1;
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, (int)cap);
    X509_free(peer);
    return n;
}

int copenssl_tls_peer_certificate(copenssl_tls *t, unsigned char *out, size_t cap) {
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    int n = copenssl_der_into(peer, out, cap);
    X509_free(peer);
    return n;
}
