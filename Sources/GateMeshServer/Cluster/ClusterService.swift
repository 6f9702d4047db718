import Foundation
import GateMeshCache
import GateMeshCluster
import GateMeshCore
import GateMeshLimits
import GateMeshPeer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The node's part in the cluster: runs the pure `Membership` and `Replicator` against the clock,
/// moves their frames over the peer transport, and merges the counters peers send into the
/// limits. Enforcement never waits on any of this: it reads whatever has been merged so far.
final class ClusterService: Service, Sendable {
    let config: ClusterConfig
    let me: Membership.Info
    let limits: LimitsService
    let logger: Logger
    let serverContext: TLSContext
    let connections: PeerConnections
    private let membership: NIOLockedValueBox<Membership>
    private let replicator: NIOLockedValueBox<Replicator>
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    static let tickMs: Int64 = 25

    let cache: ResponseCache
    /// Cache lookups sent to owners, waiting for their answers.
    private let lookups = NIOLockedValueBox<(next: UInt64, waiting: [UInt64: CheckedContinuation<CachedResponse?, Never>])>((1, [:]))
    /// How long a node waits for a key's owner before it asks the provider itself.
    static let ownerTimeout: Duration = .milliseconds(300)

    init(config: ClusterConfig, nodeName: String, nodeID: String, region: String, limits: LimitsService, cache: ResponseCache,
         logger: Logger) throws {
        self.config = config
        self.limits = limits
        self.cache = cache
        self.logger = logger
        func read(_ path: String, _ what: String) throws -> String {
            do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ClusterError(message: "cannot read the cluster \(what) '\(path)': \(error.localizedDescription)")
            }
        }
        let ca = try read(config.caFile, "CA certificate"), cert = try read(config.certFile, "node certificate"), key = try read(config.keyFile, "node key")
        guard let d = ClusterCertificates.describe(cert) else {
            throw ClusterError(message: "'\(config.certFile)' is not a PEM certificate")
        }
        // Peers check a sender's name against its certificate: they must be the same.
        guard d.commonName == nodeName else {
            throw ClusterError(message: "the node certificate '\(config.certFile)' is for '\(d.commonName)', but node.name is '\(nodeName)'; issue one with `gatemesh certs issue \(nodeName)`")
        }
        do {
            serverContext = try TLSContext(isServer: true, caPEM: ca, certificatePEM: cert, keyPEM: key)
            let client = try TLSContext(isServer: false, caPEM: ca, certificatePEM: cert, keyPEM: key)
            connections = PeerConnections(group: MultiThreadedEventLoopGroup.singleton, clientContext: client, logger: logger)
        } catch {
            throw ClusterError(message: "cannot set up TLS for peers: \(error)")
        }
        me = Membership.Info(name: nodeName, address: config.advertised.description, region: region, id: nodeID)
        // A restarted node comes back with a higher incarnation than any it used before.
        membership = NIOLockedValueBox(Membership(me: me, seeds: config.seeds, seed: UInt64.random(in: 0...UInt64.max),
                                                  startIncarnation: UInt64(Date().timeIntervalSince1970)))
        replicator = NIOLockedValueBox(Replicator(seed: UInt64.random(in: 0...UInt64.max)))
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    func run() async throws {
        let deliver: @Sendable (String, Frame) -> Void = { [weak self] peer, frame in self?.deliver(peer: peer, frame: frame) }
        let context = serverContext, logger = self.logger, maxFrame = config.maxFrameBytes
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let engine = try TLSEngine(context: context)
                        try channel.pipeline.syncOperations.addHandler(
                            InboundPeerHandler(engine: engine, maxFrame: maxFrame, logger: logger, deliver: deliver))
                    }
                }
                .bind(host: config.listen.host, port: config.listen.port).get()
        } catch {
            throw ClusterError(message: "cannot listen for peers on \(config.listen): \(error)")
        }
        serverChannel.withLockedValue { $0 = channel }
        logger.info("listening for peers", metadata: ["address": "\(config.listen)", "advertised": "\(me.address)", "seeds": "\(config.seeds)"])
        for await _ in AsyncTimerSequence(interval: .milliseconds(Self.tickMs)).cancelOnGracefulShutdown() {
            tick()
        }
        // Leave gracefully: tell a few peers, give the frames a moment, close.
        let now = Self.now()
        perform(membership.withLockedValue { $0.leave(now: now) })
        try? await Task.sleep(for: .milliseconds(200))
        connections.closeAll()
        try? await channel.close()
    }

    func tick() {
        let now = Self.now()
        perform(membership.withLockedValue { $0.tick(now: now) })
        let peers = membership.withLockedValue { m in m.live.map { ($0.info.name, $0.info.address) } }
        let addresses = Dictionary(peers, uniquingKeysWith: { a, _ in a })
        let frames = limits.withCounters { counters in
            replicator.withLockedValue { $0.tick(now: now, counters: counters, peers: peers.map(\.0)) }
        }
        for (peer, frame) in frames {
            if let address = addresses[peer] { connections.send(frame, to: address) }
        }
    }

    /// A frame from a peer (called on an event loop).
    func deliver(peer: String, frame: Frame) {
        do {
            switch frame.kind {
            case .membership:
                let envelope = try MembershipCodec.decode(frame.payload)
                guard envelope.from.name == peer else {
                    logger.warning("dropped a membership message whose sender differs from the peer's certificate",
                                   metadata: ["certificate": "\(peer)", "claimed": "\(envelope.from.name)"])
                    return
                }
                let now = Self.now()
                perform(membership.withLockedValue { $0.receive(envelope, now: now) })
            case .counters:
                limits.merge(try CountersCodec.decode(frame.payload))
            case .digest:
                let digest = try CountersCodec.decodeDigest(frame.payload)
                let answer = limits.withCounters { counters in replicator.withLockedValue { $0.answer(digest: digest, counters: counters) } }
                if let answer, let address = membership.withLockedValue({ $0.members[peer]?.info.address }) {
                    for frame in answer { connections.send(frame, to: address) }
                }
            case .hello:
                break
            case .cacheGet:
                var r = BinaryReader(frame.payload)
                let id = try r.uint(), key = try r.string()
                guard let address = membership.withLockedValue({ $0.members[peer]?.info.address }) else { return }
                let cache = self.cache, connections = self.connections
                Task {
                    let entry = await cache.lookup(key, now: Self.now())
                    connections.send(CacheCodec.answer(id: id, entry: entry), to: address)
                }
            case .cacheAnswer:
                var r = BinaryReader(frame.payload)
                let id = try r.uint()
                let entry = try r.byte() == 1 ? try CacheCodec.entry(&r) : nil
                lookups.withLockedValue { $0.waiting.removeValue(forKey: id) }?.resume(returning: entry)
            case .cachePut:
                var r = BinaryReader(frame.payload)
                let key = try r.string()
                let entry = try CacheCodec.entry(&r)
                if entry.expiresAtMs > Self.now() { cache.store(key, entry) }
            }
        } catch {
            logger.warning("dropped a malformed peer frame", metadata: ["peer": "\(peer)", "kind": "\(frame.kind)", "error": "\(error)"])
        }
    }

    func perform(_ actions: [Membership.Action]) {
        for action in actions {
            switch action {
            case .send(let address, let envelope):
                connections.send(Frame(kind: .membership, payload: MembershipCodec.encode(envelope)), to: address)
            case .changed(let member):
                logger.info("peer is \(member.state)", metadata: [
                    "peer": "\(member.info.name)", "address": "\(member.info.address)", "incarnation": "\(member.incarnation)",
                ])
                if member.state == .alive { replicator.withLockedValue { $0.reset(peer: member.info.name) } }
                // A dead or departed node's requests died with it: its reservations must not hold budget.
                if (member.state == .dead || member.state == .left) && !member.info.id.isEmpty {
                    limits.clearReservations(ofNode: member.info.id)
                }
            }
        }
    }

    // MARK: - The cache across nodes

    /// The owner of a cache key among the live members and this node (rendezvous hashing).
    func cacheOwner(of key: String) -> String {
        let names = membership.withLockedValue { m in m.live.filter { $0.state == .alive }.map(\.info.name) } + [me.name]
        return Rendezvous.owner(of: key, among: names) ?? me.name
    }

    /// Asks `owner` for its entry under `key`; nil when it has none or does not answer in time.
    func remoteLookup(_ key: String, owner: String) async -> CachedResponse? {
        guard let address = membership.withLockedValue({ $0.members[owner]?.info.address }) else { return nil }
        let id = lookups.withLockedValue { s -> UInt64 in
            defer { s.next += 1 }
            return s.next
        }
        let lookups = self.lookups
        let timeout = Task {
            try? await Task.sleep(for: Self.ownerTimeout)
            lookups.withLockedValue { $0.waiting.removeValue(forKey: id) }?.resume(returning: nil)
        }
        defer { timeout.cancel() }
        return await withCheckedContinuation { continuation in
            lookups.withLockedValue { $0.waiting[id] = continuation }
            connections.send(CacheCodec.get(id: id, key: key), to: address)
        }
    }

    /// Hands an answer fetched after a miss to the key's owner, which stores it.
    func sendToOwner(_ key: String, _ entry: CachedResponse, owner: String) {
        guard entry.size < config.maxFrameBytes - 4096,
              let address = membership.withLockedValue({ $0.members[owner]?.info.address }) else { return }
        connections.send(CacheCodec.put(key: key, entry: entry), to: address)
    }

    /// Members as this node sees them, for `/cluster/status`.
    var view: (me: Membership.Info, incarnation: UInt64, members: [Membership.Member]) {
        membership.withLockedValue { m in (m.me, m.incarnation, m.members.values.sorted { $0.info.name < $1.info.name }) }
    }
}

struct ClusterError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
