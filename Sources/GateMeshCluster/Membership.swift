import Foundation
import GateMeshCore

/// SWIM-style membership as a pure state machine: it takes events (a tick of the clock, a message
/// from a peer, a request to leave) with the current time and returns actions (messages to send,
/// members whose state changed). No sockets, timers or threads; the shell executes the actions.
/// That is what lets tests run a 5-node cluster deterministically and simulate 1,000 nodes.
///
/// Protocol: every probe interval a member is pinged (round robin over a shuffled list). No ack
/// within `probeTimeoutMs`: `indirectProbes` other members are asked to ping it (ping-req). No ack
/// by the end of the interval: it becomes *suspect*, which is gossiped; a suspect that does not
/// refute (by gossiping itself alive with a higher incarnation) within the suspicion timeout is
/// *dead*. Updates ride piggybacked on pings and acks, each sent a bounded number of times; a
/// full-state exchange (push-pull sync) on joining and every `syncIntervalMs` repairs whatever
/// gossip missed. Seeds and dead members are pinged now and then, so a partition heals by itself.
///
/// With Lifeguard's three refinements (Dadgar et al., "Lifeguard: Local Health Awareness for More
/// Accurate Failure Detection", 2018; as in HashiCorp memberlist):
/// - **Local health awareness**: a score from 0 to `awarenessMax - 1` rises when this node's own
///   probes fail without the nacks it expected, or when it must refute a suspicion of itself, and
///   falls with every probe answered; the probe interval is multiplied by score + 1. A node that is
///   slow itself (CPU starved, its links congested) probes less and suspects less.
/// - **Nacks**: a member asked to ping another for us answers `nack` when it got no ack in time
///   (`nackDelay`, before the prober's interval ends); a probe that fails with all the nacks it expected was a failure of the target,
///   one that misses nacks was at least partly ours (the score rises by the nacks missing).
/// - **Dynamic suspicion**: a suspicion starts at `suspicionMaxMultiplier` × the minimum timeout and
///   shrinks toward the minimum (logarithmically) as independent members confirm it, so that a
///   member many see as failed is declared dead quickly and one suspected by a single slow node has
///   a long time to refute.
///
/// Records are signed (`RecordSigner`): a member's record (address, id, incarnation…) passed on by
/// another counts only with that member's signature, so a peer can relay records but not write them.
///
/// Pings name the member they are for and acks the member that answered: a node that now has a
/// dead member's address refuses a ping for that member, so it is not mistaken for it. `now` is a
/// monotonic clock (milliseconds): wall-clock steps must not turn suspects dead.
public struct Membership: Sendable {
    public struct Config: Sendable, Equatable {
        public var probeIntervalMs: Int64 = ClusterConfig.Profile.lan.probeIntervalMs
        /// Direct ack wait before asking others (an ack is one round trip). It also bounds how long
        /// a member asked to ping another waits before it answers with a nack (`nackDelay`).
        public var probeTimeoutMs: Int64 = ClusterConfig.Profile.lan.probeTimeoutMs
        public var indirectProbes = 3
        /// A suspicion's minimum: max(suspicionMinMs, suspicionMultiplier × log10(n + 1) × probe
        /// interval). It starts at `suspicionMaxMultiplier` × that and shrinks with confirmations.
        public var suspicionMinMs: Int64 = ClusterConfig.Profile.lan.suspicionMinMs
        public var suspicionMultiplier: Double = 4
        public var suspicionMaxMultiplier: Double = 6
        /// Local health: the probe interval is multiplied by (score + 1), the score below this.
        public var awarenessMax = 8
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

        /// Nodes on one network: round trips of a few milliseconds (memberlist's `DefaultLANConfig`
        /// timings, with a 5 s floor under suspicion and a full sync every 10 s).
        public static let lan = Config()

