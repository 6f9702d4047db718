#include "CGateMeshOpenSSL.h"
#include <openssl/ssl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

int copenssl_init_without_exit_cleanup(void) {
    return OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, NULL) == 1 ? 1 : 0;
}

const char *copenssl_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
unsigned long copenssl_version_number(void) { return OpenSSL_version_num(); }
int copenssl_supports_tls13(void) {
#ifdef TLS1_3_VERSION
    return 1;
#else
    return 0;
#endif
}

int copenssl_hmac_sha256(const void *key, size_t key_length, const void *data, size_t data_length, unsigned char *out) {
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key, (int)key_length, data, data_length, out, &length) == NULL) return 0;
    return length == 32;
}

int copenssl_sha256(const void *data, size_t data_length, unsigned char *out) {
    unsigned int length = 0;
    if (EVP_Digest(data, data_length, out, &length, EVP_sha256(), NULL) != 1) return 0;
    return length == 32;
}
