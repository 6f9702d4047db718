import Foundation
import GateMeshCluster
import GateMeshCore
import GateMeshPeer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

/// A peer connection's handler: bytes on the socket are TLS records that its `engine` reads and
/// writes.
protocol TLSPeerHandler: ChannelInboundHandler where OutboundOut == ByteBuffer {
    var engine: TLSEngine { get }
}

extension TLSPeerHandler {
    /// Writes what the engine has produced (handshake messages, records, alerts) to the socket.
    func flushTLS(_ context: ChannelHandlerContext) {
        let out = engine.takeOutbound()
        guard !out.isEmpty else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: out)), promise: nil)
    }
}

/// The thin socket shell of the peer transport: TCP through NIO, TLS through the memory-BIO
/// `TLSEngine`, frames through `FrameDecoder`. Connections are one-way: a node sends on its own
/// outbound connection to a peer's address and receives on the connections peers open to it.
/// Handlers run on their channel's event loop only.
/// Keeps connections that have not authenticated from using up the node: at most
/// `maxUnauthenticated` of them at once, `maxPerHost` from one address, each closed if its TLS
/// handshake has not finished within `handshakeTimeout`; and the warnings about refused ones at
/// most one per `logEvery` per kind, with how many were left unsaid.
final class PeerConnectionGuard: Sendable {
    static let maxUnauthenticated = 64
    static let maxPerHost = 8
    static let handshakeTimeout: TimeAmount = .seconds(10)
    static let logEvery: Int64 = 10_000

    struct State {
        var total = 0
        var byHost: [String: Int] = [:]
        /// Per warning: when it was last logged, and how many were not logged since.
        var logged: [String: (at: Int64, suppressed: Int)] = [:]
    }
    private let state = NIOLockedValueBox(State())
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// A new connection from `host`: false when it must be closed at once.
    func admit(_ host: String) -> Bool {
        let ok = state.withLockedValue { s -> Bool in
            guard s.total < Self.maxUnauthenticated, s.byHost[host, default: 0] < Self.maxPerHost else { return false }
            s.total += 1
            s.byHost[host, default: 0] += 1
            return true
        }
        if !ok {
            warn("refused a peer connection: too many connections that have not authenticated",
                 ["remote": "\(host)", "limit_total": "\(Self.maxUnauthenticated)", "limit_per_address": "\(Self.maxPerHost)"])
        }
        return ok
    }

    /// A connection admitted from `host` authenticated, or closed before it did.
    func done(_ host: String) {
        state.withLockedValue { s in
            s.total -= 1
            s.byHost[host, default: 1] -= 1
            if s.byHost[host] == 0 { s.byHost[host] = nil }
        }
    }

    /// Logs `message` unless it was logged less than `logEvery` ago; then says how many were not.
    func warn(_ message: String, _ metadata: Logger.Metadata) {
        let now = WallClock.nowMs()
        let suppressed = state.withLockedValue { s -> Int? in
            if let last = s.logged[message], now - last.at < Self.logEvery {
                s.logged[message]?.suppressed += 1
                return nil
            }
            let count = s.logged[message]?.suppressed ?? 0
            s.logged[message] = (now, 0)
            return count
        }
        guard let suppressed else { return }
        var metadata = metadata
        if suppressed > 0 { metadata["not_logged_since"] = "\(suppressed)" }
        logger.warning("\(message)", metadata: metadata)
    }
}

