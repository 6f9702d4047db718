import Foundation

/// SWIM-style membership as a pure state machine: it takes events (a tick of the clock, a message
/// from a peer, a request to leave) with the current time and returns actions (messages to send,
/// members whose state changed). No sockets, timers or threads; the shell executes the actions.
/// That is what lets tests run a 5-node cluster deterministically and simulate 1,000 nodes.
///
/// Protocol: every `probeIntervalMs` a member is pinged (round robin over a shuffled list). No ack
/// within `probeTimeoutMs`: `indirectProbes` other members are asked to ping it (ping-req). No ack
/// by the end of the period: it becomes *suspect*, which is gossiped; a suspect that does not
/// refute (by gossiping itself alive with a higher incarnation) within the suspicion timeout is
/// *dead*. Updates ride piggybacked on pings and acks, each sent a bounded number of times; a
/// full-state exchange (push-pull sync) on joining and every `syncIntervalMs` repairs whatever
/// gossip missed. Seeds and dead members are pinged now and then, so a partition heals by itself.
public struct Membership: Sendable {
    public struct Config: Sendable, Equatable {
        public var probeIntervalMs: Int64 = 1000
        /// Direct ack wait before asking others; generous for 150 ms links (an ack is one round trip).
        public var probeTimeoutMs: Int64 = 500
        public var indirectProbes = 3
        /// Suspicion lasts max(suspicionMinMs, suspicionMultiplier × log10(n + 1) × probe interval).
        public var suspicionMinMs: Int64 = 5000
        public var suspicionMultiplier: Double = 4
        /// Each update is piggybacked this many × ceil(log10(n + 1)) times.
        public var retransmitMultiplier = 4
        public var maxPiggyback = 12
        public var syncIntervalMs: Int64 = 10_000
        /// How often absent seeds and dead members are sent the member list, to join or heal a
        /// partition; and to how many of them at a time.
        public var reconnectIntervalMs: Int64 = 1000
        public var reconnectFanout = 3
        /// Dead and departed members are forgotten after this.
        public var forgetAfterMs: Int64 = 120_000
        public init() {}
    }

    public enum State: UInt8, Sendable, Equatable, CustomStringConvertible {
        case alive = 0, suspect = 1, dead = 2, left = 3
        public var description: String { ["alive", "suspect", "dead", "left"][Int(rawValue)] }
    }

    public struct Info: Sendable, Hashable {
        public var name: String
        public var address: String
        public var region: String
        /// The node's stable id (its slot in the replicated counters).
        public var id: String
        /// The digest of the node's gateway settings (`/cluster/status` flags members whose
        /// digest differs); it changes when the node reloads its config.
        public var configDigest: String
        public init(name: String, address: String, region: String = "", id: String = "", configDigest: String = "") {
            self.name = name
            self.address = address
            self.region = region
            self.id = id
            self.configDigest = configDigest
        }
    }

    public struct Member: Sendable, Equatable {
        public var info: Info
        public var state: State
        public var incarnation: UInt64
        public var changedAt: Int64
        public var lastHeardAt: Int64?
        public var rttMs: Int64?
    }

    /// One piece of gossip: a member's state at an incarnation.
    public struct Update: Sendable, Equatable {
        public var info: Info
        public var state: State
        public var incarnation: UInt64
        public init(info: Info, state: State, incarnation: UInt64) {
            self.info = info
            self.state = state
            self.incarnation = incarnation
        }
    }

    public enum Message: Sendable, Equatable {
        case ping(seq: UInt64)
        case ack(seq: UInt64)
        /// "Ping `target` for me and pass its ack on."
        case pingRequest(seq: UInt64, target: Info)
        /// Full state, asking for the receiver's in return (`reply` false) or answering (true).
        case sync(members: [Update], reply: Bool)
    }

    /// What travels: the sender, its incarnation, the message and piggybacked updates.
    public struct Envelope: Sendable, Equatable {
        public var from: Info
        public var incarnation: UInt64
        public var message: Message
        public var updates: [Update]
        public init(from: Info, incarnation: UInt64, message: Message, updates: [Update]) {
            self.from = from
            self.incarnation = incarnation
            self.message = message
            self.updates = updates
        }
    }