        /// Nodes across regions: sized for 150 ms one way with loss (memberlist's
        /// `DefaultWANConfig`: probe every 5 s, 3 s for a direct ack, suspicion multiplier 6).
        /// An indirect probe (ping-req, ping, ack, ack: four one-way trips, 600 ms) fits well inside
        /// the probe interval even when a packet must be sent again.
        public static let wan: Config = {
            var c = Config()
            c.probeIntervalMs = ClusterConfig.Profile.wan.probeIntervalMs
            c.probeTimeoutMs = ClusterConfig.Profile.wan.probeTimeoutMs
            c.suspicionMultiplier = 6
            c.suspicionMinMs = ClusterConfig.Profile.wan.suspicionMinMs
            c.syncIntervalMs = 30_000
            c.reconnectIntervalMs = 5_000
            c.forgetAfterMs = 600_000
            return c
        }()

        /// The profile of that name (`lan`, `wan`), or nil.
        public static func profile(_ name: String) -> Config? {
            switch name {
            case "lan": return .lan
            case "wan": return .wan
            default: return nil
            }
        }
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
        /// The member's signature of its record at this incarnation (`RecordSigner`), passed on
        /// with every update about it.
        public var signature: [UInt8] = []
    }

    /// One piece of gossip: a member's state at an incarnation. A suspicion names the member that
    /// suspects (`accuser`): suspicions from different members confirm each other.
    public struct Update: Sendable, Equatable {
        public var info: Info
        public var state: State
        public var incarnation: UInt64
        public var accuser: String
        /// The member's signature of its record (`info` at `incarnation`); empty without signing.
        public var signature: [UInt8]
        public init(info: Info, state: State, incarnation: UInt64, accuser: String = "", signature: [UInt8] = []) {
            self.info = info
            self.state = state
            self.incarnation = incarnation
            self.accuser = accuser
            self.signature = signature
        }
    }

    public enum Message: Sendable, Equatable {
        /// A probe of the member named `target` (empty: whoever is at the address). A node with
        /// another name does not answer.
        case ping(seq: UInt64, target: String)
        /// The answer to a ping, naming the member that answered it (passed on unchanged by a
        /// member that pinged for another).
        case ack(seq: UInt64, of: String)
        /// From a member asked to ping another: it got no ack in time.
        case nack(seq: UInt64)
        /// "Ping `target` for me and pass its ack on."
        case pingRequest(seq: UInt64, target: Info)
        /// Full state, asking for the receiver's in return (`reply` false) or answering (true).
        /// Only the sender's own record in it is signed: a member's signature is 70 bytes, and a
        /// list of 1,000 members every 10 s would triple what a node sends. A record in it that
        /// the receiver does not hold is asked for signed (`recordsAsk`).
        case sync(members: [Update], reply: Bool)
        /// "Send me these members' records, signed" (answered with a `sync` reply holding them).
        case recordsAsk(names: [String])
    }

    /// What travels: the sender, its incarnation, the message and piggybacked updates.
    public struct Envelope: Sendable, Equatable {
        public var from: Info
        public var incarnation: UInt64
        /// The sender's signature of its own record, for the receiver to pass on with it.
        public var signature: [UInt8]
        public var message: Message
        public var updates: [Update]
        public init(from: Info, incarnation: UInt64, signature: [UInt8] = [], message: Message, updates: [Update]) {
            self.from = from
            self.incarnation = incarnation
            self.signature = signature
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
        /// Records about these members came from the peer at `from` with signatures this node
        /// holds no key for (or not the key that made them): ask that peer for their certificates,
        /// and call `certificatesLearned` with the names of those that check out.
        case askCertificates(names: [String], from: String)
    }

