import GateMeshPeer
import Testing

/// Two engines wired to each other in memory: the whole TLS 1.3 exchange without a socket.
@Suite struct TLSEngineTests {
    static let ca = try! ClusterCertificates.makeCA()

    func node(_ name: String, ca: CertificateAndKey = Self.ca, notBeforeOffset: Int = -300, validSeconds: Int = 86_400) throws -> CertificateAndKey {
        try ClusterCertificates.issue(name: name, hosts: ["127.0.0.1", "localhost"], ca: ca, notBeforeOffset: notBeforeOffset, validSeconds: validSeconds)
    }

    func engines(client: CertificateAndKey, server: CertificateAndKey, clientTrusts: CertificateAndKey = Self.ca,
                 serverTrusts: CertificateAndKey = Self.ca) throws -> (TLSEngine, TLSEngine) {
        let c = try TLSEngine(context: TLSContext(isServer: false, caPEM: clientTrusts.certificatePEM,
                                                  certificatePEM: client.certificatePEM, keyPEM: client.keyPEM))
        let s = try TLSEngine(context: TLSContext(isServer: true, caPEM: serverTrusts.certificatePEM,
                                                  certificatePEM: server.certificatePEM, keyPEM: server.keyPEM))
        return (c, s)
    }

    /// Moves bytes both ways until both handshakes are done; returns the first error, by side.
    func handshake(_ c: TLSEngine, _ s: TLSEngine) -> (client: TLSError?, server: TLSError?) {
        var clientError: TLSError?
        var serverError: TLSError?
        for _ in 0..<20 {
            do { try c.advanceHandshake() } catch { clientError = clientError ?? error }
            s.receive(c.takeOutbound())
            do { try s.advanceHandshake() } catch { serverError = serverError ?? error }
            c.receive(s.takeOutbound())
            if (c.handshakeDone && s.handshakeDone) || clientError != nil || serverError != nil {
                // Let the last flight (an alert, the client's Finished) reach the other side.
                do { try c.advanceHandshake() } catch { clientError = clientError ?? error }
                s.receive(c.takeOutbound())
                do { try s.advanceHandshake() } catch { serverError = serverError ?? error }
                if c.handshakeDone && s.handshakeDone || clientError != nil || serverError != nil { break }
            }
        }
        return (clientError, serverError)
    }

    @Test func mutuallyAuthenticatedPeersExchangeDataBothWays() throws {
        let (c, s) = try engines(client: node("eu-1"), server: node("us-1"))
        let errors = handshake(c, s)
        #expect(errors.client == nil && errors.server == nil)
        #expect(c.handshakeDone && s.handshakeDone)
        #expect(c.peerName == "us-1" && s.peerName == "eu-1")
        let big = (0..<100_000).map { UInt8($0 % 251) }
        try c.send(big)
        s.receive(c.takeOutbound())
        var got: [UInt8] = []
        if case .data(let d) = try s.readPlaintext() { got = d }
        #expect(got == big)
        try s.send(Array("pong".utf8))
        c.receive(s.takeOutbound())
        #expect(try c.readPlaintext() == .data(Array("pong".utf8)))
        #expect(try c.readPlaintext() == .wantMore)
        s.close()
        c.receive(s.takeOutbound())
        #expect(try c.readPlaintext() == .closed)
    }

    @Test func aPeerWithACertificateFromAnotherCAIsRefused() throws {
        let otherCA = try ClusterCertificates.makeCA(commonName: "someone else")
        let (c, s) = try engines(client: node("intruder", ca: otherCA), server: node("us-1"))
        let errors = handshake(c, s)
        #expect(errors.server != nil && !s.handshakeDone)
        #expect(errors.server?.message.contains("certificate") == true, "\(String(describing: errors.server))")
        // And a server from another CA is refused by the client.
        let (c2, s2) = try engines(client: node("eu-1"), server: node("fake", ca: otherCA))
        let errors2 = handshake(c2, s2)
        #expect(errors2.client?.message.contains("certificate verification failed") == true, "\(String(describing: errors2.client))")
    }

    @Test func anExpiredCertificateIsRefused() throws {
        let expired = try node("old", notBeforeOffset: -7200, validSeconds: 3600)
        let (c, s) = try engines(client: expired, server: node("us-1"))
        let errors = handshake(c, s)
        #expect(errors.server?.message.contains("expired") == true, "\(String(describing: errors.server))")
    }

    @Test func aClientWithoutACertificateIsRefused() throws {
        let server = try node("us-1")
        let c = try TLSEngine(context: TLSContext(isServer: false, caPEM: Self.ca.certificatePEM, certificatePEM: "", keyPEM: ""))
        let s = try TLSEngine(context: TLSContext(isServer: true, caPEM: Self.ca.certificatePEM,
                                                  certificatePEM: server.certificatePEM, keyPEM: server.keyPEM))
        let errors = handshake(c, s)
        #expect(errors.server?.message.contains("certificate") == true && !s.handshakeDone, "\(String(describing: errors.server))")
    }

    @Test func certificatesCarryTheNameAndValidity() throws {
        let cert = try node("eu-1", validSeconds: 86_400)
        let d = try #require(ClusterCertificates.describe(cert.certificatePEM))
        #expect(d.commonName == "eu-1" && d.notAfter > 0)
        #expect(throws: CertificateError.self) {
            try ClusterCertificates.issue(name: "x", ca: CertificateAndKey(certificatePEM: Self.ca.certificatePEM, keyPEM: "junk"))
        }
        #expect(throws: TLSError.self) { try TLSContext(isServer: true, caPEM: "junk", certificatePEM: cert.certificatePEM, keyPEM: cert.keyPEM) }
    }
}
