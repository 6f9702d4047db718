import GateMeshCluster

/// Signed membership records in the simulator: a node's "signature" of a record is 64 bytes
/// derived from its name and the record, checked by deriving them again. No cryptography, but the
/// same bytes on the wire as ECDSA P-256 (so the byte counts hold) and the same rule: a record
/// carries only what its member signed. Every node holds every key (the shell fetches a missing
/// certificate from the peer that passed a record on; the simulator leaves that round trip out).
struct StandInSigner: RecordSigner {
    let name: String

    func sign(_ record: [UInt8]) -> [UInt8] { Self.signature(of: record, by: name) }

    func check(_ record: [UInt8], signature: [UInt8], by member: String) -> RecordCheck {
        signature == Self.signature(of: record, by: member) ? .valid : .invalid
    }

    static func signature(of record: [UInt8], by member: String) -> [UInt8] {
        var fnv = FNV1a()
        fnv.add(member)
        fnv.add(record)
        var rng = SplitMix64(seed: fnv.value)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for _ in 0..<8 {
            let v = rng.next()
            for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
        }
        return out
    }
}