    public private(set) var me: Info
    public let config: Config
    public private(set) var incarnation: UInt64 = 0
    public private(set) var members: [String: Member] = [:]
    public private(set) var leaving = false
    public private(set) var seeds: [String]
    /// Signs this node's record and checks others' (nil: records are not signed, as in tests of
    /// the protocol alone).
    let signer: (any RecordSigner)?
    /// This node's signature of its record at its incarnation.
    var mySignature: [UInt8] = []
    /// Records waiting for their member's certificate, by member (the newest one), with the member
    /// that passed them on (and whether it was counted as forged already); and when a certificate
    /// was last asked for, by member.
    var held: [String: (update: Update, from: String, counted: Bool)] = [:]
    var askedAt: [String: Int64] = [:]
    /// Members whose certificates, and whose signed records, to ask the sender of the message
    /// being read for; when a signed record was last asked for, by member.
    var certificatesWanted: [String] = []
    var recordsWanted: [String] = []
    var recordAskedAt: [String: Int64] = [:]
    /// How many records are held at most, and how long before a certificate is asked for again.
    static let maxHeld = 4096
    static let askAgainMs: Int64 = 1000
    /// Records dropped because their signature was not their member's.
    public private(set) var forgedRecords = 0
    var rng: SplitMix64
    var seq: UInt64 = 0
    var probeOrder: [String] = []
    struct Probe {
        var target: String
        var seq: UInt64
        var sentAt: Int64
        /// The end of this probe's interval (scaled by the health score when it was sent).
        var deadline: Int64
        var askedOthers = false
        var expectedNacks = 0
        var nacks = 0
    }
    var probe: Probe?
    /// Pings sent for others: our seq → (who asked, their seq, whom we pinged, when to nack if no
    /// ack came, whether we did, when to stop waiting for an ack to pass on).
    var relayed: [UInt64: (origin: String, seq: UInt64, target: String, nackAt: Int64, nacked: Bool, expires: Int64)] = [:]

    /// How long a member asked to ping another waits for the ack before it sends a nack: 80 % of the
    /// shorter of the probe timeout and what the prober's interval has left after it (so that the
    /// nack reaches the prober before its probe ends; memberlist waits the whole probe timeout,
    /// which with its LAN timings lands just after the prober has given up).
    var nackDelay: Int64 { min(config.probeTimeoutMs, config.probeIntervalMs - config.probeTimeoutMs) * 8 / 10 }
    /// Local health (Lifeguard): 0 is healthy; the probe interval is multiplied by score + 1.
    public private(set) var awareness = 0
    /// A suspicion in progress: who confirmed it and how long it lasts now.
    struct Suspicion {
        var confirmations: Set<String>
        /// Confirmations that shorten it (0: it lasts the minimum from the start).
        var k: Int
        var minMs: Int64
        var maxMs: Int64
        var timeoutMs: Int64
    }
    var suspicions: [String: Suspicion] = [:]
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
    public init(me: Info, seeds: [String], config: Config = Config(), seed: UInt64 = 0, startIncarnation: UInt64 = 0,
                signer: (any RecordSigner)? = nil) {
        self.me = me
        self.incarnation = startIncarnation
        self.startIncarnation = startIncarnation
        self.config = config
        self.seeds = seeds.filter { $0 != me.address }
        self.signer = signer
        var h: UInt64 = 1469598103934665603
        for b in me.name.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        self.rng = SplitMix64(seed: seed ^ h)
        resign()
    }

    /// Signs this node's record again (after its incarnation or its record changed).
    mutating func resign() {
        mySignature = signer?.sign(Self.record(me, incarnation: incarnation)) ?? []
    }

    /// This node's own record, signed.
    var myUpdate: Update { Update(info: me, state: .alive, incarnation: incarnation, signature: mySignature) }

    /// An update about a member this node holds, with the member's signature.
    func update(_ m: Member, _ state: State, accuser: String = "") -> Update {
        Update(info: m.info, state: state, incarnation: m.incarnation, accuser: accuser, signature: m.signature)
    }