    public enum Action: Sendable, Equatable {
        case send(to: String, Envelope)
        case changed(Member)
        /// Another live node carries this node's id (or its name, at another address): one of the
        /// two runs on a copy of the other's data directory, and the two would write one set of
        /// counter slots. This node is the one to stop (it started later: its incarnation is
        /// higher, or equal with the higher name or address).
        case duplicateID(of: Info)
    }

    public private(set) var me: Info
    public let config: Config
    public private(set) var incarnation: UInt64 = 0
    public private(set) var members: [String: Member] = [:]
    public private(set) var leaving = false
    public private(set) var seeds: [String]
    var rng: SplitMix64
    var seq: UInt64 = 0
    var probeOrder: [String] = []
    var probe: (target: String, seq: UInt64, sentAt: Int64, askedOthers: Bool)?
    /// Pings sent for others: our seq → (who asked, their seq, expiry).
    var relayed: [UInt64: (origin: String, seq: UInt64, expires: Int64)] = [:]
    var gossip: [String: (update: Update, sendsLeft: Int)] = [:]
    var nextProbeAt: Int64 = 0
    /// Every known member's name, for O(1) random picks; and the count of live ones.
    var roster: [String] = []
    var rosterIndex: [String: Int] = [:]
    public private(set) var liveCount = 0
    /// Members whose state has a deadline: suspects (suspicion runs out), dead and departed (forgotten).
    var timed: Set<String> = []
    var nextSyncAt: Int64 = 0
    var nextReconnectAt: Int64 = 0

    /// The incarnation this run started at (the shell starts it from the clock): an update about
    /// this node below it is from an earlier run.
    let startIncarnation: UInt64
    /// Addresses of other live nodes with this node's name that were told so (once each).
    var copiesTold: Set<String> = []

    /// `seeds` are addresses (the same list on every node, this node's own included, is fine).
    public init(me: Info, seeds: [String], config: Config = Config(), seed: UInt64 = 0, startIncarnation: UInt64 = 0) {
        self.me = me
        self.incarnation = startIncarnation
        self.startIncarnation = startIncarnation
        self.config = config
        self.seeds = seeds.filter { $0 != me.address }
        var h: UInt64 = 1469598103934665603
        for b in me.name.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        self.rng = SplitMix64(seed: seed ^ h)
    }

    /// This node's config digest changed (a reload): a new incarnation carries its record, with
    /// the new digest, to every member.
    public mutating func setConfigDigest(_ digest: String) {
        guard digest != me.configDigest else { return }
        me.configDigest = digest
        incarnation += 1
        queue(Update(info: me, state: .alive, incarnation: incarnation))
    }

    /// Replaces the seeds (after their names were resolved again); this node's own address is dropped.
    public mutating func setSeeds(_ seeds: [String]) {
        self.seeds = seeds.filter { $0 != me.address }
    }

    // MARK: - Views

    public var aliveCount: Int { liveCount }

    /// Live members (alive or suspect), by name.
    public var live: [Member] { members.values.filter { $0.state == .alive || $0.state == .suspect }.sorted { $0.info.name < $1.info.name } }

    var clusterSize: Int { aliveCount + 1 }

    var suspicionTimeout: Int64 {
        let scaled = config.suspicionMultiplier * log10(Double(clusterSize + 1)) * Double(config.probeIntervalMs)
        return max(config.suspicionMinMs, Int64(scaled))
    }

    var retransmits: Int { config.retransmitMultiplier * max(1, Int(log10(Double(clusterSize + 1)).rounded(.up))) }

    // MARK: - Events

