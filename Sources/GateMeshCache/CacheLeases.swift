/// The key owner's side of the cache across nodes: the leases it has given peers to fetch a key
/// for the whole cluster ("you fetch it"). Each lease holds the flight that requests for the key
/// wait on, anywhere in the cluster, until the peer sends the answer (`take`), releases the lease
/// (`release`: its fetch had no cacheable answer), leaves (`memberGone`) or runs out of time
/// (`expire`). An answer is stored only under a lease this node gave that peer: a peer cannot
/// plant an entry for a key, nor one fetched after its lease ended.
///
/// Pure: the caller passes the time, keeps the flights (`Flight`, the shell's ticket) and ends
/// the flights it gets back.
public struct CacheLeases<Flight> {
    public struct Holder: Hashable, Sendable {
        public var peer: String
        public var key: String
        public init(peer: String, key: String) {
            self.peer = peer
            self.key = key
        }
    }

    /// How long a lease lasts: a peer that never answers holds the key's waiters no longer.
    public let leaseMs: Int64
    /// How long a release that came before its lease is remembered. A peer that gave up waiting
    /// for the owner's answer releases at once; the owner's answer (the lease) may follow.
    public static var earlyReleaseMs: Int64 { 1_000 }

    private var held: [Holder: (flight: Flight, expiresAt: Int64)] = [:]
    private var releasedEarly: [Holder: Int64] = [:]

    public init(leaseMs: Int64) {
        self.leaseMs = leaseMs
    }

    public enum Grant {
        /// The peer leads the key's fetch; `replaced` is an earlier lease of the same peer for the
        /// same key, to end without an answer.
        case granted(replaced: Flight?)
        /// The peer released the key before the lease was made (it gave up waiting): no lease;
        /// end `flight` without an answer and tell the peer to fetch on its own.
        case alreadyReleased
    }

    /// Gives `peer` the lease of `key`, holding `flight`.
    public mutating func grant(_ key: String, to peer: String, flight: Flight, now: Int64) -> Grant {
        let holder = Holder(peer: peer, key: key)
        if releasedEarly.removeValue(forKey: holder) != nil { return .alreadyReleased }
        return .granted(replaced: held.updateValue((flight, now + leaseMs), forKey: holder)?.flight)
    }

    /// The peer's answer for `key` arrived: the lease's flight, to store the answer under and end
    /// with it, or nil when the peer holds no lease for the key (the answer is dropped).
    public mutating func take(_ key: String, from peer: String) -> Flight? {
        held.removeValue(forKey: Holder(peer: peer, key: key))?.flight
    }

    /// The peer's fetch of `key` ended without a cacheable answer: the flight to end without one,
    /// or nil when no lease is held yet (the release is remembered for `earlyReleaseMs`).
    public mutating func release(_ key: String, from peer: String, now: Int64) -> Flight? {
        let holder = Holder(peer: peer, key: key)
        if let lease = held.removeValue(forKey: holder) { return lease.flight }
        releasedEarly[holder] = now + Self.earlyReleaseMs
        return nil
    }

    /// The peer is dead or left: the flights of its leases, to end without an answer.
    public mutating func memberGone(_ peer: String) -> [Flight] {
        let gone = held.filter { $0.key.peer == peer }
        for holder in gone.keys { held[holder] = nil }
        return gone.values.map(\.flight)
    }

    /// The flights of the leases that ran out at `now`, to end without an answer; forgets the
    /// early releases that are old enough.
    public mutating func expire(now: Int64) -> [Flight] {
        if !releasedEarly.isEmpty { releasedEarly = releasedEarly.filter { $0.value > now } }
        let old = held.filter { $0.value.expiresAt <= now }
        for holder in old.keys { held[holder] = nil }
        return old.values.map(\.flight)
    }

    /// How many leases are held (for tests and the status).
    public var count: Int { held.count }
}

extension CacheLeases: Sendable where Flight: Sendable {}
