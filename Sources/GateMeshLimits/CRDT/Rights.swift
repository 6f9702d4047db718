/// The rights to spend one counter's limit (a bounded counter, after Balegas et al. 2015): the
/// limit is a pool that only the counter's owner draws from, handing rights to the nodes that
/// ask; a node admits a request only by consuming rights it holds, gives back what a request did
/// not use, and returns what it holds and no longer needs to the pool.
///
/// Every figure is a grow-only count with one writer, so a merge is the pointwise maximum:
/// - `granted[from → to]`: rights the owner `from` drew from the pool for `to` (written by `from`);
/// - `used[h]`: rights `h` consumed (reserved for requests); `refunded[h]`: what `h` got back
///   when a request cost less than reserved, or failed (written by `h`);
/// - `returned[h]`: rights `h` gave back to the pool (written by `h`);
/// - `leases[from → to]`: until when (Unix ms, `from`'s clock) `to` may use what it holds, as
///   granted and renewed by the owner `from` (written by `from`). A holder uses its rights only
///   while the latest lease any owner gave it holds, less the allowed clock drift; so once that
///   lease and the drift have passed, the owner knows the holder no longer spends them.
///
/// A holder is a node in one run (`node/epoch`), so a restarted node never rewinds its counts.
/// The invariant that keeps a limit: a holder consumes or returns only what it holds as far as
/// it knows (what it was granted, which it may learn late, plus its refunds, minus what it used and
/// returned, which it knows exactly), and the owner draws only from what the pool holds as far as
/// it knows. So, summed over the cluster, used − refunded ≤ granted − returned ≤ the limit,
/// whatever the order in which the figures travel. Pure.
public struct RightsEntry: Sendable, Hashable {
    public struct Pair: Sendable, Hashable {
        public var from: String
        public var to: String
        public init(from: String, to: String) {
            self.from = from
            self.to = to
        }
    }

    public private(set) var granted: [Pair: Int64] = [:]
    public private(set) var used: [String: Int64] = [:]
    public private(set) var refunded: [String: Int64] = [:]
    public private(set) var returned: [String: Int64] = [:]
    public private(set) var leases: [Pair: Int64] = [:]

    public init(granted: [Pair: Int64] = [:], used: [String: Int64] = [:], refunded: [String: Int64] = [:], returned: [String: Int64] = [:],
                leases: [Pair: Int64] = [:]) {
        self.granted = granted
        self.used = used
        self.refunded = refunded
        self.returned = returned
        self.leases = leases
    }

    /// The latest lease any owner gave `holder` (0: none).
    public func lease(of holder: String) -> Int64 {
        var latest: Int64 = 0
        for (pair, until) in leases where pair.to == holder && until > latest { latest = until }
        return latest
    }

    /// The owner `owner` lets `holder` use its rights until `until` (never shortens a lease).
    public mutating func renew(from owner: String, to holder: String, until: Int64) {
        let pair = Pair(from: owner, to: holder)
        if until > (leases[pair] ?? 0) { leases[pair] = until }
    }

    /// Only the figures written by holders whose name starts with `prefix` (`node/`: every run of
    /// one node, as holders and as owners): what that node persists.
    public func written(byPrefix prefix: String) -> RightsEntry {
        // Alone, or holding only its own figures, a node writes them all: no copy.
        if granted.keys.allSatisfy({ $0.from.hasPrefix(prefix) }) && used.keys.allSatisfy({ $0.hasPrefix(prefix) })
            && refunded.keys.allSatisfy({ $0.hasPrefix(prefix) }) && returned.keys.allSatisfy({ $0.hasPrefix(prefix) })
            && leases.keys.allSatisfy({ $0.from.hasPrefix(prefix) }) {
            return self
        }
        return RightsEntry(granted: granted.filter { $0.key.from.hasPrefix(prefix) },
                    used: used.filter { $0.key.hasPrefix(prefix) },
                    refunded: refunded.filter { $0.key.hasPrefix(prefix) },
                    returned: returned.filter { $0.key.hasPrefix(prefix) },
                    leases: leases.filter { $0.key.from.hasPrefix(prefix) })
    }

    /// The same figures with every holder name passed through `rename`.
    public func renamingHolders(_ rename: (String) -> String) -> RightsEntry {
        func pairs(_ d: [Pair: Int64]) -> [Pair: Int64] {
            Dictionary(d.map { (Pair(from: rename($0.key.from), to: rename($0.key.to)), $0.value) }, uniquingKeysWith: max)
        }
        func counts(_ d: [String: Int64]) -> [String: Int64] {
            Dictionary(d.map { (rename($0.key), $0.value) }, uniquingKeysWith: max)
        }
        return RightsEntry(granted: pairs(granted), used: counts(used), refunded: counts(refunded), returned: counts(returned),
                           leases: pairs(leases))
    }