    /// Advances time: probes, ping-reqs, suspicion timeouts, syncs, reconnects.
    public mutating func tick(now: Int64) -> [Action] {
        var out: [Action] = []
        guard !leaving else { return out }
        // The probe in flight.
        if let p = probe {
            if !p.askedOthers, now >= p.sentAt + config.probeTimeoutMs, let target = members[p.target] {
                probe?.askedOthers = true
                let helpers = pick(config.indirectProbes, excluding: [p.target])
                for h in helpers {
                    out.append(send(to: h.info.address, .pingRequest(seq: p.seq, target: target.info)))
                }
            }
            if now >= p.sentAt + config.probeIntervalMs {
                probe = nil
                if let m = members[p.target], m.state == .alive {
                    out += apply(Update(info: m.info, state: .suspect, incarnation: m.incarnation), now: now)
                }
            }
        }
        // A new probe.
        if probe == nil, now >= nextProbeAt {
            nextProbeAt = now + config.probeIntervalMs
            if let target = nextProbeTarget() {
                seq += 1
                probe = (target.info.name, seq, now, false)
                out.append(send(to: target.info.address, .ping(seq: seq)))
            }
        }
        // Suspicion runs out; the long dead are forgotten.
        for name in timed {
            guard let m = members[name] else {
                timed.remove(name)
                continue
            }
            if m.state == .suspect, now >= m.changedAt + suspicionTimeout {
                out += apply(Update(info: m.info, state: .dead, incarnation: m.incarnation), now: now)
            } else if m.state == .dead || m.state == .left, now >= m.changedAt + config.forgetAfterMs {
                forget(name)
            }
        }
        relayed = relayed.filter { $0.value.expires > now }
        // Full-state sync with someone, to repair what gossip missed.
        if now >= nextSyncAt {
            nextSyncAt = now + config.syncIntervalMs
            if let partner = pick(1, excluding: []).first {
                out.append(send(to: partner.info.address, .sync(members: snapshot(), reply: false)))
            }
        }
        // Seeds we do not know as live, and dead members: ping now and then (join, heal).
        if now >= nextReconnectAt {
            nextReconnectAt = now + config.reconnectIntervalMs
            var liveSeeds: Set<String> = []
            if !seeds.isEmpty {
                let wanted = Set(seeds)
                for m in members.values where (m.state == .alive || m.state == .suspect) && wanted.contains(m.info.address) {
                    liveSeeds.insert(m.info.address)
                }
            }
            var candidates = seeds.filter { !liveSeeds.contains($0) }
            candidates += timed.compactMap { members[$0] }.filter { $0.state == .dead }.map(\.info.address)
            candidates.shuffle(using: &rng)
            var picked: [String] = []
            for address in candidates where picked.count < config.reconnectFanout && !picked.contains(address) { picked.append(address) }
            if !picked.isEmpty {
                let list = snapshot()
                for address in picked { out.append(send(to: address, .sync(members: list, reply: false))) }
            }
        }
        return out
    }

    /// A message from a peer.
    public mutating func receive(_ envelope: Envelope, now: Int64) -> [Action] {
        guard !leaving else { return [] }
        if envelope.from.name == me.name {
            // A message sent by another live node under this node's name: one of the two runs on a
            // copy of the other's data directory (name and certificate included). The later one
            // (higher incarnation, then the higher address) stops; the earlier answers, so the
            // later hears it too.
            guard envelope.from.address != me.address else { return [] }
            let later = envelope.incarnation < incarnation || (envelope.incarnation == incarnation && envelope.from.address < me.address)
            if later { return [.duplicateID(of: envelope.from)] }
            return copiesTold.insert(envelope.from.address).inserted ? [send(to: envelope.from.address, .ping(seq: 0))] : []
        }
        var out: [Action] = []
        // A member this node suspects is talking to it: make sure it hears of the suspicion (on
        // the answer), so it refutes in time even if the gossip about it ran out while it was away.
        if let m = members[envelope.from.name], m.state == .suspect, m.incarnation >= envelope.incarnation {
            queue(Update(info: m.info, state: .suspect, incarnation: m.incarnation))
        }
        // Hearing from a member directly proves it is alive at its incarnation.
        out += apply(Update(info: envelope.from, state: .alive, incarnation: envelope.incarnation), now: now, direct: true)
        members[envelope.from.name]?.lastHeardAt = now
        for update in envelope.updates { out += apply(update, now: now) }
        switch envelope.message {
        case .ping(let s):
            out.append(send(to: envelope.from.address, .ack(seq: s)))
        case .ack(let s):
            if let p = probe, p.seq == s {
                if p.target == envelope.from.name { members[p.target]?.rttMs = now - p.sentAt }
                probe = nil
            } else if let r = relayed.removeValue(forKey: s), let origin = members[r.origin] {
                out.append(send(to: origin.info.address, .ack(seq: r.seq)))
            }
        case .pingRequest(let s, let target):
            seq += 1
            relayed[seq] = (envelope.from.name, s, now + config.probeIntervalMs)
            out.append(send(to: target.address, .ping(seq: seq)))
        case .sync(let list, let reply):
            for update in list { out += apply(update, now: now) }
            if !reply { out.append(send(to: envelope.from.address, .sync(members: snapshot(), reply: true))) }
        }
        return out
    }