final class InboundPeerHandler: TLSPeerHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let engine: TLSEngine
    var decoder: FrameDecoder
    let deliver: @Sendable (String, Frame) -> Void
    /// Called with the peer's certificate (DER) once the handshake has checked it.
    let authenticated: @Sendable ([UInt8]) -> Void
    let logger: Logger
    var peer: String?
    let guardian: PeerConnectionGuard
    /// The remote host while the connection counts as not authenticated.
    var pendingHost: String?
    var handshakeTimer: Scheduled<Void>?

    init(engine: TLSEngine, maxFrame: Int, logger: Logger, guardian: PeerConnectionGuard,
         authenticated: @escaping @Sendable ([UInt8]) -> Void, deliver: @escaping @Sendable (String, Frame) -> Void) {
        self.engine = engine
        self.decoder = FrameDecoder(maxPayload: maxFrame)
        self.logger = logger
        self.guardian = guardian
        self.authenticated = authenticated
        self.deliver = deliver
    }

    func channelActive(context: ChannelHandlerContext) {
        let host = context.remoteAddress?.ipAddress ?? "?"
        guard guardian.admit(host) else {
            context.close(promise: nil)
            return
        }
        pendingHost = host
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: PeerConnectionGuard.handshakeTimeout) { [self] in
            guard !engine.handshakeDone else { return }
            guardian.warn("closed a peer connection that did not finish its TLS handshake in time",
                          ["remote": "\(host)", "timeout_s": "\(PeerConnectionGuard.handshakeTimeout.nanoseconds / 1_000_000_000)"])
            loopBound.value.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle()
        context.fireChannelInactive()
    }

    /// The connection no longer counts as not authenticated.
    private func settle() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if let host = pendingHost {
            pendingHost = nil
            guardian.done(host)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        engine.receive(Array(buffer.readableBytesView))
        do {
            if !engine.handshakeDone {
                try engine.advanceHandshake()
                if engine.handshakeDone {
                    peer = engine.peerName
                    settle()
                    if let certificate = engine.peerCertificate { authenticated(certificate) }
                    logger.debug("peer connected", metadata: ["peer": "\(peer ?? "?")", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
                }
            }
            flushTLS(context)
            guard engine.handshakeDone, let peer else { return }
            switch try engine.readPlaintext() {
            case .data(let bytes):
                decoder.feed(bytes)
                let skipped = decoder.skippedUnknown
                while let frame = try decoder.next() { deliver(peer, frame) }
                if skipped == 0, decoder.skippedUnknown > 0 {
                    // Once a connection: a newer peer's frame type (see `Frame`).
                    logger.notice("skipped a peer frame of a type this build does not know (a newer node's?)", metadata: [
                        "peer": "\(peer)", "type": "\(decoder.lastUnknownKind ?? 0)",
                    ])
                }
            case .closed:
                context.close(promise: nil)
            case .wantMore:
                break
            }
        } catch let error as FrameError {
            logger.warning("closing a peer connection: bad frame", metadata: ["peer": "\(peer ?? "?")", "error": "\(error)"])
            context.close(promise: nil)
        } catch {
            // Anyone can connect: at most one of these lines per 10 s, with a count of the rest.
            guardian.warn("refused a peer connection", ["remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)"])
            flushTLS(context)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Nothing arrived for `cluster.idle_timeout` (the `IdleStateHandler` in front says so).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        logger.debug("closing an idle peer connection", metadata: ["peer": "\(peer ?? "?")"])
        context.close(promise: nil)
    }
}

final class OutboundPeerHandler: TLSPeerHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let engine: TLSEngine
    let logger: Logger
    let address: String
    /// Frames waiting for the handshake or for the socket to take more: urgent ones first.
    var outbox = PeerOutbox()
    var context: ChannelHandlerContext?
    /// Read off the event loop: whether bulk frames wait (the replicator then skips this peer,
    /// and its next delta covers what it would have sent now), and since when (uptime ns, 0: not
    /// stuck) the socket has taken nothing while frames wait.
    let backlogged = Atomic<Bool>(false)
    let stuckSince = Atomic<UInt64>(0)
    /// The handshake is done, with the name on the peer's certificate: false when that is not the
    /// member this address belongs to (the connection is closed, nothing is sent on it).
    let onReady: @Sendable (String?) -> Bool
    /// The handshake failed or the peer refused us: back off before dialling again.
    let onFailed: @Sendable () -> Void
    /// A frame was dropped (the outbox was full): what it carried must be sent again (the
    /// cluster resets the peer's replication, as after a reconnect).
    let onDrop: @Sendable () -> Void

    /// A peer that accepts the TCP connection but does not finish the TLS handshake within this
    /// (a stopped process: its kernel still accepts) is given up on, and dialled again later.
    static let handshakeTimeout = TimeAmount.seconds(5)
    /// Plaintext handed to TLS per write before writability is looked at again.
    static let writeBatch = 64 * 1024

    init(engine: TLSEngine, address: String, logger: Logger, onReady: @escaping @Sendable (String?) -> Bool,
         onFailed: @escaping @Sendable () -> Void = {}, onDrop: @escaping @Sendable () -> Void = {}) {
        self.engine = engine
        self.address = address
        self.logger = logger
        self.onReady = onReady
        self.onFailed = onFailed
        self.onDrop = onDrop
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        outbox.removeAll()
    }

    func channelActive(context: ChannelHandlerContext) {
        advance(context)
        context.eventLoop.scheduleTask(in: Self.handshakeTimeout) { [self] in
            guard !engine.handshakeDone, let context = self.context else { return }
            logger.warning("gave up on a dialled peer that did not finish the TLS handshake within 5 s", metadata: ["address": "\(address)"])
            onFailed()
            context.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        engine.receive(Array(unwrapInboundIn(data).readableBytesView))
        advance(context)
        guard engine.handshakeDone else { return }
        do {
            // Nothing is expected from the peer on this connection; read to see alerts and closes.
            if try engine.readPlaintext() == .closed { context.close(promise: nil) }
        } catch {
            logger.warning("peer refused this node", metadata: ["address": "\(address)", "error": "\(error)"])
            onFailed()
            context.close(promise: nil)
        }
    }

    func advance(_ context: ChannelHandlerContext) {
        do {
            let wasDone = engine.handshakeDone
            try engine.advanceHandshake()
            if engine.handshakeDone && !wasDone {
                guard onReady(engine.peerName) else {
                    outbox.removeAll()
                    onFailed()
                    context.close(promise: nil)
                    return
                }
                logger.debug("connected to peer", metadata: ["address": "\(address)", "peer": "\(engine.peerName ?? "?")"])
                flushTLS(context)
                drain(context)
                return
            }
            flushTLS(context)
        } catch {
            logger.warning("peer handshake failed", metadata: ["address": "\(address)", "error": "\(error)"])
            onFailed()
            flushTLS(context)
            context.close(promise: nil)
        }
    }

    /// Sends (queued while the handshake runs or the socket is full). On the event loop.
    func send(_ bytes: [UInt8], urgent: Bool) {
        guard let context else { return }
        if !outbox.push(bytes, urgent: urgent) { onDrop() }
        if engine.handshakeDone { drain(context) } else { noteBacklog(context) }
    }

    /// Writes waiting frames while the channel is writable, a batch at a time: urgent frames
    /// first, so what is left waiting when the socket is full is the bulk.
    func drain(_ context: ChannelHandlerContext) {
        do {
            while context.channel.isWritable, !outbox.isEmpty {
                var batch = 0
                while batch < Self.writeBatch, let bytes = outbox.pop() {
                    try engine.send(bytes)
                    batch += bytes.count
                }
                flushTLS(context)
            }
        } catch {
            context.close(promise: nil)
        }
        noteBacklog(context)
    }

    private func noteBacklog(_ context: ChannelHandlerContext) {
        backlogged.store(!outbox.isEmpty, ordering: .relaxed)
        if outbox.isEmpty || context.channel.isWritable {
            stuckSince.store(0, ordering: .relaxed)
        } else if stuckSince.load(ordering: .relaxed) == 0 {
            stuckSince.store(max(1, DispatchTime.now().uptimeNanoseconds), ordering: .relaxed)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && engine.handshakeDone { drain(context) } else { noteBacklog(context) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// TCP keepalive on peer links, both ways: a peer that vanished without a FIN or RST (a host
/// powered off, a NAT that dropped the mapping) is found after 15 s of silence plus three unanswered
/// probes 5 s apart, rather than after the kernel's default two hours.
enum PeerKeepalive {
    static let idleSeconds: SocketOptionValue = 15
    static let intervalSeconds: SocketOptionValue = 5
    static let probes: SocketOptionValue = 3
    static let idle = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: TCP_KEEPIDLE))
    static let interval = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: TCP_KEEPINTVL))
    static let count = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: TCP_KEEPCNT))
}

