/// A grow-only counter with one slot per node: each node only ever raises its own slot, and a
/// merge takes the pointwise maximum, so merging is commutative, associative and idempotent and
/// replicas that have seen the same updates agree whatever order the updates came in.
public struct GCounter: Sendable, Hashable {
    public private(set) var slots: [String: Int64] = [:]

    public init(slots: [String: Int64] = [:]) { self.slots = slots }

    public var value: Int64 { slots.values.reduce(0, +) }

    public func slot(_ node: String) -> Int64 { slots[node] ?? 0 }

    /// Adds a non-negative amount to `node`'s slot.
    public mutating func increment(node: String, by amount: Int64) {
        precondition(amount >= 0, "a G-counter only grows")
        slots[node, default: 0] += amount
    }

    public mutating func merge(_ other: GCounter) {
        for (node, v) in other.slots where v > (slots[node] ?? 0) { slots[node] = v }
    }

    public func merged(_ other: GCounter) -> GCounter {
        var copy = self
        copy.merge(other)
        return copy
    }
}

/// A value per node that only its node writes, stamped with that node's version and a lease: a
/// merge keeps, for each node, the value with the higher version. Used for in-flight reservations,
/// which go up and down, so peers see each node's latest figure. No node ever writes another's
/// slot: a writer that stops renewing its lease (it died, or cannot be reached) stops counting for
/// the others once the lease and the allowed clock drift have passed.
public struct VersionedSlots: Sendable, Hashable {
    public struct Slot: Sendable, Hashable {
        public var value: Int64
        public var version: UInt64
        /// The writer's wall clock (Unix ms) until which the value holds for other nodes.
        public var leaseUntil: Int64

        public init(value: Int64, version: UInt64, leaseUntil: Int64 = .max) {
            self.value = value
            self.version = version
            self.leaseUntil = leaseUntil
        }

        mutating func apply(delta: Int64, version: UInt64, leaseUntil: Int64) {
            guard version > self.version else { return }
            value = max(0, value + delta)
            self.version = version
            self.leaseUntil = leaseUntil
        }

        /// Whether the value still counts for a reader at `now`, allowing `driftMs` of clock difference.
        public func holds(at now: Int64, driftMs: Int64) -> Bool {
            leaseUntil == .max || now <= leaseUntil &+ driftMs
        }
    }

    public private(set) var slots: [String: Slot] = [:]

    public init(slots: [String: Slot] = [:]) { self.slots = slots }

    /// Every slot's value, leases ignored.
    public var value: Int64 { slots.values.reduce(0) { $0 + $1.value } }

    /// What counts for `reader` at `now`: its own slot, and the others whose lease holds.
    public func value(for reader: String, at now: Int64, driftMs: Int64) -> Int64 {
        var total: Int64 = 0
        for (node, slot) in slots where node == reader || slot.holds(at: now, driftMs: driftMs) { total += slot.value }
        return total
    }

    /// Sets `node`'s value; `version` MUST grow with every write of that node.
    public mutating func set(node: String, value: Int64, version: UInt64, leaseUntil: Int64 = .max) {
        if let current = slots[node], current.version >= version { return }
        slots[node] = Slot(value: value, version: version, leaseUntil: leaseUntil)
    }

    /// Adds `delta` to `node`'s value (never below 0), stamped with `version`.
    public mutating func add(node: String, delta: Int64, version: UInt64, leaseUntil: Int64 = .max) {
        slots[node, default: Slot(value: 0, version: 0)].apply(delta: delta, version: version, leaseUntil: leaseUntil)
    }

    /// Puts `slot` back as `node`'s, whatever its version (a replica restoring its own figure).
    mutating func replace(node: String, with slot: Slot) { slots[node] = slot }

    public mutating func merge(_ other: VersionedSlots) {
        for (node, slot) in other.slots where slot.version > (slots[node]?.version ?? 0) { slots[node] = slot }
    }
}
