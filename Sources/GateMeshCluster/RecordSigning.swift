import GateMeshCore

/// What a node believes of a membership record it did not hear from the member itself: only what
/// the member signed. A record (name, address, region, id, config digest, incarnation) is signed by
/// its member whenever it changes; gossip about it (alive, suspect, dead, left) carries that
/// signature, so a peer with a valid certificate can pass records on but cannot write another
/// member's: not move it to another address, not raise its incarnation past what it can refute,
/// not invent a member with another node's id (which would stop that node as a copy).
///
/// The shell signs with the node's TLS key and checks with the member's certificate
/// (`MemberKeys`); the simulator uses a stand-in. Pure: no I/O behind the protocol's calls.
public protocol RecordSigner: Sendable {
    /// This node's signature of `record`.
    func sign(_ record: [UInt8]) -> [UInt8]
    /// Whether `signature` is `member`'s signature of `record`.
    func check(_ record: [UInt8], signature: [UInt8], by member: String) -> RecordCheck
}

public enum RecordCheck: Sendable, Equatable {
    case valid
    /// Not that member's signature (forged, or made with a key newer than the one held).
    case invalid
    /// No key is held for that member: ask the peer that passed the record on for its certificate.
    case unknownSigner
}

extension Membership {
    /// The bytes a member signs: a fixed label, its record and the incarnation. The state is not
    /// covered: suspicion, death and departure are others' claims about a record the member signed.
    public static func record(_ info: Info, incarnation: UInt64) -> [UInt8] {
        var w = BinaryWriter()
        w.string("gatemesh member record 1")
        MembershipCodec.info(info, &w)
        w.uint(incarnation)
        return w.bytes
    }
}