    /// Leaves gracefully: tells a few members, then stops taking part.
    public mutating func leave(now: Int64) -> [Action] {
        incarnation += 1
        let update = Update(info: me, state: .left, incarnation: incarnation)
        var out: [Action] = []
        for m in pick(max(config.indirectProbes, 3), excluding: []) {
            out.append(.send(to: m.info.address, Envelope(from: me, incarnation: incarnation, message: .ping(seq: 0), updates: [update])))
        }
        leaving = true
        return out
    }

    /// What `markLeft(name:now:)` did.
    public enum MarkLeft: Sendable, Equatable {
        case marked(Member)
        case unknown
        case alreadyLeft
        /// The member is alive or suspect: only a member the cluster sees as dead can be marked.
        case live(State)
        /// The name is this node's own.
        case isMe
    }

    /// The operator says the dead member `name` will not come back: it is marked as having left,
    /// as if it had left gracefully, and the others learn it by gossip. A member that is alive or
    /// suspect is refused (stop it first); should a marked node come back after all, it rejoins
    /// with a higher incarnation, as any restarted node does.
    public mutating func markLeft(name: String, now: Int64) -> MarkLeft {
        guard name != me.name else { return .isMe }
        guard let m = members[name] else { return .unknown }
        switch m.state {
        case .left: return .alreadyLeft
        case .alive, .suspect: return .live(m.state)
        case .dead:
            _ = apply(Update(info: m.info, state: .left, incarnation: m.incarnation), now: now)
            return .marked(members[name] ?? m)
        }
    }

    // MARK: - Rules

    /// Applies one update by SWIM's precedence: a higher incarnation wins; at the same incarnation
    /// suspect beats alive and dead beats both; departed is final. About this node, suspicion or
    /// death is refuted with a higher incarnation.
    mutating func apply(_ u: Update, now: Int64, direct: Bool = false) -> [Action] {
        if !me.id.isEmpty, u.info.id == me.id, u.info.name != me.name {
            // Never a member: the later of the two stops; the earlier waits for that.
            guard u.state == .alive || u.state == .suspect else { return [] }
            let later = u.incarnation < incarnation || (u.incarnation == incarnation && u.info.name < me.name)
            return later ? [.duplicateID(of: u.info)] : []
        }
        if u.info.name == me.name {
            if u.state == .alive, u.info.address != me.address, u.incarnation >= startIncarnation,
               copiesTold.insert(u.info.address).inserted {
                // Another node is alive under this name at another address, at an incarnation no
                // earlier run of this node had: a copy. Tell it directly (see `receive`).
                return [send(to: u.info.address, .ping(seq: 0))]
            }
            guard u.state == .suspect || u.state == .dead, u.incarnation >= incarnation else { return [] }
            incarnation = u.incarnation + 1
            queue(Update(info: me, state: .alive, incarnation: incarnation))
            return []
        }
        let current = members[u.info.name]
        let accept: Bool
        if let c = current {
            switch u.state {
            case .alive:
                // A restarted node comes back with a higher incarnation (the shell starts it from the clock).
                accept = u.incarnation > c.incarnation || (direct && c.state == .dead && u.incarnation >= c.incarnation)
            case .suspect:
                accept = (c.state == .alive && u.incarnation >= c.incarnation) || (c.state == .suspect && u.incarnation > c.incarnation)
            case .dead:
                accept = (c.state == .alive || c.state == .suspect) && u.incarnation >= c.incarnation
            case .left:
                accept = c.state != .left && u.incarnation >= c.incarnation
            }
        } else {
            accept = u.state == .alive || u.state == .suspect
        }
        guard accept else {
            if current != nil && u.info.address != current!.info.address && u.incarnation >= current!.incarnation {
                members[u.info.name]?.info = u.info
            }
            return []
        }
        let member = Member(info: u.info, state: u.state, incarnation: u.incarnation, changedAt: now,
                            lastHeardAt: current?.lastHeardAt, rttMs: current?.rttMs)
        members[u.info.name] = member
        let wasLive = current.map { $0.state == .alive || $0.state == .suspect } ?? false
        let isLive = u.state == .alive || u.state == .suspect
        liveCount += (isLive ? 1 : 0) - (wasLive ? 1 : 0)
        if u.state == .alive { timed.remove(u.info.name) } else { timed.insert(u.info.name) }
        if current == nil {
            rosterIndex[u.info.name] = roster.count
            roster.append(u.info.name)
            probeOrder.insert(u.info.name, at: Int(rng.next() % UInt64(probeOrder.count + 1)))
        }
        queue(u)
        return current?.state == u.state ? [] : [.changed(member)]
    }