/// Outbound connections by peer address, two per peer (`Lane`): connected on first use, kept,
/// reconnected after a failure with backoff (100 ms doubling to 1 s), whether or not a frame
/// waits, and at once when the peer is heard from (a healed partition). Frames for a peer that
/// is not connected are dropped beyond a small queue: membership and replication repair what is
/// lost.
final class PeerConnections: Sendable {
    /// Membership messages travel on a connection of their own, everything else on a second one.
    /// An outbox that puts urgent frames first (`PeerOutbox`) helps only until bytes reach the
    /// socket: a probe written after a bulk frame waits in the kernel behind it, and behind its
    /// retransmission when a packet is lost (a retransmission timeout, 200 ms or more). The
    /// simulator, with both on one FIFO link at 150 ms and 5 % loss, counted twice the false
    /// suspicions of separate links (22 against 11 over 20 seeds of 3 nodes) and a false death.
    enum Lane: Hashable, Sendable {
        case membership, bulk

        init(_ kind: Frame.Kind) { self = kind == .membership ? .membership : .bulk }
    }

    struct LinkKey: Hashable, Sendable {
        var address: String
        var lane: Lane
    }

    struct Link {
        var channel: (any Channel)?
        var handler: OutboundPeerHandler?
        var connecting = false
        var failures = 0
        var retryAt: NIODeadline = .uptimeNanoseconds(0)
        var queued: [(bytes: [UInt8], urgent: Bool)] = []
        /// Each dial's number: only the latest dial's outcome changes the link.
        var dial: UInt64 = 0
        var dialedAt: NIODeadline = .uptimeNanoseconds(0)
        /// A dial to this address has failed, or its link has closed, since it first came up.
        var everFailed = false
        /// The name on the certificate the peer at this address presented.
        var peerName: String?
        /// Frames and bytes handed to this link since start (sent, queued or dropped).
        var framesSent = 0
        var bytesSent = 0

