import Foundation
import GateMeshCache
import GateMeshCluster
import GateMeshCore
import GateMeshLimits
import GateMeshPeer
import GateMeshStore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The node's part in the cluster: runs the pure `Membership` and `Replicator` against the clock,
/// moves their frames over the peer transport, and merges the counters peers send into the
/// limits. Enforcement never waits on any of this: it reads whatever has been merged so far.
final class ClusterService: Service, LimitsPeers, CachePeers, Sendable {
    let config: ClusterConfig
    let me: Membership.Info
    let limits: LimitsService
    let logger: Logger
    let serverContext: TLSContext
    let connections: PeerConnections
    private let membership: NIOLockedValueBox<Membership>
    /// This node's signing key and the members' certificates (signed membership records).
    let keys: MemberKeys
    private let replicator: NIOLockedValueBox<Replicator>
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    /// Set when this node must stop (its data directory is another node's copy): the run loop
    /// throws it, which stops the node with that error.
    private let stopReason = NIOLockedValueBox<String?>(nil)
    static let tickMs: Int64 = 25
    /// How long a node that starts in a cluster waits at most to hear its peers' counters before it
    /// admits requests under a rule and hands out rights as an owner.
    static let catchUpMs: Int64 = 2_000
    private let nextRulesDigestAt = NIOLockedValueBox<Int64>(0)

    let cache: ResponseCache
    /// Cache requests sent to owners, waiting for their answers (on the monotonic clock).
    private let lookups = NIOLockedValueBox(CacheLookups<CheckedContinuation<CacheCodec.Answer, Never>>(
        ownerTimeoutMs: ownerTimeoutMs, pendingMs: flightTimeoutMs))
    /// Frames and bytes received from each peer, and when its last counter delta came
    /// (`ClusterMetrics.swift`).
    let received = NIOLockedValueBox<[String: PeerReceived]>([:])
    /// Reads of the request log sent to peers, waiting for their parts (`PeerReads.swift`).
    let asks = NIOLockedValueBox(PeerAsks<CheckedContinuation<ReadCodec.Answer?, Never>>())
    /// What answers the peers' reads of this node's request log (`serveReads`).
    let readerRef = NIOLockedValueBox(ReaderRef())
    /// Flights this node (as owner) holds for peers fetching a key it owns, by peer and key.
    private let leases = NIOLockedValueBox(CacheLeases<CacheFlight.Ticket>(leaseMs: flightTimeoutMs))
    /// How long a node waits for a key's owner to answer before it asks the provider itself (and
    /// up to a tick more: lookups expire on the tick).
    static let ownerTimeoutMs: Int64 = 300
    /// How long requests wait for another node's fetch of a key at most (then they fetch on their
    /// own); the owner drops a peer's flight after as long.
    static let flightTimeoutMs: Int64 = 300_000

    init(config: ClusterConfig, nodeName: String, nodeID: String, region: String, configDigest: String = "", limits: LimitsService,
         cache: ResponseCache, store: NodeStore, logger: Logger) throws {
        self.config = config
        self.limits = limits
        self.cache = cache
        self.store = store
        self.logger = logger
        let seen = try store.membersSeen()
        everSeen = NIOLockedValueBox(seen)
        savedMembersSeen = NIOLockedValueBox(seen)
        // Peers to hear from: seeds other than this node's own address.
        let hasPeers = config.seeds.contains { $0 != config.advertised.description }
        agreement = NIOLockedValueBox(MemberAgreement(members: seen.union([nodeID]), alone: !hasPeers))
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
        do {
            keys = try MemberKeys(caPEM: ca, certificatePEM: cert, keyPEM: key)
        } catch {
            throw ClusterError(message: "cannot use the node certificate to sign membership records: \(error)")
        }
        me = Membership.Info(name: nodeName, address: config.advertised.description, region: region, id: nodeID,
                             configDigest: configDigest)
        // A restarted node comes back with a higher incarnation than any it used before.
        membership = NIOLockedValueBox(Membership(me: me, seeds: config.seeds, config: Self.membershipConfig(config),
                                                  seed: UInt64.random(in: 0...UInt64.max),
                                                  startIncarnation: UInt64(Date().timeIntervalSince1970),
                                                  signer: keys))
        replicator = NIOLockedValueBox(Replicator(seed: UInt64.random(in: 0...UInt64.max)))
        ownerNames = NIOLockedValueBox([nodeName])
        authority = NIOLockedValueBox(FigureAuthority(me: nodeID, myRun: limits.holder))
        limits.join(self)
        cache.join(self)
        // Frames to a peer whose link was down were dropped: send it everything again.
        connections.reconnected.set { [weak self] address in
            guard let self, let peer = self.membership.withLockedValue({ m in m.members.values.first { $0.info.address == address }?.info.name })
            else { return }
            self.replicator.withLockedValue { $0.reset(peer: peer) }
        }
        // With peers to hear from, admit nothing under a rule until caught up with them.
        if hasPeers {
            limits.expectCatchUp(until: Self.now() + Self.catchUpMs)
        }
    }