    mutating func queue(_ u: Update) {
        gossip[u.info.name] = (u, retransmits)
    }

    /// Up to `maxPiggyback` pending updates, those sent least often first; each use counts.
    /// One pass over the queue keeping the best few (no sort of the whole queue per message).
    mutating func piggyback() -> [Update] {
        guard !gossip.isEmpty else { return [] }
        let k = config.maxPiggyback
        var best: [(name: String, left: Int)] = []
        best.reserveCapacity(k + 1)
        for (name, entry) in gossip {
            if best.count == k, let worst = best.last, entry.sendsLeft < worst.left || (entry.sendsLeft == worst.left && name > worst.name) {
                continue
            }
            var i = best.count
            while i > 0, best[i - 1].left < entry.sendsLeft || (best[i - 1].left == entry.sendsLeft && best[i - 1].name > name) { i -= 1 }
            best.insert((name, entry.sendsLeft), at: i)
            if best.count > k { best.removeLast() }
        }
        var out: [Update] = []
        out.reserveCapacity(best.count)
        for (name, _) in best {
            guard let entry = gossip[name] else { continue }
            out.append(entry.update)
            if entry.sendsLeft <= 1 { gossip[name] = nil } else { gossip[name]?.sendsLeft -= 1 }
        }
        return out
    }

    mutating func send(to address: String, _ message: Message) -> Action {
        .send(to: address, Envelope(from: me, incarnation: incarnation, message: message, updates: piggyback()))
    }

    func snapshot() -> [Update] {
        var out = [Update(info: me, state: .alive, incarnation: incarnation)]
        out.reserveCapacity(members.count + 1)
        for m in members.values { out.append(Update(info: m.info, state: m.state, incarnation: m.incarnation)) }
        return out
    }

    /// Round robin over live members in a shuffled order, reshuffled each round.
    mutating func nextProbeTarget() -> Member? {
        for _ in 0..<2 {
            while let name = probeOrder.first {
                probeOrder.removeFirst()
                if let m = members[name], m.state == .alive || m.state == .suspect { return m }
            }
            probeOrder = members.values.filter { $0.state == .alive || $0.state == .suspect }.map(\.info.name).sorted()
            probeOrder.shuffle(using: &rng)
        }
        return nil
    }

    /// Up to `n` distinct live members at random (a few random draws, not a scan of everyone).
    mutating func pick(_ n: Int, excluding: Set<String>) -> [Member] {
        guard !roster.isEmpty, n > 0 else { return [] }
        var chosen: [Member] = []
        var seen: Set<String> = excluding
        var tries = 0
        while chosen.count < n, tries < 4 * n + 8 {
            tries += 1
            let name = roster[Int(rng.next() % UInt64(roster.count))]
            guard seen.insert(name).inserted, let m = members[name], m.state == .alive || m.state == .suspect else { continue }
            chosen.append(m)
        }
        return chosen
    }

    mutating func forget(_ name: String) {
        members[name] = nil
        gossip[name] = nil
        timed.remove(name)
        if let i = rosterIndex.removeValue(forKey: name) {
            let last = roster.removeLast()
            if i < roster.count {
                roster[i] = last
                rosterIndex[last] = i
            }
        }
    }
}

/// A small, fast, seedable generator (so simulations replay exactly).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

