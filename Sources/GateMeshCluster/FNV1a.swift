/// FNV-1a, 64-bit: a hash that is the same on every node and every run (Swift's `Hasher` is
/// seeded per process), for the digests peers compare (`RuleRecords.digest`,
/// `MemberAgreement.digest`), and the simulator's stand-in signatures.
public struct FNV1a: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func add(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }

    public mutating func add(_ text: String) { for b in text.utf8 { add(b) } }

    public mutating func add(_ bytes: [UInt8]) { for b in bytes { add(b) } }

    /// The eight bytes of `v`, least significant first.
    public mutating func add(_ v: UInt64) { for i in 0..<8 { add(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
}
