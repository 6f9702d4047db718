#include "CGateMeshOpenSSL.h"
#include <openssl/ssl.h>
#include <openssl/crypto.h>

const char *copenssl_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
unsigned long copenssl_version_number(void) { return OpenSSL_version_num(); }
int copenssl_supports_tls13(void) {
#ifdef TLS1_3_VERSION
    return 1;
#else
    return 0;
#endif
}