    /// This node's config digest changed (a reload): a new incarnation carries its record, with
    /// the new digest, to every member.
    public mutating func setConfigDigest(_ digest: String) {
        guard digest != me.configDigest else { return }
        me.configDigest = digest
        incarnation += 1
        resign()
        queue(myUpdate)
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

    /// The members that own a share of the cache keys (and alerts): this node and every live
    /// member, suspects included. A suspicion is not a death: moving keys on every false suspicion
    /// would empty caches for nothing; they move when a member is declared dead or leaves.
    public var owners: [String] {
        var out = [me.name]
        for m in members.values where m.state == .alive || m.state == .suspect { out.append(m.info.name) }
        return out.sorted()
    }

    /// The shortest a suspicion lasts: max(suspicionMinMs, multiplier × log10(n + 1) × interval).
    var suspicionMinTimeout: Int64 {
        let scaled = config.suspicionMultiplier * log10(Double(clusterSize + 1)) * Double(config.probeIntervalMs)
        return max(config.suspicionMinMs, Int64(scaled))
    }

    /// The probe interval scaled by this node's health score.
    var scaledProbeInterval: Int64 { config.probeIntervalMs * Int64(awareness + 1) }

    mutating func changeAwareness(by delta: Int) {
        awareness = min(max(0, awareness + delta), config.awarenessMax - 1)
    }

    /// Lifeguard's suspicion timeout after `n` independent confirmations out of the `k` expected:
    /// max − (max − min) × ln(n + 1) / ln(k + 1), never under min.
    static func suspicionTimeout(confirmations n: Int, expected k: Int, minMs: Int64, maxMs: Int64) -> Int64 {
        guard k > 0 else { return minMs }
        let fraction = log(Double(n) + 1) / log(Double(k) + 1)
        let raw = Double(maxMs) - fraction * Double(maxMs - minMs)
        return max(minMs, Int64(raw.rounded(.down)))
    }

    /// A new suspicion of `name`, first raised by `accuser`.
    mutating func startSuspicion(of name: String, by accuser: String) {
        // The nominal timeout is reached two probe intervals short of what the multiplier gives
        // (memberlist): expect multiplier − 2 confirmations, none in a cluster too small for them.
        var k = max(0, Int(config.suspicionMultiplier) - 2)
        if clusterSize - 2 < k { k = 0 }
        let minMs = suspicionMinTimeout
        let maxMs = Int64(config.suspicionMaxMultiplier * Double(minMs))
        let timeout = k == 0 ? minMs : maxMs
        suspicions[name] = Suspicion(confirmations: accuser.isEmpty ? [] : [accuser], k: k, minMs: minMs, maxMs: maxMs, timeoutMs: timeout)
    }

    /// Another member also suspects `name`: the suspicion shortens. True when the confirmation is
    /// new (so it is passed on, for the others to count too).
    mutating func confirmSuspicion(of name: String, by accuser: String) -> Bool {
        guard !accuser.isEmpty, var s = suspicions[name], s.confirmations.count <= s.k,
              s.confirmations.insert(accuser).inserted else { return false }
        s.timeoutMs = Self.suspicionTimeout(confirmations: s.confirmations.count - 1, expected: s.k, minMs: s.minMs, maxMs: s.maxMs)
        suspicions[name] = s
        return true
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
                probe?.expectedNacks = helpers.count
                for h in helpers {
                    out.append(send(to: h.info.address, .pingRequest(seq: p.seq, target: target.info)))
                }
            }
            if now >= p.deadline, let failed = probe {
                probe = nil
                // Lifeguard: nacks that did not come suggest the fault is (also) ours.
                changeAwareness(by: failed.expectedNacks > 0 ? failed.expectedNacks - failed.nacks : 1)
                // Suspected, or (already suspect) one more independent confirmation.
                if let m = members[failed.target], m.state == .alive || m.state == .suspect {
                    out += apply(update(m, .suspect, accuser: me.name), now: now)
                }
            }
        }
        // A new probe.
        if probe == nil, now >= nextProbeAt {
            let interval = scaledProbeInterval
            nextProbeAt = now + interval
            if let target = nextProbeTarget() {
                seq += 1
                probe = Probe(target: target.info.name, seq: seq, sentAt: now, deadline: now + interval)
                var ping = send(to: target.info.address, .ping(seq: seq, target: target.info.name))
                // A suspect is told so with the ping, so that it can refute at once.
                if target.state == .suspect, case .send(let to, var envelope) = ping,
                   !envelope.updates.contains(where: { $0.info.name == target.info.name }) {
                    envelope.updates.append(update(target, .suspect, accuser: suspicions[target.info.name]?.confirmations.min() ?? me.name))
                    ping = .send(to: to, envelope)
                }
                out.append(ping)
            }
        }
        // Suspicion runs out; the long dead are forgotten.
        for name in timed.sorted() {
            guard let m = members[name] else {
                timed.remove(name)
                continue
            }
            if m.state == .suspect, now >= m.changedAt + (suspicions[name]?.timeoutMs ?? suspicionMinTimeout) {
                out += apply(update(m, .dead), now: now)
            } else if m.state == .dead || m.state == .left, now >= m.changedAt + config.forgetAfterMs {
                forget(name)
            }
        }
        // Pings for others that got no ack in time: tell who asked (Lifeguard's nack), and keep
        // waiting for a late ack to pass on until the prober's interval is over.
        for ours in relayed.keys.sorted() {
            guard let r = relayed[ours] else { continue }
            if now >= r.expires {
                relayed[ours] = nil
            } else if !r.nacked, now >= r.nackAt {
                relayed[ours]?.nacked = true
                if let origin = members[r.origin] { out.append(send(to: origin.info.address, .nack(seq: r.seq))) }
            }
        }
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
            candidates += timed.compactMap { members[$0] }.filter { $0.state == .dead }.map(\.info.address).sorted()
            // (Sorted before the shuffle: a set's order differs between runs, the seeded shuffle must not.)
            candidates.shuffle(using: &rng)
            var picked: [String] = []
            for address in candidates where picked.count < config.reconnectFanout && !picked.contains(address) { picked.append(address) }
            // Only this node's own record, asking for the other's list back: an absent seed or a
            // dead member that answers sends what it holds (from which this node learns who is
            // there, and that it was held dead, which it refutes); one that does not answer cost a
            // short message, not the whole list (50 KB a second per dead member at 1,000 nodes).
            if !picked.isEmpty {
                let mine = [myUpdate]
                for address in picked { out.append(send(to: address, .sync(members: mine, reply: false))) }
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
            return copiesTold.insert(envelope.from.address).inserted ? [send(to: envelope.from.address, .ping(seq: 0, target: ""))] : []
        }
        var out: [Action] = []
        // A member this node suspects is talking to it: make sure it hears of the suspicion (on
        // the answer), so it refutes in time even if the gossip about it ran out while it was away.
        if let m = members[envelope.from.name], m.state == .suspect, m.incarnation >= envelope.incarnation {
            queue(update(m, .suspect, accuser: suspicions[m.info.name]?.confirmations.min() ?? me.name))
        }
        // Hearing from a member directly proves it is alive at its incarnation (the connection's
        // certificate names it: its record needs no signature checked here).
        out += apply(Update(info: envelope.from, state: .alive, incarnation: envelope.incarnation, signature: envelope.signature),
                     now: now, direct: true)
        members[envelope.from.name]?.lastHeardAt = now
        for update in envelope.updates { out += apply(update, now: now, from: envelope.from.name) }
        switch envelope.message {
        case .ping(let s, let target):
            // A ping for another member (this node has an address that member had): not ours to
            // answer, or the prober would take this node for it.
            guard target.isEmpty || target == me.name else { break }
            out.append(send(to: envelope.from.address, .ack(seq: s, of: me.name)))
        case .ack(let s, let of):
            if let p = probe, p.seq == s {
                // Only an ack of the member probed ends the probe (directly, or passed on).
                guard of == p.target else { break }
                if p.target == envelope.from.name { members[p.target]?.rttMs = now - p.sentAt }
                probe = nil
                changeAwareness(by: -1)
            } else if let r = relayed[s], r.target == of {
                relayed[s] = nil
                if let origin = members[r.origin] { out.append(send(to: origin.info.address, .ack(seq: r.seq, of: of))) }
            }
        case .nack(let s):
            if let p = probe, p.seq == s { probe?.nacks = min(p.nacks + 1, p.expectedNacks) }
        case .pingRequest(let s, let target):
            seq += 1
            relayed[seq] = (envelope.from.name, s, target.name, now + nackDelay, false, now + config.probeIntervalMs)
            out.append(send(to: target.address, .ping(seq: seq, target: target.name)))
        case .sync(let list, let reply):
            for update in list { out += apply(update, now: now, from: envelope.from.name) }
            if !reply { out.append(send(to: envelope.from.address, .sync(members: snapshot(), reply: true))) }
        case .recordsAsk(let names):
            var list: [Update] = []
            for name in names {
                if name == me.name { list.append(myUpdate) } else if let m = members[name] { list.append(update(m, m.state)) }
            }
            if !list.isEmpty { out.append(send(to: envelope.from.address, .sync(members: list, reply: true))) }
        }
        if !recordsWanted.isEmpty {
            out.append(send(to: envelope.from.address, .recordsAsk(names: recordsWanted)))
            recordsWanted.removeAll()
        }
        if !certificatesWanted.isEmpty {
            out.append(.askCertificates(names: certificatesWanted, from: envelope.from.address))
            certificatesWanted.removeAll()
        }
        return out
    }

