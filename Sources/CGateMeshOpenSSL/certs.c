// Cluster certificates: a self-signed CA and node certificates it signs, P-256 keys, PEM in and
// out. Everything through libcrypto; no shell-out to the openssl command.
#include "CGateMeshOpenSSL.h"
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

void copenssl_free(void *p) { OPENSSL_free(p); }

static void set_error(char *err, size_t err_len, const char *what) {
    if (err == NULL || err_len == 0) return;
    unsigned long e = ERR_get_error();
    if (e != 0) {
        char reason[200];
        ERR_error_string_n(e, reason, sizeof reason);
        snprintf(err, err_len, "%s: %s", what, reason);
    } else {
        snprintf(err, err_len, "%s", what);
    }
    ERR_clear_error();
}

static char *bio_to_string(BIO *bio) {
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0) return NULL;
    char *out = OPENSSL_malloc((size_t)n + 1);
    if (out == NULL) return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = 0;
    return out;
}

static int pem_outputs(X509 *cert, EVP_PKEY *key, char **cert_pem, char **key_pem) {
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    int ok = cb && kb && PEM_write_bio_X509(cb, cert) == 1 && PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) == 1;
    if (ok) {
        *cert_pem = bio_to_string(cb);
        *key_pem = bio_to_string(kb);
        ok = *cert_pem != NULL && *key_pem != NULL;
    }
    BIO_free(cb);
    BIO_free(kb);
    return ok;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) return 0;
    int ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

static X509 *new_cert(EVP_PKEY *key, const char *common_name, long not_before_offset_s, long valid_seconds) {
    X509 *cert = X509_new();
    if (cert == NULL) return NULL;
    unsigned char serial_bytes[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    int ok = X509_set_version(cert, 2) == 1 && RAND_bytes(serial_bytes, sizeof serial_bytes) == 1;
    if (ok) {
        serial_bytes[0] &= 0x7F;  // positive
        bn = BN_bin2bn(serial_bytes, sizeof serial_bytes, NULL);
        serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
        ok = serial && X509_set_serialNumber(cert, serial) == 1;
    }
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), not_before_offset_s) != NULL
            && X509_gmtime_adj(X509_getm_notAfter(cert), not_before_offset_s + valid_seconds) != NULL
            && X509_set_pubkey(cert, key) == 1;
    X509_NAME *name = X509_get_subject_name(cert);
    ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"GateMesh cluster", -1, -1, 0) == 1
            && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) == 1;
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    if (!ok) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

int copenssl_ca_create(const char *common_name, long not_before_offset_s, long valid_seconds,
                       char **cert_pem, char **key_pem, char *err, size_t err_len) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL) { set_error(err, err_len, "cannot generate a P-256 key"); return 0; }
    X509 *cert = new_cert(key, common_name, not_before_offset_s, valid_seconds);
    int ok = cert != NULL
        && X509_set_issuer_name(cert, X509_get_subject_name(cert)) == 1
        && add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")
        && add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign")
        && add_ext(cert, cert, NID_subject_key_identifier, "hash")
        && X509_sign(cert, key, EVP_sha256()) > 0
        && pem_outputs(cert, key, cert_pem, key_pem);
    if (!ok) set_error(err, err_len, "cannot create the CA certificate");
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
}

static X509 *read_cert(const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return cert;
}

static EVP_PKEY *read_key(const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return key;
}

int copenssl_cert_issue(const char *ca_cert_pem, const char *ca_key_pem, const char *common_name, const char *san,
                        long not_before_offset_s, long valid_seconds, char **cert_pem, char **key_pem, char *err, size_t err_len) {
    X509 *ca = read_cert(ca_cert_pem);
    EVP_PKEY *ca_key = read_key(ca_key_pem);
    if (ca == NULL || ca_key == NULL) {
        set_error(err, err_len, "cannot read the CA certificate or key");
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        return 0;
    }
    if (X509_check_private_key(ca, ca_key) != 1) {
        set_error(err, err_len, "the CA key does not belong to the CA certificate");
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        return 0;
    }
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key ? new_cert(key, common_name, not_before_offset_s, valid_seconds) : NULL;
    int ok = cert != NULL
        && X509_set_issuer_name(cert, X509_get_subject_name(ca)) == 1
        && add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE")
        && add_ext(cert, ca, NID_key_usage, "critical,digitalSignature")
        && add_ext(cert, ca, NID_ext_key_usage, "serverAuth,clientAuth")
        && add_ext(cert, ca, NID_authority_key_identifier, "keyid:always")
        && (san == NULL || san[0] == 0 || add_ext(cert, ca, NID_subject_alt_name, san))
        && X509_sign(cert, ca_key, EVP_sha256()) > 0
        && pem_outputs(cert, key, cert_pem, key_pem);
    if (!ok) set_error(err, err_len, "cannot issue the node certificate");
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return ok;
}

int copenssl_cert_describe(const char *cert_pem, char *subject, size_t subject_len, long *not_after_unix) {
    X509 *cert = read_cert(cert_pem);
    if (cert == NULL) return 0;
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, subject, (int)subject_len);
    struct tm tm;
    int ok = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1;
    if (ok && not_after_unix) *not_after_unix = (long)timegm(&tm);
    X509_free(cert);
    return ok;
}
