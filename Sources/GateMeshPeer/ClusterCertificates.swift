import CGateMeshOpenSSL

/// A certificate and its private key, PEM-encoded.
public struct CertificateAndKey: Sendable, Equatable {
    public var certificatePEM: String
    public var keyPEM: String
    public init(certificatePEM: String, keyPEM: String) {
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
    }
}

public struct CertificateError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The cluster's certificates, made with OpenSSL's libraries: a CA, and node certificates it signs
/// for both ends of a peer connection (serverAuth and clientAuth), P-256 keys, SHA-256 signatures.
public enum ClusterCertificates {
    /// A new cluster CA, valid from `notBeforeOffset` seconds from now (negative: in the past) for
    /// `validSeconds`.
    public static func makeCA(commonName: String = "GateMesh cluster CA", notBeforeOffset: Int = -300,
                              validSeconds: Int = 10 * 365 * 86_400) throws(CertificateError) -> CertificateAndKey {
        var cert: UnsafeMutablePointer<CChar>?
        var key: UnsafeMutablePointer<CChar>?
        var err = [CChar](repeating: 0, count: 512)
        guard copenssl_ca_create(commonName, notBeforeOffset, validSeconds, &cert, &key, &err, err.count) == 1, let cert, let key else {
            throw CertificateError(message: String(cString: err))
        }
        defer {
            copenssl_free(cert)
            copenssl_free(key)
        }
        return CertificateAndKey(certificatePEM: String(cString: cert), keyPEM: String(cString: key))
    }

    /// A node certificate for `name`, with `hosts` (DNS names or IP addresses) as subject
    /// alternative names besides the name itself.
    public static func issue(name: String, hosts: [String] = [], ca: CertificateAndKey, notBeforeOffset: Int = -300,
                             validSeconds: Int = 2 * 365 * 86_400) throws(CertificateError) -> CertificateAndKey {
        var names = ["DNS:\(name)"]
        for host in hosts where !host.isEmpty {
            names.append(Self.isIPAddress(host) ? "IP:\(host)" : "DNS:\(host)")
        }
        guard !name.isEmpty, !(names + [name]).contains(where: { $0.contains(",") }) else {
            throw CertificateError(message: "a node certificate needs a name, and names and hosts cannot contain commas")
        }
        var cert: UnsafeMutablePointer<CChar>?
        var key: UnsafeMutablePointer<CChar>?
        var err = [CChar](repeating: 0, count: 512)
        guard copenssl_cert_issue(ca.certificatePEM, ca.keyPEM, name, names.joined(separator: ","), notBeforeOffset, validSeconds,
                                  &cert, &key, &err, err.count) == 1, let cert, let key else {
            throw CertificateError(message: String(cString: err))
        }
        defer {
            copenssl_free(cert)
            copenssl_free(key)
        }
        return CertificateAndKey(certificatePEM: String(cString: cert), keyPEM: String(cString: key))
    }

    /// An IPv4 dotted quad, or an IPv6 address (anything with a colon made of hex digits).
    static func isIPAddress(_ host: String) -> Bool {
        if host.contains(":") { return host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }
    }

    /// The common name and end of validity (Unix seconds) of a PEM certificate.
    public static func describe(_ pem: String) -> (commonName: String, notAfter: Int)? {
        var subject = [CChar](repeating: 0, count: 256)
        var notAfter = 0
        guard copenssl_cert_describe(pem, &subject, subject.count, &notAfter) == 1 else { return nil }
        return (String(cString: subject), notAfter)
    }
}
