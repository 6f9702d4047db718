/// The replicated state of every limit: for each (rule, scope value, bucket), a G-counter of what
/// was spent and the per-node reservations in flight. State-based with deltas: every local change
/// bumps a version, `delta(since:)` returns the entries changed after it (each a complete entry,
/// so applying one twice, late or out of order is harmless), and `merge` applies a peer's delta.
public struct CounterMap: Sendable {
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        public var rule: String
        public var scope: String
        public var bucket: Int64

        public init(rule: String, scope: String, bucket: Int64) {
            self.rule = rule
            self.scope = scope
            self.bucket = bucket
        }

        public var description: String { "\(rule)[\(scope)]@\(bucket)" }
    }

    public struct Entry: Sendable, Hashable {
        public var spent = GCounter()
        public var reserved = VersionedSlots()
        /// The rights to spend, for rules enforced `bounded` or `strict` (empty otherwise).
        public var rights = RightsEntry()
        public init(spent: GCounter = GCounter(), reserved: VersionedSlots = VersionedSlots(), rights: RightsEntry = RightsEntry()) {
            self.spent = spent
            self.reserved = reserved
            self.rights = rights
        }

        public mutating func merge(_ other: Entry) {
            spent.merge(other.spent)
            reserved.merge(other.reserved)
            rights.merge(other.rights)
        }
    }

    /// An entry with the bookkeeping of this replica: when it last changed (for deltas) and when
    /// its spending last changed, here or by a merge (for persisting it).
    struct Stored: Sendable {
        var entry = Entry()
        var changedAt: UInt64 = 0
        var spentChangedAt: UInt64 = 0
    }

    public let node: String
    private var table: [Key: Stored] = [:]
    /// This replica's version: raised by every local change.
    public private(set) var version: UInt64 = 0
    /// The version of the latest change to any spending (local or merged).
    public private(set) var lastSpendChange: UInt64 = 0
    /// How long a reservation figure of this node holds for the others without being renewed.
    public var leaseMs: Int64 = 15_000
    /// The clock difference between nodes that leases allow for.
    public var driftMs: Int64 = 1_000
    /// The lease this node stamps on its reservation figures (set by `renewLeases`; until its
    /// first call, figures never lapse).
    public private(set) var leaseUntil: Int64 = .max
    /// The keys where this node's reservation figure is not zero: the ones whose lease it renews.
    private var ownReserved: Set<Key> = []

    /// `startVersion` MUST be above any version this node has used before (see
    /// `startVersion(epoch:)`), so peers never ignore its new reservation figures.
    public init(node: String, startVersion: UInt64 = 0, epoch: UInt64 = 0) {
        self.node = node
        self.version = startVersion
        self.startVersion = startVersion
        self.holder = "\(node)/\(epoch)"
    }

    /// This node in this run, as a holder of rights (`RightsEntry`).
    public let holder: String

    /// The rights of `key` (empty when unknown).
    public func rights(_ key: Key) -> RightsEntry { table[key]?.entry.rights ?? RightsEntry() }

    /// Changes the rights of `key` through `body`; a change is versioned and gossiped.
    @discardableResult
    public mutating func updateRights<T>(_ key: Key, _ body: (inout RightsEntry) -> T) -> T {
        var stored = table[key] ?? Stored()
        let before = stored.entry.rights
        let result = body(&stored.entry.rights)
        if stored.entry.rights != before {
            version += 1
            stored.changedAt = version
            table[key] = stored
        }
        return result
    }

    /// The keys whose rights this node holds any of (for returning idle ones).
    public func keysWithRights(of holder: String) -> [Key] {
        table.compactMap { $0.value.entry.rights.held(by: holder) > 0 ? $0.key : nil }
    }

    /// The first version of a run: each start of a node is a new epoch (counted in its data
    /// directory), and each epoch has 2^44 versions of its own, so no run reuses another's
    /// versions whatever the clock does (a million runs fit). The offset of 256 epochs puts every
    /// epoch above the versions of earlier releases, which started from the clock (Unix ms << 10,
    /// below 2^52 until the year 2100).
    public static func startVersion(epoch: UInt64) -> UInt64 {
        (min(epoch, (1 << 20) - 257) + 256) << 44
    }

    /// The version this replica started from: reservations of this node older than it belong to
    /// a previous run and died with it.
    let startVersion: UInt64

    /// Stamps this node's figures from now on with a lease until `now + leaseMs`, and rewrites
    /// those whose lease would lapse within half of that, so that they go on counting for the
    /// peers while their requests are in flight. Call at least every `leaseMs / 4`.
    public mutating func renewLeases(now: Int64) {
        leaseUntil = now + leaseMs
        for key in ownReserved {
            guard let slot = table[key]?.entry.reserved.slots[node], slot.value != 0 else {
                ownReserved.remove(key)
                continue
            }
            // Lapsing soon, or stamped before leases were set (no lease at all): write again.
            guard slot.leaseUntil < now + leaseMs / 2 || slot.leaseUntil > leaseUntil else { continue }
            version += 1
            let v = version, lease = leaseUntil, node = self.node
            table[key]?.update {
                $0.entry.reserved.set(node: node, value: slot.value, version: v, leaseUntil: lease)
                $0.changedAt = v
            }
        }
    }

    /// Every entry (a copy: for reports and tests, not for the request path).
    public var entries: [Key: Entry] { table.mapValues(\.entry) }
    public var keys: some Collection<Key> { table.keys }
    public var count: Int { table.count }

    public func entry(_ key: Key) -> Entry? { table[key]?.entry }

    /// Spent plus reserved over every node for `key` (0 when unknown), at `now`: another node's
    /// reservations count while their lease holds.
    public func total(_ key: Key, now: Int64) -> Int64 {
        guard let e = table[key]?.entry else { return 0 }
        return e.spent.value + e.reserved.value(for: node, at: now, driftMs: driftMs)
    }

    /// Reserved over every node whose lease holds at `now` (see `total`).
    public func reserved(_ key: Key, now: Int64) -> Int64 {
        table[key]?.entry.reserved.value(for: node, at: now, driftMs: driftMs) ?? 0
    }

    /// Adds spending to this node's slot.
    public mutating func spend(_ key: Key, _ amount: Int64) {
        guard amount > 0 else { return }
        version += 1
        let v = version
        lastSpendChange = v
        table[key, default: Stored()].update { $0.entry.spent.increment(node: node, by: amount); $0.changedAt = v; $0.spentChangedAt = v }
    }

    /// Sets this node's reserved figure for `key`.
    public mutating func setReserved(_ key: Key, _ amount: Int64) {
        version += 1
        let v = version, lease = leaseUntil
        table[key, default: Stored()].update { $0.entry.reserved.set(node: node, value: amount, version: v, leaseUntil: lease); $0.changedAt = v }
        if amount != 0 { ownReserved.insert(key) }
    }

    /// Adds `delta` (negative to release) to this node's reserved figure for `key`, never below 0.
    public mutating func addReserved(_ key: Key, _ delta: Int64) {
        version += 1
        let v = version, lease = leaseUntil
        table[key, default: Stored()].update { $0.entry.reserved.add(node: node, delta: delta, version: v, leaseUntil: lease); $0.changedAt = v }
        if delta > 0 { ownReserved.insert(key) }
    }

    /// Turns `reserved` of this node's reservation on `key` into `spent`, in one step.
    public mutating func settle(_ key: Key, unreserve reserved: Int64, spend amount: Int64) {
        guard reserved > 0 || amount > 0 else { return }
        version += 1
        if amount > 0 { lastSpendChange = version }
        let v = version, lease = leaseUntil
        let node = self.node
        table[key, default: Stored()].update {
            if reserved > 0 { $0.entry.reserved.add(node: node, delta: -reserved, version: v, leaseUntil: lease) }
            if amount > 0 {
                $0.entry.spent.increment(node: node, by: amount)
                $0.spentChangedAt = v
            }
            $0.changedAt = v
        }
    }


    /// Every node's spent slot of every counter whose spending changed after `since` (by this
    /// node or by a merge), and the version to ask from next time: what a node persists, so a
    /// restart neither rewinds its own slot nor forgets what it had merged from peers.
    public func spentSlots(since: UInt64) -> (slots: [(key: Key, node: String, spent: Int64)], version: UInt64) {
        var out: [(key: Key, node: String, spent: Int64)] = []
        guard lastSpendChange > since else { return (out, version) }
        for (key, stored) in table where stored.spentChangedAt > since {
            for (node, spent) in stored.entry.spent.slots { out.append((key, node, spent)) }
        }
        return (out, version)
    }

    /// Entries changed since `since`, for gossip.
    public func delta(since: UInt64) -> [Key: Entry] {
        var out: [Key: Entry] = [:]
        for (key, stored) in table where stored.changedAt > since { out[key] = stored.entry }
        return out
    }

    /// Merges entries from a peer (a delta or any other replica's state); returns the keys whose
    /// spending changed. A peer's figure for this node's own slots is taken only when it comes from
    /// an earlier run of this node: no other node writes them.
    @discardableResult
    public mutating func merge(_ delta: [Key: Entry]) -> [Key] {
        var spentChanged: [Key] = []
        for (key, incoming) in delta {
            var stored = table[key] ?? Stored()
            let before = stored.entry
            stored.entry.merge(incoming)
            let mine = before.reserved.slots[node]
            if let merged = stored.entry.reserved.slots[node], merged != mine {
                if merged.version >= startVersion {
                    // Only this node writes its slot in this run: a version of this run from
                    // elsewhere is not this node's figure, and is not taken.
                    stored.entry.reserved.replace(node: node, with: mine ?? .init(value: 0, version: startVersion))
                } else if merged.value != 0 {
                    // This node's reservations from a previous run (merged back from peers) died
                    // with it (the journal charged them at restart); the zero is gossiped.
                    stored.entry.reserved.set(node: node, value: 0, version: startVersion, leaseUntil: leaseUntil)
                }
            }
            if stored.entry != before {
                version += 1
                stored.changedAt = version
                if stored.entry.spent != before.spent {
                    stored.spentChangedAt = version
                    lastSpendChange = version
                    spentChanged.append(key)
                }
                table[key] = stored
            }
        }
        return spentChanged
    }

    /// Drops entries for which `isExpired` holds (buckets whose window has passed).
    public mutating func removeAll(where isExpired: (Key) -> Bool) {
        for key in table.keys where isExpired(key) {
            table[key] = nil
            ownReserved.remove(key)
        }
    }
}

extension CounterMap.Stored {
    mutating func update(_ body: (inout Self) -> Void) { body(&self) }
}
