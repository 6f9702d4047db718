// Membership records signed with a node's TLS key and checked with the certificate of the member
// they are about, itself checked against the cluster CA (issue 17: a node writes only its own
// membership record). ECDSA or whatever the key is, over SHA-256.
#include "CGateMeshOpenSSL.h"
#include "der.h"
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <string.h>

copenssl_key *copenssl_key_private(const char *key_pem) {
    BIO *b = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ERR_clear_error();
    return (copenssl_key *)key;
}

void copenssl_key_free(copenssl_key *key) { EVP_PKEY_free((EVP_PKEY *)key); }

int copenssl_key_sign(copenssl_key *key, const void *data, size_t len, unsigned char *sig, size_t cap) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = cap;
    int ok = md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, (EVP_PKEY *)key) == 1
        && EVP_DigestSign(md, sig, &n, data, len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok ? (int)n : -1;
}

int copenssl_key_verify(copenssl_key *key, const void *data, size_t len, const unsigned char *sig, size_t sig_len) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, (EVP_PKEY *)key) == 1
        && EVP_DigestVerify(md, sig, sig_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

copenssl_trust *copenssl_trust_new(const char *ca_pem) {
    X509_STORE *store = X509_STORE_new();
    BIO *b = BIO_new_mem_buf(ca_pem, -1);
    X509 *ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int ok = store != NULL && ca != NULL && X509_STORE_add_cert(store, ca) == 1;
    X509_free(ca);
    ERR_clear_error();
    if (!ok) { X509_STORE_free(store); return NULL; }
    return (copenssl_trust *)store;
}

void copenssl_trust_free(copenssl_trust *trust) { X509_STORE_free((X509_STORE *)trust); }

copenssl_key *copenssl_trust_check(copenssl_trust *trust, const unsigned char *der, size_t len, char *name, size_t name_cap) {
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    if (cert == NULL || p != der + len) { X509_free(cert); ERR_clear_error(); return NULL; }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = ctx != NULL && X509_STORE_CTX_init(ctx, (X509_STORE *)trust, cert, NULL) == 1
        && X509_verify_cert(ctx) == 1
        && X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, (int)name_cap) > 0;
    X509_STORE_CTX_free(ctx);
    EVP_PKEY *key = ok ? X509_get_pubkey(cert) : NULL;
    X509_free(cert);
    ERR_clear_error();
    return (copenssl_key *)key;
}

int copenssl_cert_der(const char *cert_pem, unsigned char *out, size_t cap) {
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    int n = copenssl_der_into(cert, out, cap);
    X509_free(cert);
    ERR_clear_error();
    return n;
}
