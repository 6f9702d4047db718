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
        public init(spent: GCounter = GCounter(), reserved: VersionedSlots = VersionedSlots()) {
            self.spent = spent
            self.reserved = reserved
        }

        public mutating func merge(_ other: Entry) {
            spent.merge(other.spent)
            reserved.merge(other.reserved)
        }
    }

    public let node: String
    public private(set) var entries: [Key: Entry] = [:]
    /// This replica's version: raised by every local change.
    public private(set) var version: UInt64 = 0
    private var changedAt: [Key: UInt64] = [:]

    /// `startVersion` MUST be above any version this node has used before (a restarted node
    /// continues from its persisted version), so peers never ignore its new reservation figures.
    public init(node: String, startVersion: UInt64 = 0) {
        self.node = node
        self.version = startVersion
    }

    public func entry(_ key: Key) -> Entry? { entries[key] }

    /// Adds spending to this node's slot.
    public mutating func spend(_ key: Key, _ amount: Int64) {
        guard amount > 0 else { return }
        version += 1
        entries[key, default: Entry()].spent.increment(node: node, by: amount)
        changedAt[key] = version
    }

    /// Sets this node's reserved figure for `key`.
    public mutating func setReserved(_ key: Key, _ amount: Int64) {
        version += 1
        entries[key, default: Entry()].reserved.set(node: node, value: amount, version: version)
        changedAt[key] = version
    }

    /// Adds `delta` (negative to release) to this node's reserved figure for `key`, never below 0.
    public mutating func addReserved(_ key: Key, _ delta: Int64) {
        version += 1
        let v = version
        entries[key, default: Entry()].reserved.add(node: node, delta: delta, version: v)
        changedAt[key] = v
    }

    /// This node's own reserved figure for `key`.
    public func localReserved(_ key: Key) -> Int64 { entries[key]?.reserved.slots[node]?.value ?? 0 }

    /// Entries changed since `since`, for gossip.
    public func delta(since: UInt64) -> [Key: Entry] {
        var out: [Key: Entry] = [:]
        for (key, v) in changedAt where v > since { out[key] = entries[key] }
        return out
    }

    /// Applies a peer's delta (or any other replica's state).
    public mutating func merge(_ delta: [Key: Entry]) {
        for (key, incoming) in delta {
            var entry = entries[key] ?? Entry()
            let before = entry
            entry.merge(incoming)
            if entry != before {
                entries[key] = entry
                version += 1
                changedAt[key] = version
            }
        }
    }

    /// Drops entries for which `isExpired` holds (buckets whose window has passed).
    public mutating func removeAll(where isExpired: (Key) -> Bool) {
        for key in entries.keys where isExpired(key) {
            entries[key] = nil
            changedAt[key] = nil
        }
    }
}
