/// The asking side of the cache across nodes: the lookups this node sent to keys' owners
/// (`cacheGet`), each waiting for the owner's answer. A lookup ends with the owner's answer
/// (`answer`), or as a miss (the asker fetches on its own) when the owner does not answer within
/// `ownerTimeoutMs`, when a fetch the owner said to wait for (`pending`) runs past `pendingMs`
/// (`expire`), when the owner leaves (`ownerGone`), or when the asker gives up (`cancel`).
///
/// Pure: the caller passes the time, keeps whatever wakes the asker (`Waiter`, the shell's
/// continuation), and resumes the waiters it gets back.
public struct CacheLookups<Waiter> {
    public struct Lookup {
        public var waiter: Waiter
        public var owner: String
        /// When the lookup ends as a miss if nothing comes before.
        public var deadline: Int64
        /// The owner said another node is fetching the key.
        public var pending: Bool
    }

    /// How long an owner has to answer.
    public let ownerTimeoutMs: Int64
    /// How long a lookup told to wait for another node's fetch waits at most.
    public let pendingMs: Int64
    public private(set) var waiting: [UInt64: Lookup] = [:]
    private var next: UInt64 = 1

    public init(ownerTimeoutMs: Int64, pendingMs: Int64) {
        self.ownerTimeoutMs = ownerTimeoutMs
        self.pendingMs = pendingMs
    }

    /// The id the next lookup will have (its `cacheGet` carries it).
    public mutating func nextID() -> UInt64 {
        defer { next += 1 }
        return next
    }

    /// Lookup `id` to `owner` waits from `now`.
    public mutating func start(_ id: UInt64, owner: String, waiter: Waiter, now: Int64) {
        waiting[id] = Lookup(waiter: waiter, owner: owner, deadline: now + ownerTimeoutMs, pending: false)
    }

    /// The owner answered lookup `id`: the waiter to resume with the answer; nil when the answer
    /// says to wait for another node's fetch (the lookup waits up to `pendingMs` more) or the
    /// lookup is over already (the answer is dropped).
    public mutating func answer(_ id: UInt64, pending: Bool, now: Int64) -> Waiter? {
        guard pending else { return waiting.removeValue(forKey: id)?.waiter }
        if waiting[id] != nil {
            waiting[id]!.pending = true
            waiting[id]!.deadline = now + pendingMs
        }
        return nil
    }

    /// Lookups past their deadline: their waiters, to resume with a miss.
    public mutating func expire(now: Int64) -> [Waiter] {
        let due = waiting.filter { $0.value.deadline <= now }.map(\.key)
        return due.compactMap { waiting.removeValue(forKey: $0)?.waiter }
    }

    /// `owner` left or died: its lookups' waiters, to resume with a miss.
    public mutating func ownerGone(_ owner: String) -> [Waiter] {
        let gone = waiting.filter { $0.value.owner == owner }.map(\.key)
        return gone.compactMap { waiting.removeValue(forKey: $0)?.waiter }
    }

    /// The asker gave up on lookup `id`: its waiter, to resume with a miss (nil if it is over).
    public mutating func cancel(_ id: UInt64) -> Waiter? {
        waiting.removeValue(forKey: id)?.waiter
    }
}

extension CacheLookups: Sendable where Waiter: Sendable {}
extension CacheLookups.Lookup: Sendable where Waiter: Sendable {}