        /// A dial failed since the last one that came up, or the link has failed at some time:
        /// once it is down, it is dialled again without waiting for a frame.
        var hasFailed: Bool { failures > 0 || everFailed }

        /// A dial failed: the next waits 100 ms, doubling with each failure in a row up to
        /// `maxBackoffMs`.
        mutating func failed() {
            failures += 1
            retryAt = .now() + .milliseconds(Int64(min(PeerConnections.maxBackoffMs, 100 << min(failures - 1, 6))))
        }

        /// A new dial replaces whatever this link had; returns its number.
        mutating func startDial() -> UInt64 {
            connecting = true
            channel = nil
            handler = nil
            dial += 1
            dialedAt = .now()
            return dial
        }
    }

    /// The longest wait between two dials of a peer that cannot be reached.
    static let maxBackoffMs = 1_000

    let group: any EventLoopGroup
    let clientContext: TLSContext
    let logger: Logger
    private let links = NIOLockedValueBox<[LinkKey: Link]>([:])
    /// Set by `closeAll()` (with the `links` lock held, and read with it held).
    private let closed = Atomic(false)
    /// Which member each address belongs to, as the membership knows it (`expect(_:)`): the
    /// certificate of the peer dialled there must name that member.
    private let expected = NIOLockedValueBox<[String: String]>([:])
    /// Told of each address whose link came up again after a failure, or whose outbox was full
    /// and dropped a frame: what was dropped must be sent again (the cluster resets that peer's
    /// replication, so the next delta it can take is every entry).
    let reconnected = CallbackSlot<String, Void>()

    init(group: any EventLoopGroup, clientContext: TLSContext, logger: Logger) {
        self.group = group
        self.clientContext = clientContext
        self.logger = logger
    }

    /// The members' addresses (address → member name), from the membership. A link whose peer
    /// presented another name than its address's member now is closed; later dials are checked.
    func expect(_ names: [String: String]) {
        let changed = expected.withLockedValue { current -> Bool in
            guard current != names else { return false }
            current = names
            return true
        }
        guard changed else { return }
        let wrong: [(String, String, any Channel)] = links.withLockedValue { links in
            links.compactMap { key, link in
                guard let want = names[key.address], let got = link.peerName, got != want, let channel = link.channel else { return nil }
                return (key.address, got, channel)
            }
        }
        for (address, got, channel) in wrong {
            logger.warning("closing a peer connection: the address now belongs to another member",
                           metadata: ["address": "\(address)", "certificate": "\(got)", "member": "\(names[address] ?? "?")"])
            channel.close(promise: nil)
        }
    }