    /// The count of forged membership records already logged.
    private let forgedLogged = NIOLockedValueBox(0)
    /// When the peer links are next checked for stalls (Unix ms).
    private let nextStallCheck = NIOLockedValueBox<Int64>(0)

    /// Every member ever seen here that has not left (ids): the members among which a `strict`
    /// counter's owner is picked. A dead member stays: it may be alive behind a partition.
    /// Kept in the store (`NodeStore.membersSeen`): a restarted node that forgot them would take
    /// itself for the owner of the keys of members it has not heard from yet, and grant itself
    /// their rights (found by the simulator: `strict` overshot after a restart).
    private let everSeen: NIOLockedValueBox<Set<String>>
    /// Whether every live peer holds the same `everSeen` (`strict` owners grant only then).
    private let agreement: NIOLockedValueBox<MemberAgreement>
    /// What `agreement` said at the last tick (nil: no rule is `strict`), for the status.
    let membersAgreed = NIOLockedValueBox<Bool?>(nil)
    /// What the store holds of `everSeen`, and the store.
    private let savedMembersSeen: NIOLockedValueBox<Set<String>>
    private let store: NodeStore

    func ownsAlert(_ key: LimitsEngine.AlertKey) -> Bool {
        Rendezvous.owner(of: key.ownerKey, among: ownerNames.withLockedValue { $0 }) == me.name
    }

    func alertsFired(_ keys: [LimitsEngine.AlertKey]) {
        broadcast(AlertsCodec.encode(keys))
    }

    /// Sends each owner the asks for the counters it owns.
    func askForRights(_ needs: [LimitsEngine.RightsNeed], holder: String) {
        guard !needs.isEmpty else { return }
        let addresses = membership.withLockedValue { m in
            Dictionary(m.members.values.filter { !$0.info.id.isEmpty }.map { ($0.info.id, $0.info.address) }, uniquingKeysWith: { a, _ in a })
        }
        for (owner, asks) in Dictionary(grouping: needs, by: \.owner) {
            guard let address = addresses[owner] else { continue }
            // The asker's figures first, on the same connection: the owner merges them before the
            // ask, so it sees what this node used and gave back (rights whose lease lapsed) before
            // it grants again.
            let entries = limits.withCounters { $0.ownEntries(asks.map(\.key)) }
            // Requests wait on this round trip: urgent, ahead of bulk frames (in this order).
            for f in Replicator.frames(entries) { connections.send(f, to: address, urgent: true) }
            connections.send(RightsCodec.encode(holder: holder, asks.map { .init(key: $0.key, shortfall: $0.shortfall, need: $0.need, rate: $0.rate) }),
                             to: address, urgent: true)
        }
    }

    /// The live members and this node: who may own cache keys and alerts. Kept up to date by the
    /// tick, so the request path reads it without the membership lock.
    private let ownerNames: NIOLockedValueBox<[String]>

    /// Which figures a peer's counters may bring (its own, and those of nodes not live here):
    /// the live ids, kept up to date by the tick.
    private let authority: NIOLockedValueBox<FigureAuthority>

    static func now() -> Int64 { WallClock.nowMs() }

    /// Milliseconds on the monotonic clock, for membership's timers: an NTP step of the wall
    /// clock must not turn every suspect dead (or keep a dead member alive).
    static func monotonicNow() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// The membership timings of the config's profile, with its overrides.
    static func membershipConfig(_ c: ClusterConfig) -> Membership.Config {
        var m: Membership.Config = c.profile == .wan ? .wan : .lan
        if let v = c.probeIntervalMs { m.probeIntervalMs = v }
        if let v = c.probeTimeoutMs { m.probeTimeoutMs = v }
        if let v = c.suspicionMinMs { m.suspicionMinMs = v }
        return m
    }

