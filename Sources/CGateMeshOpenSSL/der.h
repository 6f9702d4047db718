// Private to this target: a certificate's DER form into a caller's buffer.
#ifndef CGATEMESH_OPENSSL_DER_H
#define CGATEMESH_OPENSSL_DER_H

#include <openssl/x509.h>
#include <stddef.h>

/// The DER form of `cert` into `out`: its length, or -1 when there is no certificate or it does
/// not fit in `cap` bytes.
static inline int copenssl_der_into(X509 *cert, unsigned char *out, size_t cap) {
    int n = cert ? i2d_X509(cert, NULL) : -1;
    if (n <= 0 || (size_t)n > cap) return -1;
    unsigned char *p = out;
    return i2d_X509(cert, &p);
}

#endif