    /// Sends a frame on the link to `address` for its lane (`Lane`). `urgent` (by default:
    /// membership frames) goes ahead of frames that wait for the socket (`PeerOutbox`).
    func send(_ frame: Frame, to address: String, urgent: Bool? = nil) {
        let bytes = frame.encoded()
        let urgent = urgent ?? (frame.kind == .membership)
        let key = LinkKey(address: address, lane: Lane(frame.kind))
        let action: (OutboundPeerHandler, any Channel)? = links.withLockedValue { links in
            guard !closed.load(ordering: .relaxed) else { return nil }
            var link = links[key] ?? Link()
            defer { links[key] = link }
            link.framesSent += 1
            link.bytesSent += bytes.count
            if let channel = link.channel, let handler = link.handler, channel.isActive { return (handler, channel) }
            // Past 256 a frame is dropped: the link then counts as having failed, so that when it
            // comes up the peer's replication starts over (what was dropped is sent again).
            if link.queued.count < 256 { link.queued.append((bytes, urgent)) } else { link.everFailed = true }
            if !link.connecting, NIODeadline.now() >= link.retryAt { connect(key, dial: link.startDial()) }
            return nil
        }
        if let (handler, channel) = action {
            channel.eventLoop.execute { handler.send(bytes, urgent: urgent) }
        }
    }

    /// Whether bulk frames wait on the link to `address` (the socket takes them slower than they
    /// come): the replicator sends that peer no delta until they are written, and then one that
    /// covers the wait. A link that is down is not backlogged (its frames are dropped).
    func backlogged(_ address: String) -> Bool {
        links.withLockedValue { $0[LinkKey(address: address, lane: .bulk)]?.handler }?.backlogged.load(ordering: .relaxed) ?? false
    }

    /// How long a link may take nothing while frames wait before it is closed (the peer stopped
    /// reading: a stopped process, or a link so slow it is as good as cut).
    static let writeTimeoutNs: UInt64 = 10_000_000_000

    /// The peer at `address` reached this node, so the way to it works: a link to it that failed
    /// and is down is dialled now, not after its backoff, and so is one whose dial has waited more
    /// than 2 s (a connect made during a cut, waiting for its timeout; its outcome is ignored).
    func heard(from address: String) {
        links.withLockedValue { links in
            guard !closed.load(ordering: .relaxed) else { return }
            for lane in [Lane.membership, .bulk] {
                let key = LinkKey(address: address, lane: lane)
                guard var link = links[key], link.hasFailed || link.connecting else { continue }
                if let channel = link.channel, channel.isActive { continue }
                if link.connecting, NIODeadline.now() - link.dialedAt <= .seconds(2) { continue }
                // What its failed dials dropped is still to be resent when it comes up.
                link.everFailed = link.hasFailed
                link.failures = 0
                link.retryAt = .uptimeNanoseconds(0)
                connect(key, dial: link.startDial())
                links[key] = link
            }
        }
    }

    /// Dials again, once its backoff has passed, each link to a live member (`expect(_:)`) that
    /// failed and is down, rather than with its next frame: a bulk link with nothing new to carry
    /// would otherwise stay down after a cut heals, and with it the resend of what it dropped
    /// (`reconnected`), until the next counter change. Call every tick.
    func redialFailed() {
        let now = NIODeadline.now()
        let live = expected.withLockedValue { $0 }
        links.withLockedValue { links in
            guard !closed.load(ordering: .relaxed) else { return }
            let due = links.filter { key, link in
                link.hasFailed && !link.connecting && link.channel == nil && now >= link.retryAt
                    && live[key.address] != nil
            }
            for (key, var link) in due {
                connect(key, dial: link.startDial())
                links[key] = link
            }
        }
    }

    /// Frames and bytes handed to the links to each address since start, both lanes together.
    var sentByAddress: [String: (frames: Int, bytes: Int)] {
        links.withLockedValue { links in
            var out: [String: (frames: Int, bytes: Int)] = [:]
            for (key, link) in links {
                out[key.address, default: (0, 0)].frames += link.framesSent
                out[key.address, default: (0, 0)].bytes += link.bytesSent
            }
            return out
        }
    }

