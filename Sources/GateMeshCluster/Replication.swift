import GateMeshCore
import GateMeshLimits

/// The wire form of counter entries (the payload of `.counters` frames) and of digests. Bounded
/// like every peer payload.
public enum CountersCodec {
    public static let maxEntries = 1_000_000
    public static let maxSlots = 10_000

    public static func encode(_ entries: [CounterMap.Key: CounterMap.Entry]) -> [UInt8] {
        var w = BinaryWriter()
        w.uint(UInt64(entries.count))
        for (key, entry) in entries {
            w.counterKey(key)
            w.uint(UInt64(entry.spent.slots.count))
            for (node, v) in entry.spent.slots {
                w.string(node)
                w.int(v)
            }
            w.uint(UInt64(entry.reserved.slots.count))
            for (node, slot) in entry.reserved.slots {
                w.string(node)
                w.int(slot.value)
                w.uint(slot.version)
                w.int(slot.leaseUntil)
            }
            w.rights(entry.rights)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [CounterMap.Key: CounterMap.Entry] {
        var r = BinaryReader(bytes)
        let n = try r.count(max: maxEntries)
        var out: [CounterMap.Key: CounterMap.Entry] = [:]
        out.reserveCapacity(min(n, 65_536))
        for _ in 0..<n {
            let key = try r.counterKey()
            var spent: [String: Int64] = [:]
            for _ in 0..<(try r.count(max: maxSlots)) {
                let node = try r.string()
                let v = try r.int()
                guard v >= 0 else { throw DecodeError("a negative spent slot") }
                spent[node] = v
            }
            var reserved: [String: VersionedSlots.Slot] = [:]
            for _ in 0..<(try r.count(max: maxSlots)) {
                let node = try r.string()
                let v = try r.int(), version = try r.uint()
                reserved[node] = VersionedSlots.Slot(value: max(0, v), version: version, leaseUntil: try r.int())
            }
            out[key] = CounterMap.Entry(spent: GCounter(slots: spent), reserved: VersionedSlots(slots: reserved), rights: try r.rights(maxSlots: maxSlots))
        }
        guard r.atEnd else { throw DecodeError("trailing bytes after counters") }
        return out
    }

    /// A digest: per rule, a hash of all its entries (order-independent), for anti-entropy. Every
    /// figure goes in (spent values, reserved values, versions and leases, rights), so two
    /// replicas with the same digest hold the same state. Computed from scratch here (for tests);
    /// the shell keeps it up to date with `CounterMap.digests()`, which gives the same figures.
    public static func digest(_ counters: CounterMap) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for (key, entry) in counters.entries { out[key.rule, default: 0] &+= CounterMap.hash(key, entry) }
        return out
    }

    public static func encodeDigest(_ d: [String: UInt64]) -> [UInt8] {
        var w = BinaryWriter()
        w.uint(UInt64(d.count))
        for (rule, h) in d {
            w.string(rule)
            w.uint(h)
        }
        return w.bytes
    }

    public static func decodeDigest(_ bytes: [UInt8]) throws(DecodeError) -> [String: UInt64] {
        var r = BinaryReader(bytes)
        var out: [String: UInt64] = [:]
        for _ in 0..<(try r.count(max: maxEntries)) { out[try r.string()] = try r.uint() }
        guard r.atEnd else { throw DecodeError("trailing bytes after a digest") }
        return out
    }
}

/// When to send what to whom, for the replicated counters. Pure.
///
/// Every `deltaIntervalMs` (50 ms) each peer gets this node's own figures of the entries that
/// changed since what it was last sent (all peers while there are at most `fullFanout`, otherwise
/// that many at random), and every `everyPeerMs` (200 ms) every peer that has not had the latest
/// gets it: a peer forwards no other node's figures (`FigureAuthority`), so each change must reach
/// each peer from its writer, and random picks alone would leave a pair unheard for (N − 1) / 8
/// intervals on average (at 300 nodes, 20 s before the last pair agreed). A delta costs one node's
/// figures, not every node's. Every `digestIntervalMs` one peer gets a digest; it answers
/// with the whole entries of every rule whose hash differs, which repairs lost or reordered deltas
/// and brings the figures of nodes that can no longer send their own. Merges are idempotent, so a
/// duplicate or late frame is harmless.
public struct Replicator: Sendable {
    public struct Config: Sendable {
        public var deltaIntervalMs: Int64 = 50
        public var digestIntervalMs: Int64 = 2000
        public var fullFanout = 8
        /// With more peers than `fullFanout`: how often every peer behind gets a delta.
        public var everyPeerMs: Int64 = 200
        public init() {}
    }

