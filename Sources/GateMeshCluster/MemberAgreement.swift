import GateMeshCore

/// Whether this node and every live peer hold the same members ever seen: the set among which a
/// `strict` counter's owner is picked (`LimitsEngine.Ownership.all`). Two nodes that hold
/// different sets can each take themselves for a counter's owner and each hand out its whole
/// pool (at a cluster's first start, before every node has heard of every other; while a new
/// member's arrival spreads). A `strict` owner grants only while this says the sets agree.
///
/// Why that is enough: two nodes that both hold the set S agree on every counter's owner. A node
/// Z outside S (S does not name it) holds a set that names Z, so no peer of Z's that holds S
/// agrees with Z; and a peer that has not heard of Z sends Z nothing to agree with. Z grants only
/// once S names it, that is, once every live peer has heard of it and said so. A peer that has
/// never agreed with anyone since it started (its seeds unreachable, or not yet answering) does
/// not grant either; one whose peers have all died goes on with the set it last agreed on.
///
/// Each node sends its set's digest (`frame(to:)`) to a live peer when the set changed since it
/// last sent one, and again every `resendMs` to a peer that holds another set or has sent none (the
/// frame may have been lost with its connection). A frame to a peer this node has no digest from
/// asks for one back: a node restarted faster than its peers noticed it was gone has forgotten
/// theirs, and they would not send it again otherwise. Agreement must hold for `settleMs` before it counts: the figures of
/// the counters a previous owner granted travel on the same link, and are given that long to land.
/// Pure: the shell passes in the time, the members and the peers' digests.
public struct MemberAgreement: Sendable {
    public private(set) var digest: UInt64
    public private(set) var count: Int
    /// The digest each peer (id) last sent.
    private var theirs: [String: UInt64] = [:]
    /// What was last sent to each peer, and when.
    private var sent: [String: (digest: UInt64, at: Int64)] = [:]
    /// Since when every live peer has held this node's set (nil: they do not now).
    private var agreedSince: Int64?
    /// The node has agreed with its peers at least once since it started.
    public private(set) var agreedOnce = false
    /// A node with no peers configured agrees with itself.
    public let alone: Bool
    public var settleMs: Int64 = 1_000
    public var resendMs: Int64 = 1_000
    /// The least time between two frames to one peer when the set keeps changing.
    public var spacingMs: Int64 = 200

    public init(members: some Sequence<String>, alone: Bool) {
        self.alone = alone
        (digest, count) = Self.digest(of: members)
    }

    /// FNV-1a (64-bit) over the sorted ids, each followed by a unit separator: the same on every
    /// node and every run.
    public static func digest(of members: some Sequence<String>) -> (digest: UInt64, count: Int) {
        var fnv = FNV1a()
        let sorted = Set(members).sorted()
        for id in sorted {
            fnv.add(id)
            fnv.add(0x1F as UInt8)
        }
        return (fnv.value, sorted.count)
    }

    /// This node's members ever seen (itself included) are now `members`.
    public mutating func setMembers(_ members: some Sequence<String>) {
        let (d, n) = Self.digest(of: members)
        guard d != digest || n != count else { return }
        (digest, count) = (d, n)
        agreedSince = nil
    }

    /// A peer's digest arrived; true when it asks for this node's back (send `frame(to:)` now).
    public mutating func heard(_ digest: UInt64, from peer: String, wantsReply: Bool = false) -> Bool {
        if theirs[peer] != digest { agreedSince = nil }
        theirs[peer] = digest
        return wantsReply && !alone
    }

    /// Whether a `strict` owner may grant at `now`, given the live peers (ids, this node not
    /// among them): every one of them has sent this node's digest, for `settleMs` (or has, once,
    /// and none is live now).
    public mutating func agrees(live peers: some Collection<String>, now: Int64) -> Bool {
        if alone { return true }
        if peers.isEmpty { return agreedOnce }
        guard peers.allSatisfy({ theirs[$0] == digest }) else {
            agreedSince = nil
            return false
        }
        let since = agreedSince ?? now
        agreedSince = since
        guard now - since >= settleMs else { return false }
        agreedOnce = true
        return true
    }

    /// The live peers to send this node's digest to at `now` (and notes them as sent).
    public mutating func due(live peers: some Collection<String>, now: Int64) -> [String] {
        guard !alone else { return [] }
        var out: [String] = []
        for peer in peers {
            let last = sent[peer]
            let changed = last?.digest != digest
            let gap = now - (last?.at ?? .min / 2)
            if (changed && gap >= spacingMs) || (theirs[peer] != digest && gap >= resendMs) {
                out.append(peer)
                sent[peer] = (digest, now)
            }
        }
        return out
    }

    /// Forgets a peer that is gone (dead or left): it sends again when it is back.
    public mutating func forget(_ peer: String) {
        theirs[peer] = nil
        sent[peer] = nil
    }

    /// The frame that carries this node's digest to `peer`: the digest, the count of members, and
    /// whether `peer`'s digest is wanted back (one byte, 1 when this node has none from it).
    public func frame(to peer: String) -> Frame {
        var w = BinaryWriter()
        w.uint(digest)
        w.uint(UInt64(count))
        w.byte(theirs[peer] == nil ? 1 : 0)
        return Frame(kind: .members, payload: w.bytes)
    }

    /// A `members` frame's digest, count, and whether the sender wants the receiver's back.
    public static func decode(_ payload: [UInt8]) throws(DecodeError) -> (digest: UInt64, count: Int, wantsReply: Bool) {
        var r = BinaryReader(payload)
        let d = try r.uint(), n = try r.uint(), want = try r.byte()
        guard r.atEnd else { throw DecodeError("trailing bytes after a members digest") }
        guard n <= UInt64(Int32.max) else { throw DecodeError("a members digest of \(n) members") }
        guard want <= 1 else { throw DecodeError("bad members reply flag \(want)") }
        return (d, Int(n), want == 1)
    }
}