    /// How many dials of the link to `address` have failed in a row (for tests).
    func failures(to address: String, lane: Lane) -> Int {
        links.withLockedValue { $0[LinkKey(address: address, lane: lane)]?.failures ?? 0 }
    }

    /// Called with the links lock held: only schedules work, never takes the lock itself.
    private func connect(_ key: LinkKey, dial: UInt64) {
        let links = self.links
        let logger = self.logger
        let address = key.address
        // What the bulk link dropped must be sent again; the membership link's losses are repaired
        // by the protocol itself (probes, gossip and push-pull).
        let replicates = key.lane == .bulk
        let giveUp: @Sendable (String) -> Void = { why in
            logger.error("cannot connect to peer", metadata: ["address": "\(address)", "error": "\(why)"])
            links.withLockedValue { links in
                guard links[key]?.dial == dial else { return }
                links[key]?.connecting = false
                links[key]?.failures += 1
                links[key]?.retryAt = .now() + .milliseconds(Int64(Self.maxBackoffMs))
            }
        }
        guard let target = Seeds.split(address) else {
            group.any().execute { giveUp("not a host:port address") }
            return
        }
        let engine: TLSEngine
        do {
            engine = try TLSEngine(context: clientContext)
        } catch {
            group.any().execute { giveUp("cannot create a TLS connection: \(error)") }
            return
        }
        let backoff: @Sendable () -> Void = { links.withLockedValue { $0[key, default: Link()].failed() } }
        let expected = self.expected
        let handler = OutboundPeerHandler(engine: engine, address: address, logger: logger, onReady: { name in
            // The dialled peer must be the member the membership has at this address (a seed not
            // yet known as a member may be anyone of the cluster).
            if let want = expected.withLockedValue({ $0[address] }), want != name {
                logger.warning("refusing a peer connection: the certificate names another member than the one at this address",
                               metadata: ["address": "\(address)", "certificate": "\(name ?? "?")", "member": "\(want)"])
                return false
            }
            links.withLockedValue {
                $0[key]?.failures = 0
                $0[key]?.peerName = name
            }
            return true
        }, onFailed: backoff, onDrop: { [weak self] in if replicates { self?.reconnected.current?(address) } })
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(3))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelOption(PeerKeepalive.idle, value: PeerKeepalive.idleSeconds)
            .channelOption(PeerKeepalive.interval, value: PeerKeepalive.intervalSeconds)
            .channelOption(PeerKeepalive.count, value: PeerKeepalive.probes)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
            }
        // A member's address is an IP: connect to it as it is. `connect(host:port:)` resolves even
        // an IP with getaddrinfo on Dispatch's global queue, whose threads CPU-bound work can hold
        // for as long as it runs; the dial then ran out of its 3 s and the link stayed down (a test
        // beside the simulator's took 80 s to see its link back).
        //
        // Started from a task of an event loop, never here: this runs with the links lock held, and a
        // dial to an IP can fail at once (no route, in a partition), which would run `dialFailed`,
        // which takes the lock, right here (a node crashed on that: EDEADLK).
        group.any().execute {
            let connected: EventLoopFuture<any Channel>
            if Seeds.isAddress(target.host), let ip = try? SocketAddress(ipAddress: target.host, port: target.port) {
                connected = bootstrap.connect(to: ip)
            } else {
                connected = bootstrap.connect(host: target.host, port: target.port)
            }
            connected.whenComplete { result in
                switch result {
                case .success(let channel): self.linkUp(key, dial: dial, channel: channel, handler: handler)
                case .failure(let error): self.dialFailed(key, dial: dial, error: error)
                }
            }
        }
    }

    /// A dial connected: the link carries what was queued for it, and, when it had failed before,
    /// the cluster resends what it dropped (`reconnected`). A dial replaced by a later one (the peer
    /// was heard from meanwhile), or one that connected after `closeAll`, is closed.
    private func linkUp(_ key: LinkKey, dial: UInt64, channel: any Channel, handler: OutboundPeerHandler) {
        let queued: [(bytes: [UInt8], urgent: Bool)]? = links.withLockedValue { links in
            var link = links[key] ?? Link()
            guard link.dial == dial, !closed.load(ordering: .relaxed) else { return nil }
            link.channel = channel
            link.handler = handler
            link.connecting = false
            let q = link.queued
            link.queued = []
            link.everFailed = link.hasFailed
            links[key] = link
            return q
        }
        guard let queued else {
            channel.close(promise: nil)
            return
        }
        channel.eventLoop.execute { for q in queued { handler.send(q.bytes, urgent: q.urgent) } }
        if key.lane == .bulk, links.withLockedValue({ $0[key]?.everFailed ?? false }) { reconnected.current?(key.address) }
        let links = self.links
        channel.closeFuture.whenComplete { _ in
            links.withLockedValue { links in
                if links[key]?.channel === channel {
                    links[key]?.channel = nil
                    links[key]?.handler = nil
                    links[key]?.everFailed = true
                }
            }
        }
    }

    /// A dial failed: its queue is dropped and the next waits for the backoff.
    private func dialFailed(_ key: LinkKey, dial: UInt64, error: any Error) {
        links.withLockedValue { links in
            guard var link = links[key], link.dial == dial else { return }
            link.connecting = false
            link.failed()
            link.queued = []
            links[key] = link
        }
        logger.debug("cannot connect to peer", metadata: ["address": "\(key.address)", "error": "\(error)"])
    }

    /// Closes the links TCP has been failing to deliver on for a few seconds (read from the
    /// kernel's TCP_INFO: the retransmission or probe timer backed off three times or more, at two
    /// checks in a row), instead of letting it retransmit into a cut for many minutes, with a
    /// backoff that would delay the first delivery after healing by as much. The link is dialled
    /// again once the way is back, and what it carried is sent again. (Not `TCP_USER_TIMEOUT`: a
    /// connection the kernel times out reports the last route error, and a blackhole route's
    /// EINVAL stops SwiftNIO's read with a precondition failure.) Call every second or so.
    func closeStalled() {
        let now = DispatchTime.now().uptimeNanoseconds
        let stuck = links.withLockedValue { links in
            links.compactMap { key, link -> (String, any Channel)? in
                guard let channel = link.channel, let since = link.handler?.stuckSince.load(ordering: .relaxed), since > 0,
                      now &- since > Self.writeTimeoutNs else { return nil }
                return (key.address, channel)
            }
        }
        for (address, channel) in stuck {
            logger.warning("closing a peer connection that took nothing for 10 s while frames waited",
                           metadata: ["address": "\(address)"])
            channel.close(promise: nil)
        }
        let channels = links.withLockedValue { links in links.values.compactMap(\.channel) }
        let suspects = self.suspects
        // Forget suspects whose link is gone (an identifier can be reused by a new channel).
        let current = Set(channels.map(ObjectIdentifier.init))
        suspects.withLockedValue { $0.formIntersection(current) }
        for channel in channels {
            guard let provider = channel as? any SocketOptionProvider else { continue }
            let id = ObjectIdentifier(channel)
            provider.getTCPInfo().whenSuccess { info in
                let failing = info.tcpi_backoff >= 3 || info.tcpi_retransmits >= 3 || info.tcpi_probes >= 3
                // Failing at the last check too: close it (and forget it); failing now: suspect it.
                let close = suspects.withLockedValue { s -> Bool in
                    guard failing else {
                        s.remove(id)
                        return false
                    }
                    if s.remove(id) != nil { return true }
                    s.insert(id)
                    return false
                }
                if close { channel.close(promise: nil) }
            }
        }
    }

    /// Links that looked stalled at the last check.
    private let suspects = NIOLockedValueBox<Set<ObjectIdentifier>>([])

    /// Closes every link, for good: nothing is dialled afterwards (a frame that still arrives
    /// on an inbound link of a node that stops does not dial its peer again).
    func closeAll() {
        let channels = links.withLockedValue { links in
            closed.store(true, ordering: .relaxed)
            return links.values.compactMap(\.channel)
        }
        for c in channels { c.close(promise: nil) }
    }
}