    public let config: Config
    var sentVersion: [String: UInt64] = [:]
    /// Set when a digest was due but the counters' digests must first be computed over the whole
    /// table, a frame at a time (`CounterMap.beginDigests`); the caller does it and clears this.
    public var needsDigests = false
    var nextDeltaAt: Int64 = 0
    /// When every peer behind next gets a delta, and what the last such sweep saw (the latest own
    /// change and the number of peers): nothing new, no sweep.
    var nextSweepAt: Int64 = 0
    var swept: (ownChange: UInt64, peers: Int) = (0, 0)
    var nextDigestAt: Int64 = 0
    var rng: SplitMix64

    public init(config: Config = Config(), seed: UInt64 = 0) {
        self.config = config
        self.rng = SplitMix64(seed: seed)
    }

    /// Frames to send now: (peer name, frame). Costs what changed since each peer was last sent
    /// something (and, for the digest, since the last digest), not what `counters` holds.
    public mutating func tick(now: Int64, counters: inout CounterMap, peers: [String]) -> [(String, Frame)] {
        var later = Later()
        var out = tick(now: now, counters: &counters, peers: peers, later: &later)
        for peer in later.whole { for frame in Self.frames(counters.entries) { out.append((peer, frame)) } }
        return out
    }

    /// What a tick leaves to its caller to send a frame at a time, each taken under the lock on
    /// its own: the peers that need every entry (new, back from away, or behind by a large delta).
    public struct Later: Sendable {
        public var whole: [String] = []
        public init() {}
    }

    /// A delta of more changes than this goes to the caller, which sends every entry a frame at a
    /// time (reading which keys changed would cost as much under the lock).
    public static let largeDelta = 20 * entriesPerFrame

    /// As `tick(now:counters:peers:)`, but a peer that needs every entry (it is new, was away
    /// longer than the change log reaches, or is behind by more than `largeDelta` changes) is left
    /// in `later` for the caller to send a frame at a time, each step under the lock on its own:
    /// every change after this call goes in later deltas either way.
    public mutating func tick(now: Int64, counters: inout CounterMap, peers: [String], later: inout Later) -> [(String, Frame)] {
        var out: [(String, Frame)] = []
        if now >= nextDeltaAt {
            nextDeltaAt = now + config.deltaIntervalMs
            var targets = peers
            if targets.count > config.fullFanout {
                if now >= nextSweepAt && (counters.lastOwnChange > swept.ownChange || peers.count != swept.peers) {
                    nextSweepAt = now + config.everyPeerMs
                    swept = (counters.lastOwnChange, peers.count)
                } else {
                    // `fullFanout` distinct peers at random, without shuffling all of them (a
                    // node of 1,000 did that 20 times a second).
                    var picked: Set<Int> = []
                    while picked.count < config.fullFanout { picked.insert(Int.random(in: 0..<peers.count, using: &rng)) }
                    targets = picked.sorted().map { peers[$0] }
                }
            }
            for peer in targets {
                let since = sentVersion[peer] ?? 0
                guard counters.lastOwnChange > since else { continue }
                sentVersion[peer] = counters.version
                // Many changes (a peer that was away long) cost as much as every entry: send them all.
                guard let count = counters.ownChangeCount(since: since), count <= Self.largeDelta,
                      let keys = counters.ownChangedKeys(since: since) else {
                    later.whole.append(peer)
                    continue
                }
                // Only this node's figures: every other live node sends its own, and the peer would
                // not take them from this node (`FigureAuthority`); the whole table and digest
                // answers bring the rest. Of its grants and leases, those changed since.
                for frame in Self.frames(counters.ownEntries(keys, since: since)) { out.append((peer, frame)) }
            }
        }
        if now >= nextDigestAt, let peer = peers.randomElement(using: &rng) {
            nextDigestAt = now + config.digestIntervalMs
            // Nil while a large table's digests are being computed (by the caller): skip a round.
            if let digests = counters.digests() {
                out.append((peer, Frame(kind: .digest, payload: CountersCodec.encodeDigest(digests))))
            } else {
                needsDigests = true
            }
        }
        return out
    }