    func run() async throws {
        let deliver: @Sendable (String, Frame) -> Void = { [weak self] peer, frame in self?.deliver(peer: peer, frame: frame) }
        let authenticated: @Sendable ([UInt8]) -> Void = { [weak self] certificate in self?.learnCertificates([certificate]) }
        let context = serverContext, logger = self.logger, maxFrame = config.maxFrameBytes, guardian = PeerConnectionGuard(logger: logger)
        let idleTimeout = TimeAmount.milliseconds(Int64(config.idleTimeoutMs))
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
                .childChannelOption(PeerKeepalive.idle, value: PeerKeepalive.idleSeconds)
                .childChannelOption(PeerKeepalive.interval, value: PeerKeepalive.intervalSeconds)
                .childChannelOption(PeerKeepalive.count, value: PeerKeepalive.probes)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let engine = try TLSEngine(context: context)
                        // A link on which nothing arrives is closed; the peer dials again when it has something to send.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                        try channel.pipeline.syncOperations.addHandler(
                            InboundPeerHandler(engine: engine, maxFrame: maxFrame, logger: logger, guardian: guardian,
                                               authenticated: authenticated, deliver: deliver))
                    }
                }
                .bind(host: config.listen.host, port: config.listen.port).get()
        } catch {
            throw ClusterError(message: "cannot listen for peers on \(config.listen): \(error)")
        }
        serverChannel.withLockedValue { $0 = channel }
        logger.info("listening for peers", metadata: ["address": "\(config.listen)", "advertised": "\(me.address)", "seeds": "\(config.seeds)"])
        let resolving = Task.detached { [weak self] in
            // Seed names are resolved at start and every 30 s, so nodes added later are found.
            while !Task.isCancelled {
                self?.resolveSeeds()
                try? await Task.sleep(for: .seconds(30))
            }
        }
        defer { resolving.cancel() }
        for await _ in AsyncTimerSequence(interval: .milliseconds(Self.tickMs)).cancelOnGracefulShutdown() {
            if let reason = stopReason.withLockedValue({ $0 }) {
                connections.closeAll()
                try? await channel.close()
                throw ClusterError(message: reason)
            }
            tick()
        }
        // Leave gracefully: give back the rights this node holds (its requests are drained), send
        // that with a last delta, tell a few peers, give the frames a moment, close.
        if limits.returnAllRights() > 0 {
            try? await Task.sleep(for: .milliseconds(Replicator.Config().deltaIntervalMs + 10))
            tick()
        }
        let now = Self.monotonicNow()
        perform(membership.withLockedValue { $0.leave(now: now) })
        try? await Task.sleep(for: .milliseconds(200))
        connections.closeAll()
        try? await channel.close()
    }

    /// Resolves the seeds' names (blocking: on a detached task) and gives membership the addresses.
    func resolveSeeds() {
        let names = Seeds.names(in: config.seeds)
        guard !names.isEmpty else { return }
        var resolved: [String: [String]] = [:]
        for name in names {
            let addresses = Self.resolve(name)
            if addresses.isEmpty { logger.warning("seed name does not resolve", metadata: ["name": "\(name)"]) }
            resolved[name] = addresses
        }
        let seeds = Seeds.expand(config.seeds, resolved: resolved)
        let changed = membership.withLockedValue { m -> Bool in
            let before = m.seeds
            m.setSeeds(seeds)
            return m.seeds != before
        }
        if changed { logger.info("seeds resolved", metadata: ["seeds": "\(seeds)"]) }
    }

    /// Every address (numeric, IPv4 and IPv6) `host` resolves to, in the resolver's order.
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var out: [String] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let ai = next {
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 {
                let address = String(cString: text)
                if !out.contains(address) { out.append(address) }
            }
            next = ai.pointee.ai_next
        }
        return out
    }

    /// Once per `tickMs`: the membership's timers, then what follows from the members: links,
    /// counter ownership, replication, and the agreement and rule digests.
    func tick() {
        let now = Self.now()
        let monotonic = Self.monotonicNow()
        tickMembership(now: monotonic)
        expireLeases(now: now)
        expireLookups(now: monotonic)
        expireAsks(now: monotonic)
        let peers = tickLinks(now: now)
        let agreementDue = tickOwnership(now: monotonic)
        replicate(to: peers, now: now)
        if !agreementDue.isEmpty { sendAgreement(to: agreementDue) }
        sendRulesDigest(to: peers, now: now)
    }

    /// Probes, suspicion timeouts and gossip; logs the forged records dropped since the last tick.
    private func tickMembership(now monotonic: Int64) {
        let (actions, forged) = membership.withLockedValue { ($0.tick(now: monotonic), $0.forgedRecords) }
        perform(actions)
        let before = forgedLogged.withLockedValue { seen in defer { seen = forged }; return seen }
        if forged > before {
            logger.warning("dropped membership records that their member did not sign (a peer passed on a forged record)",
                           metadata: ["count": "\(forged - before)", "total": "\(forged)"])
        }
    }

    /// The links: stalled ones closed (once a second), the members' addresses for the transport
    /// to check whom it dials, failed links dialled again; and the cache keys' owners. Returns
    /// the live members' names and addresses.
    private func tickLinks(now: Int64) -> [(String, String)] {
        if now >= nextStallCheck.withLockedValue({ $0 }) {
            nextStallCheck.withLockedValue { $0 = now + 1_000 }
            connections.closeStalled()
        }
        let (peers, owners) = membership.withLockedValue { m in
            // Suspects keep their cache keys: keys move when a member is dead, not on a suspicion.
            (m.live.map { ($0.info.name, $0.info.address) }, m.owners)
        }
        ownerNames.withLockedValue { if $0 != owners { $0 = owners } }
        // Each live member's address, for the transport to check whom it dials: an address two
        // live members claim (one took over the other's, which is not dead yet) is not checked.
        connections.expect(membership.withLockedValue { m in
            var byAddress: [String: String?] = [:]
            for member in m.live { byAddress[member.info.address] = byAddress[member.info.address] == nil ? member.info.name : .some(nil) }
            return byAddress.compactMapValues { $0 }
        })
        connections.redialFailed()
        return peers
    }

    /// Who owns which counters: the members ever seen (kept on disk), whether the live peers
    /// agree on them (`strict` owners grant only then), whose figures this node takes, and
    /// whether this node has caught up with its peers. Returns the members this node's members
    /// digest is due to.
    private func tickOwnership(now monotonic: Int64) -> [String] {
        let (liveIDs, seenIDs, leftIDs, goneIDs) = membership.withLockedValue { m in
            (m.live.map(\.info.id).filter { !$0.isEmpty },
             m.members.values.filter { $0.state != .left && !$0.info.id.isEmpty }.map(\.info.id),
             m.members.values.filter { $0.state == .left }.map(\.info.id),
             m.members.values.filter { ($0.state == .dead || $0.state == .left) && !$0.info.id.isEmpty }.map(\.info.id))
        }
        let all = everSeen.withLockedValue { seen in
            seen.formUnion(seenIDs)
            seen.subtract(leftIDs)
            return seen
        }
        if savedMembersSeen.withLockedValue({ $0 != all }) {
            // In the tick (a task, not an event loop), in order; rare (the members changed), and
            // a failed write is tried again at the next tick.
            do {
                try store.saveMembersSeen(all)
                savedMembersSeen.withLockedValue { $0 = all }
            } catch {
                logger.error("could not keep the cluster's members", metadata: ["error": "\(error)"])
            }
        }
        let live = Set(liveIDs)
        let gone = Set(goneIDs).subtracting(live).subtracting([me.id])
        // `strict` owners grant only while every live peer holds the same members ever seen; this
        // node's digest goes to those that need it after this tick's counters (below).
        let members = all.union([me.id]).sorted()
        let agreed = agreement.withLockedValue { a in
            a.setMembers(members)
            for id in gone { a.forget(id) }
            return a.agrees(live: liveIDs, now: monotonic)
        }
        let strict = limits.setOwnership(.init(live: (liveIDs + [me.id]).sorted(), all: members, agreed: agreed))
        let agreementDue = strict ? agreement.withLockedValue { $0.due(live: liveIDs, now: monotonic) } : []
        let shown: Bool? = strict ? agreed : nil
        if membersAgreed.withLockedValue({ old in defer { old = shown }; return old != shown }), strict {
            logger.info(agreed ? "every live peer holds the same members: strict owners grant" : "the peers' members differ: strict owners grant nothing until they agree")
        }
        authority.withLockedValue {
            if $0.live != live { $0.live = live }
            if $0.gone != gone { $0.gone = gone }
        }
        // A peer alive for a second has sent whatever it holds (a full delta when it saw this node
        // alive): if it held nothing, there was nothing to catch up with.
        if !limits.catchUp.withLockedValue({ $0.done }),
           membership.withLockedValue({ m in m.live.contains { $0.state == .alive && monotonic - $0.changedAt >= 1_000 } }) {
            limits.caughtUp("a peer has been alive for 1 s with nothing to send")
        }
        return agreementDue
    }

    /// Counter deltas to the live peers (`Replicator`), and every entry to a peer that needs them.
    private func replicate(to peers: [(String, String)], now: Int64) {
        let addresses = Dictionary(peers, uniquingKeysWith: { a, _ in a })
        var later = Replicator.Later()
        // A peer whose link has bulk frames waiting gets no delta now: its next one covers this
        // one's changes too (coalesced, rather than piled up behind the socket).
        let current = peers.filter { !connections.backlogged($0.1) }.map(\.0)
        let frames = limits.withCounters { counters in
            replicator.withLockedValue { $0.tick(now: now, counters: &counters, peers: current, later: &later) }
        }
        for (peer, frame) in frames {
            if let address = addresses[peer] { connections.send(frame, to: address) }
        }
        if replicator.withLockedValue({ r in defer { r.needsDigests = false }; return r.needsDigests }) { computeDigests() }
        // A peer that needs every entry (it joined, or came back) gets them a frame at a time.
        for peer in later.whole { if let address = addresses[peer] { sendAll(ofRules: nil, to: address) } }
    }

    /// This node's members digest to the members it is due to (`strict` ownership).
    private func sendAgreement(to agreementDue: [String]) {
        let byID = membership.withLockedValue { m in Dictionary(m.live.map { ($0.info.id, $0.info.address) }, uniquingKeysWith: { a, _ in a }) }
        for id in agreementDue {
            if let address = byID[id] { connections.send(agreement.withLockedValue { $0.frame(to: id) }, to: address) }
        }
    }

    /// Anti-entropy for rules: a digest to one live peer every 2 s.
    private func sendRulesDigest(to peers: [(String, String)], now: Int64) {
        if now >= nextRulesDigestAt.withLockedValue({ $0 }), let (_, address) = peers.randomElement() {
            nextRulesDigestAt.withLockedValue { $0 = now + RuleRecords.digestIntervalMs }
            let mine = limits.ruleRecords
            connections.send(RulesCodec.digest(mine.digest, count: mine.records.count, reply: false), to: address)
        }
    }

    /// Sends the entries of `rules` to `address` as the peer would take them from this node (a
    /// digest's answer: `FigureAuthority.forPeer`), or, with nil, this node's figures of every
    /// entry and those of the gone (a peer that needs every entry: `forNewPeer`). A frame at a time,
    /// each taken under the lock on its own, off the event loop: a rule with 200,000 scope values
    /// never holds admission up for long.
    func sendAll(ofRules rules: Set<String>?, to address: String) {
        let limits = self.limits, connections = self.connections, authority = self.authority
        let peer = membership.withLockedValue { m in m.members.values.first { $0.info.address == address }?.info.id }
        Task.detached {
            await Self.walk(rules.map(Array.init) ?? limits.withCounters({ $0.rules })) { rule, start in
                let authority = authority.withLockedValue { $0 }
                let sent: [CounterMap.Key: CounterMap.Entry]
                let next: Int?
                if rules == nil {
                    // A peer that needs every entry: this node's figures, and the gone's.
                    let (own, entries, after) = limits.withCounters { c in
                        let (entries, after) = c.entries(ofRule: rule, from: start, count: Replicator.entriesPerFrame)
                        return (c.ownEntries(entries.keys), authority.gone.isEmpty ? [:] : entries, after)
                    }
                    (sent, next) = (authority.forNewPeer(own: own, entries: { entries }), after)
                } else {
                    let (entries, after) = limits.withCounters { $0.entries(ofRule: rule, from: start, count: Replicator.entriesPerFrame) }
                    // Cut down outside the counters' lock: what the peer would take from this node.
                    (sent, next) = (authority.forPeer(entries, peer: peer), after)
                }
                if !sent.isEmpty { connections.send(Frame(kind: .counters, payload: CountersCodec.encode(sent)), to: address) }
                return next
            }
        }
    }

    /// Computes the counters' digests over the whole table a frame of entries at a time, each step
    /// under the lock on its own, off the event loop (at most one such walk at a time).
    func computeDigests() {
        guard digesting.withLockedValue({ busy in defer { busy = true }; return !busy }) else { return }
        let limits = self.limits, digesting = self.digesting
        Task.detached {
            let since = limits.withCounters { $0.beginDigests() }
            await Self.walk(limits.withCounters { $0.rules }) { rule, start in
                limits.withCounters { $0.digestRule(rule, from: start, count: Replicator.entriesPerFrame) }
            }
            limits.withCounters { $0.endDigests(since: since) }
            digesting.withLockedValue { $0 = false }
        }
    }
    private let digesting = NIOLockedValueBox(false)

    /// Walks each of `rules` a frame of entries at a time: `step` does one frame (under the lock on
    /// its own) from a position and returns where to go on from, nil at the rule's end.
    static func walk(_ rules: [String], _ step: (String, Int) -> Int?) async {
        for rule in rules {
            var position: Int? = 0
            while let start = position {
                position = step(rule, start)
                await pause()
            }
        }
    }

    /// A pause between two steps of a walk over the counters: the lock admission takes is not
    /// fair, and a walk that takes it back at once would starve admission for the whole walk
    /// (measured: 160 ms at 200,000 entries without it).
    static func pause() async { try? await Task.sleep(for: .microseconds(100)) }

    /// Sends rule changes made on this node to every live peer.
    func broadcastRules(_ records: [RuleRecord]) {
        for f in RulesCodec.frames(records, budget: rulesFrameBudget) { broadcast(f) }
    }

    func broadcast(_ frame: Frame) {
        for address in membership.withLockedValue({ m in m.live.map(\.info.address) }) { connections.send(frame, to: address) }
    }

    /// Rule frames stay well under the largest frame a peer accepts.
    var rulesFrameBudget: Int { min(RulesCodec.frameBudgetBytes, config.maxFrameBytes / 2) }

    /// A frame from a peer (called on an event loop), to the handler of its protocol.
    func deliver(peer: String, frame: Frame) {
        count(frame, from: peer)
        do {
            switch frame.kind {
            case .hello:
                break
            case .membership, .members, .certificateAsk, .certificates:
                try onMembership(frame, from: peer)
            case .counters, .digest, .rightsAsk, .rules, .rulesDigest, .alertsFired:
                try onLimits(frame, from: peer)
            case .cacheGet, .cacheAnswer, .cachePut, .cacheRelease:
                try onCache(frame, from: peer)
            case .readAsk, .readAnswer:
                try onRead(frame, from: peer)
            }
        } catch {
            logger.warning("dropped a malformed peer frame", metadata: ["peer": "\(peer)", "kind": "\(frame.kind)", "error": "\(error)"])
        }
    }

    /// Membership: SWIM messages, the members agreement of `strict` owners, and the certificates
    /// that check signed membership records.
    private func onMembership(_ frame: Frame, from peer: String) throws {
        switch frame.kind {
        case .membership:
            let envelope = try MembershipCodec.decode(frame.payload)
            guard envelope.from.name == peer else {
                logger.warning("dropped a membership message whose sender differs from the peer's certificate",
                               metadata: ["certificate": "\(peer)", "claimed": "\(envelope.from.name)"])
                return
            }
            let now = Self.monotonicNow()
            // It reached this node: the way back works too, so a link to it that failed during
            // a cut is dialled again now rather than after its backoff.
            connections.heard(from: envelope.from.address)
            perform(membership.withLockedValue { $0.receive(envelope, now: now) })
        case .members:
            let (digest, _, wantsReply) = try MemberAgreement.decode(frame.payload)
            guard let sender = id(of: peer) else { return }
            if let reply = agreement.withLockedValue({ $0.heard(digest, from: sender, wantsReply: wantsReply) ? $0.frame(to: sender) : nil }),
               let address = address(of: peer) {
                connections.send(reply, to: address)
            }
        case .certificateAsk:
            let names = try CertificatesCodec.decodeAsk(frame.payload)
            let found = names.compactMap { keys.certificate(of: $0) }
            guard !found.isEmpty, let address = address(of: peer) else { return }
            for f in CertificatesCodec.answers(found, budget: config.maxFrameBytes / 2) { connections.send(f, to: address) }
        case .certificates:
            learnCertificates(try CertificatesCodec.decodeAnswer(frame.payload))
        default:
            break
        }
    }

    /// The limits: counter deltas and digests, asks for rights, rule records and fired alerts.
    private func onLimits(_ frame: Frame, from peer: String) throws {
        switch frame.kind {
        case .counters:
            let entries = try CountersCodec.decode(frame.payload)
            let sender = id(of: peer)
            limits.merge(authority.withLockedValue { $0.admit(entries, from: sender) }.entries)
        case .digest:
            let theirs = try CountersCodec.decodeDigest(frame.payload)
            // Nil while a large table's digests are being computed: this round is skipped.
            let differing = limits.withCounters { c in c.digests().map { Replicator.differing(theirs: theirs, ours: $0) } } ?? []
            guard !differing.isEmpty, let address = address(of: peer) else { return }
            sendAll(ofRules: differing, to: address)
        case .rightsAsk:
            let (holder, asks) = try RightsCodec.decode(frame.payload)
            // Rights go to the asking node's own run: a peer cannot ask in another's name.
            guard let sender = id(of: peer), RightsEntry.split(holder: holder).node == sender else {
                logger.warning("dropped an ask for rights on behalf of another node",
                               metadata: ["peer": "\(peer)", "holder": "\(holder)"])
                return
            }
            var answer: [CounterMap.Key: CounterMap.Entry] = [:]
            for ask in asks {
                if let entry = limits.grant(ask.key, to: holder, shortfall: ask.shortfall, need: ask.need, rate: ask.rate) { answer[ask.key] = entry }
            }
            if !answer.isEmpty, let address = address(of: peer) {
                for f in Replicator.frames(answer) { connections.send(f, to: address, urgent: true) }
            }
        case .rules:
            let records = try RulesCodec.decode(frame.payload)
            // SQLite: off the event loop. Merges commute, so their order does not matter.
            let limits = self.limits
            Task.detached { limits.mergeRules(records) }
        case .rulesDigest:
            let theirs = try RulesCodec.decodeDigest(frame.payload)
            let mine = limits.ruleRecords
            guard theirs.digest != mine.digest, let address = address(of: peer) else { return }
            // Send everything held (they keep what is newer), and, unless this is the answer to
            // our own digest, our digest, so they send back what we lack.
            for f in RulesCodec.frames(mine.records, budget: rulesFrameBudget) { connections.send(f, to: address) }
            if !theirs.reply { connections.send(RulesCodec.digest(mine.digest, count: mine.records.count, reply: true), to: address) }
        case .alertsFired:
            limits.markFired(try AlertsCodec.decode(frame.payload))
        default:
            break
        }
    }

    /// The cache across nodes: a key's owner answers lookups and keeps leases; the asker gets
    /// answers.
    private func onCache(_ frame: Frame, from peer: String) throws {
        switch frame.kind {
        case .cacheGet:
            let (id, key) = try CacheCodec.decodeGet(frame.payload)
            guard let address = address(of: peer) else { return }
            Task { await self.answerCacheGet(id: id, key: key, peer: peer, address: address) }
        case .cacheAnswer:
            let (id, answer) = try CacheCodec.decodeAnswer(frame.payload)
            var pending = false
            if case .pending = answer { pending = true }
            let now = Self.monotonicNow()
            lookups.withLockedValue { $0.answer(id, pending: pending, now: now) }?.resume(returning: answer)
        case .cachePut:
            let (key, entry) = try CacheCodec.decodePut(frame.payload)
            // Stored only under the lease this node, the key's owner, gave that peer ("you fetch
            // it"): a peer cannot plant an answer for a key, nor one fetched after its lease ended.
            guard let flight = leases.withLockedValue({ $0.take(key, from: peer) }) else {
                logger.debug("dropped a cache entry from a peer that holds no lease for its key", metadata: ["peer": "\(peer)"])
                return
            }
            if entry.expiresAtMs > Self.now() { cache.store(key, entry) }
            flight.complete(entry)
        case .cacheRelease:
            let key = try CacheCodec.decodeRelease(frame.payload), now = Self.now()
            leases.withLockedValue { $0.release(key, from: peer, now: now) }?.complete(nil)
        default:
            break
        }
    }

    /// Keeps the certificates the cluster CA signed, and applies the membership records that waited
    /// for them.
    func learnCertificates(_ certificates: [[UInt8]]) {
        let names = certificates.compactMap { keys.learn($0) }
        if names.count < certificates.count {
            logger.warning("dropped certificates from a peer that the cluster CA did not sign or that are not valid now",
                           metadata: ["count": "\(certificates.count - names.count)"])
        }
        guard !names.isEmpty else { return }
        let now = Self.monotonicNow()
        perform(membership.withLockedValue { $0.certificatesLearned(names, now: now) })
    }

    /// The node id of the member named `peer` (the name on its certificate), if it is known.
    func id(of peer: String) -> String? { membership.withLockedValue { $0.members[peer]?.info.id } }
    /// The address of the member named `name`, as the membership knows it.
    func address(of name: String) -> String? { membership.withLockedValue { $0.members[name]?.info.address } }

    func perform(_ actions: [Membership.Action]) {
        for action in actions {
            switch action {
            case .send(let address, let envelope):
                connections.send(Frame(kind: .membership, payload: MembershipCodec.encode(envelope)), to: address)
            case .askCertificates(let names, let address):
                for f in CertificatesCodec.asks(names) { connections.send(f, to: address) }
            case .duplicateID(let other):
                let who = other.name == me.name ? "another node runs under this node's name '\(other.name)' at \(other.address)"
                    : "node '\(other.name)' at \(other.address) has this node's id \(me.id)"
                let message = "\(who) and started earlier: this node's data directory is a copy of another node's. Give each node its own data directory (a copy would merge two nodes' spend into one slot and undercount it)"
                let first = stopReason.withLockedValue { reason -> Bool in
                    guard reason == nil else { return false }
                    reason = message
                    return true
                }
                if first { logger.error("refusing to run: \(message)") }
            case .changed(let member):
                logger.info("peer is \(member.state)", metadata: [
                    "peer": "\(member.info.name)", "address": "\(member.info.address)", "incarnation": "\(member.incarnation)",
                ])
                if member.state == .alive {
                    replicator.withLockedValue { $0.reset(peer: member.info.name) }
                    // A member (re)joined: compare rules with it at once.
                    let mine = limits.ruleRecords
                    connections.send(RulesCodec.digest(mine.digest, count: mine.records.count, reply: false), to: member.info.address)
                }
                // A dead node's reservations stop counting when their lease runs out (`CounterMap`):
                // no node writes another's figures.
                if member.state == .dead || member.state == .left {
                    cacheMemberGone(member.info.name)
                    for w in asks.withLockedValue({ $0.memberGone(member.info.name) }) { w.resume(returning: nil) }
                }
            }
        }
    }

    // MARK: - The cache across nodes

    /// The owner of a cache key among the live members and this node (rendezvous hashing).
    func cacheOwner(of key: String) -> String {
        Rendezvous.owner(of: key, among: ownerNames.withLockedValue { $0 }) ?? me.name
    }

    /// Asks `owner` for its entry under `key`, or for the right to fetch it. `.miss` when the owner
    /// does not answer in time, or when the fetch it said to wait for ends without an answer.
    func remoteAcquire(_ key: String, owner: String) async -> CacheCodec.Answer {
        guard let address = address(of: owner) else { return .miss }
        let lookups = self.lookups
        let id = lookups.withLockedValue { $0.nextID() }
        let end: @Sendable () -> Void = { lookups.withLockedValue { $0.cancel(id) }?.resume(returning: .miss) }
        // No timer per lookup: the tick ends those past their deadline (`expireLookups`).
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = Self.monotonicNow()
                lookups.withLockedValue { $0.start(id, owner: owner, waiter: continuation, now: now) }
                if Task.isCancelled { end() } else { connections.send(CacheCodec.get(id: id, key: key), to: address) }
            }
        } onCancel: {
            end()
        }
    }

    /// The owner's side of `cacheGet`: its entry; or, when nobody is fetching the key, "you
    /// fetch it" and a flight held for the peer until its answer or release arrives; or "wait" and
    /// the answer of the flight in progress.
    private func answerCacheGet(id: UInt64, key: String, peer: String, address: String) async {
        let now = Self.now()
        switch await cache.acquireForPeer(key, now: now) {
        case .hit(let entry):
            connections.send(answer(id: id, entry), to: address)
        case .leader(let ticket):
            // The peer may have given up waiting and released already (its release is handled at
            // once, this answer in a task): then there is nobody to wait for.
            switch leases.withLockedValue({ $0.grant(key, to: peer, flight: ticket, now: now) }) {
            case .alreadyReleased:
                ticket.complete(nil)
                connections.send(CacheCodec.answer(id: id, .miss), to: address)
            case .granted(let replaced):
                replaced?.complete(nil)
                connections.send(CacheCodec.answer(id: id, .lead), to: address)
            }
        case .follower(let flight):
            connections.send(CacheCodec.answer(id: id, .pending), to: address)
            let entry = await flight.wait()
            connections.send(entry.map { answer(id: id, $0) } ?? CacheCodec.answer(id: id, .miss), to: address)
        }
    }

    /// An entry as an answer, or "fetch it yourself" when it would not fit in a frame the peer accepts.
    private func answer(id: UInt64, _ entry: CachedResponse) -> Frame {
        entry.size < config.maxFrameBytes - 4096 ? CacheCodec.answer(id: id, .entry(entry)) : CacheCodec.answer(id: id, .miss)
    }

    /// Flights held for a peer that is gone end without an answer (their waiters fetch on their
    /// own), and requests waiting on a gone owner stop waiting.
    private func cacheMemberGone(_ name: String) {
        for flight in leases.withLockedValue({ $0.memberGone(name) }) { flight.complete(nil) }
        for w in lookups.withLockedValue({ $0.ownerGone(name) }) { w.resume(returning: .miss) }
    }

    /// Ends flights held for peers that never answered.
    private func expireLeases(now: Int64) {
        for flight in leases.withLockedValue({ $0.expire(now: now) }) { flight.complete(nil) }
    }

    /// Lookups whose owner did not answer in time, or whose wait for another node's fetch ran
    /// out, end as misses: their requests fetch on their own.
    private func expireLookups(now monotonic: Int64) {
        for w in lookups.withLockedValue({ $0.expire(now: monotonic) }) { w.resume(returning: .miss) }
    }

    /// Hands an answer fetched after a miss to the key's owner, which stores it. One too large
    /// for a frame releases the owner's flight instead.
    func sendToOwner(_ key: String, _ entry: CachedResponse, owner: String) {
        guard let address = address(of: owner) else { return }
        if entry.size < config.maxFrameBytes - 4096 {
            connections.send(CacheCodec.put(key: key, entry: entry), to: address)
        } else {
            connections.send(CacheCodec.release(key: key), to: address)
        }
    }

    /// Tells the owner this node's fetch of `key` ended without a cacheable answer.
    func releaseToOwner(_ key: String, owner: String) {
        guard let address = address(of: owner) else { return }
        connections.send(CacheCodec.release(key: key), to: address)
    }

    /// Marks the dead member `name` as gone for good (`POST /cluster/members/{name}/forget`): it
    /// stops owning `strict` counters, and what it held of their rights goes back to the pools
    /// once its lease has passed. Throws a 404 for an unknown name and a 409 for a live member.
    func forget(name: String) throws(GatewayError) -> String {
        let result = membership.withLockedValue { $0.markLeft(name: name, now: Self.monotonicNow()) }
        switch result {
        case .marked(let m):
            logger.warning("an operator marked a dead member as gone for good", metadata: ["member": "\(name)", "id": "\(m.info.id)"])
            return AdminJSON.encode(AdminAnswer.Forgotten(name: name, id: m.info.id))
        case .alreadyLeft:
            return AdminJSON.encode(AdminAnswer.Forgotten(name: name))
        case .unknown:
            throw GatewayError.notFound("no member named '\(name)' (see GET /cluster/status)")
        case .isMe:
            throw GatewayError.badRequest("'\(name)' is this node: stop it with SIGTERM to have it leave", code: "member_is_this_node")
        case .live(let state):
            throw GatewayError(status: 409, type: "invalid_request_error", code: "member_not_dead",
                               message: "member '\(name)' is \(state), not dead: stop it first, and forget it once the cluster sees it dead")
        }
    }

    /// This node reloaded its config: its membership record carries the new digest to the peers.
    func setConfigDigest(_ digest: String) {
        membership.withLockedValue { $0.setConfigDigest(digest) }
    }

    /// Members as this node sees them, for `/cluster/status`.
    typealias View = (me: Membership.Info, incarnation: UInt64, healthScore: Int, forgedRecords: Int, members: [Membership.Member])
    var view: View {
        membership.withLockedValue { m in
            (m.me, m.incarnation, m.awareness, m.forgedRecords, m.members.values.sorted { $0.info.name < $1.info.name })
        }
    }
}

struct ClusterError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
