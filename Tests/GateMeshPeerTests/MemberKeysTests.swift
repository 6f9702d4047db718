import Foundation
import GateMeshCluster
import GateMeshPeer
import Testing

/// Signed membership records with real keys: a node signs with its TLS key; a record is checked
/// with the certificate the cluster CA issued for its member, learned from a handshake or a peer.
@Suite struct MemberKeysTests {
    static let ca = try! ClusterCertificates.makeCA()

    func keys(_ name: String, ca: CertificateAndKey = Self.ca) throws -> (MemberKeys, CertificateAndKey) {
        let cert = try ClusterCertificates.issue(name: name, ca: ca)
        return (try MemberKeys(caPEM: Self.ca.certificatePEM, certificatePEM: cert.certificatePEM, keyPEM: cert.keyPEM), cert)
    }

    @Test func aRecordChecksOnlyWithItsMembersCertificate() throws {
        let (a, _) = try keys("a")
        let (b, _) = try keys("b")
        let (c, _) = try keys("c")
        let record: [UInt8] = Array("b at 10.0.0.2:7946, incarnation 7".utf8)
        let signature = b.sign(record)
        #expect(!signature.isEmpty && signature.count <= MembershipCodec.maxSignature)
        // a holds no certificate of b yet.
        #expect(a.check(record, signature: signature, by: "b") == .unknownSigner)
        #expect(a.learn(b.certificate) == "b")
        #expect(a.learn(c.certificate) == "c")
        #expect(a.check(record, signature: signature, by: "b") == .valid)
        // Another record, another member's signature, c's signature passed off as b's, nothing.
        #expect(a.check(record + [0], signature: signature, by: "b") == .invalid)
        #expect(a.check(record, signature: signature, by: "c") == .invalid)
        #expect(a.check(record, signature: c.sign(record), by: "b") == .invalid)
        #expect(a.check(record, signature: [], by: "b") == .invalid)
        #expect(a.check(record, signature: Array(repeating: 0x30, count: 2000), by: "b") == .invalid)
        // Its own records check with its own certificate.
        #expect(a.check(record, signature: a.sign(record), by: "a") == .valid)
        #expect(a.certificate(of: "b") == b.certificate)
    }

    @Test func onlyCertificatesTheClusterCAIssuedAreLearned() throws {
        let (a, _) = try keys("a")
        let otherCA = try ClusterCertificates.makeCA(commonName: "another cluster")
        let stranger = try ClusterCertificates.issue(name: "b", ca: otherCA)
        let strangerKeys = try MemberKeys(caPEM: otherCA.certificatePEM, certificatePEM: stranger.certificatePEM, keyPEM: stranger.keyPEM)
        #expect(a.learn(strangerKeys.certificate) == nil)
        #expect(a.certificate(of: "b") == nil)
        // Expired (issued for an hour that ended a day ago), garbage, a truncated certificate: no.
        let old = try ClusterCertificates.issue(name: "old", ca: Self.ca, notBeforeOffset: -86_400 - 3_600, validSeconds: 3_600)
        #expect(a.learn(Self.der(old.certificatePEM)) == nil)
        #expect(throws: CertificateError.self) {
            try MemberKeys(caPEM: Self.ca.certificatePEM, certificatePEM: old.certificatePEM, keyPEM: old.keyPEM)
        }
        #expect(a.learn(Array("not a certificate".utf8)) == nil)
        let (b, _) = try keys("b")
        #expect(a.learn(Array(b.certificate.dropLast())) == nil)
        #expect(a.learn(b.certificate + [0]) == nil)
    }

    /// The DER bytes inside a PEM certificate.
    static func der(_ pem: String) -> [UInt8] {
        let base64 = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return Array(Data(base64Encoded: base64) ?? Data())
    }

    @Test func aKeyThatIsNotTheCertificatesIsRefusedAtStart() throws {
        let one = try ClusterCertificates.issue(name: "a", ca: Self.ca)
        let two = try ClusterCertificates.issue(name: "a", ca: Self.ca)
        #expect(throws: CertificateError.self) {
            try MemberKeys(caPEM: Self.ca.certificatePEM, certificatePEM: one.certificatePEM, keyPEM: two.keyPEM)
        }
    }
}