    /// The answer to a peer's digest: our entries of every rule whose hash differs from theirs
    /// (including rules they do not have), or nil when all agree.
    public func answer(digest theirs: [String: UInt64], counters: inout CounterMap) -> [Frame]? {
        guard let ours = counters.digests() else { return nil }
        let differing = Self.differing(theirs: theirs, ours: ours)
        guard !differing.isEmpty else { return nil }
        return Self.frames(counters.entries(counters.keys(ofRules: differing)))
    }

    /// The rules whose hash differs between two digests (ours that they lack included).
    public static func differing(theirs: [String: UInt64], ours: [String: UInt64]) -> Set<String> {
        Set(ours.keys.filter { ours[$0] != theirs[$0] })
    }

    /// Entries per frame: well under any sane frame limit (an entry is tens of bytes per node).
    public static let entriesPerFrame = 500

    /// `entries` cut into frames of at most `entriesPerFrame` each.
    public static func frames(_ entries: [CounterMap.Key: CounterMap.Entry]) -> [Frame] {
        guard !entries.isEmpty else { return [] }
        var out: [Frame] = []
        var chunk: [CounterMap.Key: CounterMap.Entry] = [:]
        for (k, v) in entries {
            chunk[k] = v
            if chunk.count == entriesPerFrame {
                out.append(Frame(kind: .counters, payload: CountersCodec.encode(chunk)))
                chunk = [:]
            }
        }
        if !chunk.isEmpty { out.append(Frame(kind: .counters, payload: CountersCodec.encode(chunk))) }
        return out
    }

    /// A peer went away and came back (or is new): send it everything next time.
    public mutating func reset(peer: String) { sentVersion[peer] = nil }
}

/// The wire form of alerts a node fired (`.alertsFired` frames).
public enum AlertsCodec {
    public static let maxKeys = 100_000

    public static func encode(_ keys: [LimitsEngine.AlertKey]) -> Frame {
        var w = BinaryWriter()
        w.uint(UInt64(keys.count))
        for k in keys {
            w.string(k.rule)
            w.string(k.scope)
            w.int(k.window)
            w.uint(UInt64(max(0, k.permille)))
        }
        return Frame(kind: .alertsFired, payload: w.bytes)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [LimitsEngine.AlertKey] {
        var r = BinaryReader(bytes)
        var out: [LimitsEngine.AlertKey] = []
        for _ in 0..<(try r.count(max: maxKeys)) {
            let rule = try r.string(), scope = try r.string(), window = try r.int()
            out.append(.init(rule: rule, scope: scope, window: window, permille: try r.count(max: 1_000_000)))
        }
        guard r.atEnd else { throw DecodeError("trailing bytes after fired alerts") }
        return out
    }
}

/// The wire form of asks for rights (`.rightsAsk` frames): the asker's holder name, then per
/// counter its rule, scope value and bucket, the shortfall and the request's estimate.
public enum RightsCodec {
    public struct Ask: Sendable, Hashable {
        public var key: CounterMap.Key
        public var shortfall: Int64
        public var need: Int64
        /// What the asker took of the counter's rights over about the last second (its demand).
        public var rate: Int64
        public init(key: CounterMap.Key, shortfall: Int64, need: Int64, rate: Int64 = 0) {
            self.key = key
            self.shortfall = shortfall
            self.need = need
            self.rate = rate
        }
    }

    public static let maxAsks = 10_000

    public static func encode(holder: String, _ asks: [Ask]) -> Frame {
        var w = BinaryWriter()
        w.string(holder)
        w.uint(UInt64(asks.count))
        for a in asks {
            w.counterKey(a.key)
            w.int(a.shortfall)
            w.int(a.need)
            w.int(a.rate)
        }
        return Frame(kind: .rightsAsk, payload: w.bytes)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> (holder: String, asks: [Ask]) {
        var r = BinaryReader(bytes)
        let holder = try r.string()
        var asks: [Ask] = []
        for _ in 0..<(try r.count(max: maxAsks)) {
            let key = try r.counterKey()
            let shortfall = try r.int(), need = try r.int(), rate = try r.int()
            guard shortfall > 0, need >= 0, rate >= 0 else { throw DecodeError("an ask for rights without a positive shortfall") }
            asks.append(Ask(key: key, shortfall: shortfall, need: need, rate: rate))
        }
        guard r.atEnd else { throw DecodeError("trailing bytes after an ask for rights") }
        return (holder, asks)
    }
}
