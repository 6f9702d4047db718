import GateMeshCluster
import GateMeshPeer
@testable import GateMeshServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

/// The outbound peer link's handler on an embedded channel, with a real TLS engine on the other
/// side: what it writes while the socket is full, and in which order.
@Suite struct OutboundPeerHandlerTests {
    static let ca = try! ClusterCertificates.makeCA()

    func context(_ name: String, server: Bool) throws -> TLSContext {
        let cert = try ClusterCertificates.issue(name: name, hosts: ["127.0.0.1"], ca: Self.ca)
        return try TLSContext(isServer: server, caPEM: Self.ca.certificatePEM, certificatePEM: cert.certificatePEM, keyPEM: cert.keyPEM)
    }

    /// A connected link: the handler on an embedded channel, the peer's engine, the handshake done.
    func link() throws -> (OutboundPeerHandler, EmbeddedChannel, TLSEngine) {
        let handler = OutboundPeerHandler(engine: try TLSEngine(context: context("a", server: false)), address: "peer:7946",
                                          logger: Logger(label: "test"), onReady: { _ in true })
        let channel = EmbeddedChannel(handler: handler)
        let peer = try TLSEngine(context: context("b", server: true))
        _ = try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 7946)).wait()
        for _ in 0..<10 where !(handler.engine.handshakeDone && peer.handshakeDone) {
            peer.receive(try written(channel))
            try peer.advanceHandshake()
            try channel.writeInbound(ByteBuffer(bytes: peer.takeOutbound()))
        }
        #expect(handler.engine.handshakeDone && peer.handshakeDone)
        peer.receive(try written(channel))
        return (handler, channel, peer)
    }

    func written(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var out: [UInt8] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += b.readableBytesView }
        return out
    }

    func frames(_ channel: EmbeddedChannel, _ peer: TLSEngine) throws -> [Frame] {
        peer.receive(try written(channel))
        var decoder = FrameDecoder(maxPayload: 1 << 20)
        while case .data(let d) = try peer.readPlaintext() { decoder.feed(d) }
        var out: [Frame] = []
        while let f = try decoder.next() { out.append(f) }
        return out
    }

    /// While the socket takes nothing, frames wait (the link says it is backlogged, and since
    /// when); once it is writable, a probe queued after 200 bulk frames goes out first.
    @Test func aProbeOvertakesBulkThatWaitsForTheSocket() throws {
        let (handler, channel, peer) = try link()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        for i in 0..<200 { handler.send(Frame(kind: .counters, payload: Array(repeating: UInt8(i % 256), count: 2_000)).encoded(), urgent: false) }
        handler.send(Frame(kind: .membership, payload: [42]).encoded(), urgent: true)
        #expect(try written(channel).isEmpty)
        let backlogged = handler.backlogged.load(ordering: .relaxed), stuck = handler.stuckSince.load(ordering: .relaxed)
        #expect(backlogged && stuck > 0)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        let got = try frames(channel, peer)
        #expect(got.count == 201)
        #expect(got.first?.kind == .membership && got.first?.payload == [42])
        #expect(got.dropFirst().allSatisfy { $0.kind == .counters })
        let after = (handler.backlogged.load(ordering: .relaxed), handler.stuckSince.load(ordering: .relaxed))
        #expect(!after.0 && after.1 == 0)
        _ = try? channel.finish()
    }

    /// A writable link writes at once, in the order sent.
    @Test func aWritableLinkWritesAtOnce() throws {
        let (handler, channel, peer) = try link()
        handler.send(Frame(kind: .counters, payload: [1]).encoded(), urgent: false)
        handler.send(Frame(kind: .membership, payload: [2]).encoded(), urgent: true)
        #expect(try frames(channel, peer).map(\.payload) == [[1], [2]])
        let backlogged = handler.backlogged.load(ordering: .relaxed)
        #expect(!backlogged)
        _ = try? channel.finish()
    }

    /// A dialled peer that accepts the connection and never finishes the handshake (a stopped
    /// process: its kernel still accepts) is given up on after 5 s, with a backoff.
    @Test func aPeerThatNeverFinishesTheHandshakeIsGivenUpOn() throws {
        let failed = NIOLockedValueBox(0)
        let handler = OutboundPeerHandler(engine: try TLSEngine(context: context("a", server: false)), address: "peer:7946",
                                          logger: Logger(label: "test"), onReady: { _ in true }, onFailed: { failed.withLockedValue { $0 += 1 } })
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        _ = try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 7946)).wait()
        loop.advanceTime(by: .milliseconds(4_900))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
        #expect(failed.withLockedValue { $0 } == 1)
    }
}