    /// Certificates of these members arrived (and checked out): records held for them are applied,
    /// or dropped if their signature is still not the member's.
    public mutating func certificatesLearned(_ names: [String], now: Int64) -> [Action] {
        guard !leaving else { return [] }
        var out: [Action] = []
        for name in names {
            askedAt[name] = nil
            guard let h = held.removeValue(forKey: name) else { continue }
            out += apply(h.update, now: now, from: h.from, recheck: h.counted ? .counted : .uncounted)
        }
        return out
    }

    /// Leaves gracefully: tells every live member itself (a `left` is taken at its word only from
    /// the node that left), then stops taking part.
    public mutating func leave(now: Int64) -> [Action] {
        incarnation += 1
        resign()
        let update = Update(info: me, state: .left, incarnation: incarnation, signature: mySignature)
        var out: [Action] = []
        for m in members.values where m.state == .alive || m.state == .suspect {
            out.append(.send(to: m.info.address, Envelope(from: me, incarnation: incarnation, signature: mySignature,
                                                          message: .ping(seq: 0, target: m.info.name), updates: [update])))
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
            _ = apply(update(m, .left), now: now)
            return .marked(members[name] ?? m)
        }
    }

    // MARK: - Rules

    /// Applies one update by SWIM's precedence: a higher incarnation wins; at the same incarnation
    /// suspect beats alive and dead beats both; departed is final. About this node, suspicion or
    /// death is refuted with a higher incarnation.
    ///
    /// `from` is the member whose message carried the update (nil: this node's own decision). A
    /// `left` is final, so it is taken at its word only from the member that left, or about a
    /// member this node already holds dead; from anyone else about a live member it is a suspicion,
    /// which the member refutes if it is alive (a peer cannot evict another), and which ends in
    /// death if it really left. An update passed on by another member counts only with its
    /// member's signature (`authentic`).
    mutating func apply(_ u: Update, now: Int64, direct: Bool = false, from: String? = nil, recheck: Recheck? = nil) -> [Action] {
        if let from, from != u.info.name, !authentic(u, from: from, now: now, recheck: recheck) { return [] }
        var u = u
        // An unsigned update about the record held (from a sync list) travels on with its signature.
        if u.signature.isEmpty {
            if u.info.name == me.name, u.incarnation == incarnation, u.info == me {
                u.signature = mySignature
            } else if let c = members[u.info.name], c.incarnation == u.incarnation, c.info == u.info {
                u.signature = c.signature
            }
        }
        if u.state == .left, let from, from != u.info.name, u.info.name != me.name,
           let c = members[u.info.name], c.state == .alive || c.state == .suspect {
            u.state = .suspect
            u.accuser = from
        }
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
                return [send(to: u.info.address, .ping(seq: 0, target: ""))]
            }
            // Suspected, declared dead, or said to have left (it has not: it is running this): refute.
            guard u.state == .suspect || u.state == .dead || u.state == .left, u.incarnation >= incarnation else { return [] }
            // Having to refute is a sign this node is slow to answer (Lifeguard), unless it is a
            // claim that it left, which no probe of it made.
            if u.state != .left { changeAwareness(by: 1) }
            guard u.incarnation < UInt64.max else { return [] }
            incarnation = u.incarnation + 1
            resign()
            queue(myUpdate)
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
            if let c = current, u.info.address != c.info.address, u.incarnation >= c.incarnation {
                members[u.info.name]?.info = u.info
                members[u.info.name]?.signature = u.signature
            }
            // The same suspicion from another member: it shortens, and is passed on for the rest.
            if u.state == .suspect, let c = current, c.state == .suspect, u.incarnation == c.incarnation,
               confirmSuspicion(of: u.info.name, by: u.accuser) {
                queue(u)
            }
            return []
        }
        let member = Member(info: u.info, state: u.state, incarnation: u.incarnation, changedAt: now,
                            lastHeardAt: current?.lastHeardAt, rttMs: current?.rttMs, signature: u.signature)
        members[u.info.name] = member
        let wasLive = current.map { $0.state == .alive || $0.state == .suspect } ?? false
        let isLive = u.state == .alive || u.state == .suspect
        liveCount += (isLive ? 1 : 0) - (wasLive ? 1 : 0)
        if u.state == .alive { timed.remove(u.info.name) } else { timed.insert(u.info.name) }
        if u.state == .suspect { startSuspicion(of: u.info.name, by: u.accuser) } else { suspicions[u.info.name] = nil }
        if current == nil {
            rosterIndex[u.info.name] = roster.count
            roster.append(u.info.name)
            probeOrder.insert(u.info.name, at: Int(rng.next() % UInt64(probeOrder.count + 1)))
        }
        queue(u)
        return current?.state == u.state ? [] : [.changed(member)]
    }

    /// A record applied again once its member's certificate came: whether it was counted as
    /// forged the first time.
    enum Recheck { case counted, uncounted }

    /// Whether an update about `u.info.name`, passed on by the member `from`, carries its member's
    /// signature of its record. Only a record this node does not hold is checked (one it holds was
    /// checked when it came, or came from the member itself); one older than held would change
    /// nothing and is dropped unchecked. Without the member's key (or with a key that does not
    /// check it: the member may have a new certificate), the update is held and the member's
    /// certificate asked of `from` (`askCertificates`, at most once a second per member).
    mutating func authentic(_ u: Update, from: String, now: Int64, recheck: Recheck?) -> Bool {
        guard let signer else { return true }
        let name = u.info.name
        let heldIncarnation: UInt64
        if name == me.name {
            if u.incarnation == incarnation, u.info == me, u.signature.isEmpty || u.signature == mySignature { return true }
            heldIncarnation = startIncarnation
        } else if let c = members[name] {
            if u.incarnation == c.incarnation, u.info == c.info, u.signature.isEmpty || u.signature == c.signature { return true }
            heldIncarnation = c.incarnation
        } else {
            heldIncarnation = 0
        }
        guard u.incarnation >= heldIncarnation else { return false }
        if u.signature.isEmpty {
            // From a sync list, which signs only its sender's record: ask for this one signed.
            if recheck == nil, Self.due(&recordAskedAt, name, now: now) { recordsWanted.append(name) }
            return false
        }
        let check = signer.check(Self.record(u.info, incarnation: u.incarnation), signature: u.signature, by: name)
        if check == .valid { return true }
        let counted = check == .invalid && recheck != .counted
        if counted { forgedRecords += 1 }
        guard recheck == nil else { return false }
        if held.count >= Self.maxHeld, held[name] == nil { held.removeAll() }
        if let h = held[name], h.update.incarnation > u.incarnation {} else { held[name] = (u, from, counted) }
        if Self.due(&askedAt, name, now: now) { certificatesWanted.append(name) }
        return false
    }

    /// Whether to ask about `name` now (not within `askAgainMs` of the last time); notes it.
    static func due(_ asked: inout [String: Int64], _ name: String, now: Int64) -> Bool {
        if let t = asked[name], now - t < askAgainMs { return false }
        if asked.count >= maxHeld { asked.removeAll() }
        asked[name] = now
        return true
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
        .send(to: address, Envelope(from: me, incarnation: incarnation, signature: mySignature, message: message, updates: piggyback()))
    }

    /// This node's record, signed, and every member's as held, unsigned (see `Message.sync`).
    func snapshot() -> [Update] {
        var out = [myUpdate]
        out.reserveCapacity(members.count + 1)
        // In the roster's order, not the dictionary's: a dictionary's order differs between runs,
        // and a simulation must replay exactly.
        for name in roster {
            guard let m = members[name] else { continue }
            out.append(Update(info: m.info, state: m.state, incarnation: m.incarnation))
        }
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
        held[name] = nil
        askedAt[name] = nil
        recordAskedAt[name] = nil
        suspicions[name] = nil
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

