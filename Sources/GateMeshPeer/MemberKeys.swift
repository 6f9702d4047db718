import CGateMeshOpenSSL
import GateMeshCluster
import Synchronization

/// This node's signing key and the certificates of the members it knows, for signed membership
/// records: a node signs its own record (name, address, id, incarnation…) with the key of its TLS
/// certificate, and a record about a member is believed only with that member's signature, checked
/// with a certificate the cluster CA signed for that name. A peer with a valid certificate can
/// then pass records on but not write them.
///
/// Certificates are learned from TLS handshakes and from `certificates` frames, each checked here
/// against the CA (and valid now); one per member name, the last learned. They are kept for as
/// long as the node runs: only the cluster CA makes them, one per node it issued a name for.
///
/// Its bounds are the wire's: a certificate up to `CertificatesCodec.maxCertificateBytes` (a node
/// certificate is about 600 bytes), a signature up to `MembershipCodec.maxSignature`.
public final class MemberKeys: RecordSigner {
    final class Key: @unchecked Sendable {
        let raw: OpaquePointer
        init(_ raw: OpaquePointer) { self.raw = raw }
        deinit { copenssl_key_free(raw) }
    }

    final class Trust: @unchecked Sendable {
        let raw: OpaquePointer
        init(_ raw: OpaquePointer) { self.raw = raw }
        deinit { copenssl_trust_free(raw) }
    }

    /// The name on this node's certificate.
    public let name: String
    /// This node's certificate (DER), handed to peers that ask for it.
    public let certificate: [UInt8]
    private let signingKey: Key
    private let trust: Trust
    private let known: Mutex<[String: (certificate: [UInt8], key: Key)]>

    public init(caPEM: String, certificatePEM: String, keyPEM: String) throws(CertificateError) {
        guard let trust = copenssl_trust_new(caPEM) else { throw CertificateError(message: "cannot read the cluster CA certificate") }
        self.trust = Trust(trust)
        guard let key = copenssl_key_private(keyPEM) else { throw CertificateError(message: "cannot read the node key") }
        signingKey = Key(key)
        var der = [UInt8](repeating: 0, count: CertificatesCodec.maxCertificateBytes)
        let n = copenssl_cert_der(certificatePEM, &der, der.count)
        guard n > 0 else { throw CertificateError(message: "cannot read the node certificate") }
        certificate = Array(der[0..<Int(n)])
        known = Mutex([:])
        guard let mine = Self.checked(certificate, trust: self.trust) else {
            throw CertificateError(message: "the node certificate is not signed by the cluster CA, or is not valid now")
        }
        name = mine.name
        known.withLock { $0[mine.name] = (certificate, mine.key) }
        // A key that is not the certificate's would sign records no peer can check.
        let probe: [UInt8] = Array("gatemesh key check".utf8)
        guard check(probe, signature: sign(probe), by: name) == .valid else {
            throw CertificateError(message: "the node key does not belong to the node certificate")
        }
    }

    /// This node's signature of `record`.
    public func sign(_ record: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: MembershipCodec.maxSignature)
        let n = record.withUnsafeBytes { copenssl_key_sign(signingKey.raw, $0.baseAddress, $0.count, &sig, sig.count) }
        return n > 0 ? Array(sig[0..<Int(n)]) : []
    }

    /// Whether `signature` is `member`'s signature of `record`: `invalid` when it is not the
    /// signature of the certificate held for that member (forged, or made with a newer key than
    /// the certificate held), `unknownSigner` when none is held.
    public func check(_ record: [UInt8], signature: [UInt8], by member: String) -> RecordCheck {
        guard let key = known.withLock({ $0[member]?.key }) else { return .unknownSigner }
        guard !signature.isEmpty, signature.count <= MembershipCodec.maxSignature else { return .invalid }
        let ok = record.withUnsafeBytes { r in
            signature.withUnsafeBytes { s in
                copenssl_key_verify(key.raw, r.baseAddress, r.count, s.baseAddress?.assumingMemoryBound(to: UInt8.self), s.count)
            }
        }
        return ok == 1 ? .valid : .invalid
    }

    /// Keeps a certificate (DER) the cluster CA signed and that is valid now; its name, or nil
    /// when it is not one. A certificate for a name replaces the one held.
    @discardableResult
    public func learn(_ der: [UInt8]) -> String? {
        guard der.count <= CertificatesCodec.maxCertificateBytes, let c = Self.checked(der, trust: trust) else { return nil }
        known.withLock { $0[c.name] = (der, c.key) }
        return c.name
    }

    /// The certificate held for `member`.
    public func certificate(of member: String) -> [UInt8]? { known.withLock { $0[member]?.certificate } }

    private static func checked(_ der: [UInt8], trust: Trust) -> (name: String, key: Key)? {
        var name = [CChar](repeating: 0, count: 256)
        let key = der.withUnsafeBufferPointer { copenssl_trust_check(trust.raw, $0.baseAddress, $0.count, &name, name.count) }
        guard let key else { return nil }
        return (String(cString: name), Key(key))
    }
}