    /// Whether a run of `node` other than `current` appears as a holder (granted to, or using).
    public func mentionsEarlierRun(of node: String, current: String) -> Bool {
        func earlier(_ h: String) -> Bool { h != current && RightsEntry.split(holder: h).node == node }
        return granted.keys.contains { earlier($0.to) } || used.keys.contains(where: earlier)
    }

    /// A holder name (`node/epoch`) as its node id and epoch.
    public static func split(holder: String) -> (node: Substring, epoch: UInt64) {
        guard let slash = holder.lastIndex(of: "/") else { return (holder[...], 0) }
        return (holder[..<slash], UInt64(holder[holder.index(after: slash)...]) ?? 0)
    }

    public var isEmpty: Bool { granted.isEmpty && used.isEmpty && refunded.isEmpty && returned.isEmpty && leases.isEmpty }

    /// What `holder` may consume: granted to it plus refunded, minus used and returned.
    public func held(by holder: String) -> Int64 {
        var total = (refunded[holder] ?? 0) - (used[holder] ?? 0) - (returned[holder] ?? 0)
        for (pair, amount) in granted where pair.to == holder { total += amount }
        return total
    }

    /// Rights drawn from the pool by every owner.
    public var grantedTotal: Int64 { granted.values.reduce(0, +) }
    public var returnedTotal: Int64 { returned.values.reduce(0, +) }

    /// What is left in the pool of `limit`, as far as this replica knows.
    public func pool(limit: Int64) -> Int64 { limit - grantedTotal + returnedTotal }

    /// Every holder with its rights (for reports).
    public var holders: [String: Int64] {
        var names = Set(used.keys).union(refunded.keys).union(returned.keys)
        for pair in granted.keys { names.insert(pair.to) }
        return Dictionary(uniqueKeysWithValues: names.map { ($0, held(by: $0)) })
    }

    /// `holder` consumes `amount` if it holds that much (`force`: even if not, for a request that
    /// cost more than it reserved: what it used is spent either way).
    @discardableResult
    public mutating func consume(_ amount: Int64, by holder: String, force: Bool = false) -> Bool {
        guard amount > 0 else { return true }
        guard force || held(by: holder) >= amount else { return false }
        used[holder, default: 0] += amount
        return true
    }

    /// `holder` gets back `amount` of what it consumed (a request cost less, or nothing).
    public mutating func refund(_ amount: Int64, to holder: String) {
        guard amount > 0 else { return }
        refunded[holder, default: 0] += amount
    }

    /// `holder` gives `amount` (at most what it holds) back to the pool; returns what it gave.
    @discardableResult
    public mutating func giveBack(_ amount: Int64, by holder: String) -> Int64 {
        let amount = min(amount, held(by: holder))
        guard amount > 0 else { return 0 }
        returned[holder, default: 0] += amount
        return amount
    }

    /// The owner `owner` draws `amount` (at most what the pool of `limit` holds) for `holder`,
    /// to use until `leaseUntil`; returns what it drew.
    @discardableResult
    public mutating func grant(_ amount: Int64, from owner: String, to holder: String, limit: Int64, leaseUntil: Int64 = .max) -> Int64 {
        let amount = min(amount, pool(limit: limit))
        guard amount > 0 else { return 0 }
        granted[Pair(from: owner, to: holder), default: 0] += amount
        renew(from: owner, to: holder, until: leaseUntil)
        return amount
    }

    /// Whether merging `other` would raise any figure.
    public func isRaised(by other: RightsEntry) -> Bool {
        other.granted.contains { $0.value > (granted[$0.key] ?? 0) } || other.used.contains { $0.value > (used[$0.key] ?? 0) }
            || other.refunded.contains { $0.value > (refunded[$0.key] ?? 0) } || other.returned.contains { $0.value > (returned[$0.key] ?? 0) }
            || other.leases.contains { $0.value > (leases[$0.key] ?? 0) }
    }

    public mutating func merge(_ other: RightsEntry) {
        for (k, v) in other.granted where v > (granted[k] ?? 0) { granted[k] = v }
        for (k, v) in other.used where v > (used[k] ?? 0) { used[k] = v }
        for (k, v) in other.refunded where v > (refunded[k] ?? 0) { refunded[k] = v }
        for (k, v) in other.returned where v > (returned[k] ?? 0) { returned[k] = v }
        for (k, v) in other.leases where v > (leases[k] ?? 0) { leases[k] = v }
    }
}
