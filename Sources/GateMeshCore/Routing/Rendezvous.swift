/// Rendezvous (highest random weight) hashing: the owner of a key is the member whose hash of
/// (member, key) is highest. Every node computes the same owner from the same member list, each
/// member owns about 1/n of the keys, and when a member joins or leaves only the keys it owns (or
/// comes to own) move. Pure.
public enum Rendezvous {
    /// The owner of `key` among `members` (nil when there are none).
    public static func owner(of key: String, among members: [String]) -> String? {
        var best: (String, UInt64)?
        for m in members {
            let w = weight(member: m, key: key)
            if best == nil || w > best!.1 || (w == best!.1 && m < best!.0) { best = (m, w) }
        }
        return best?.0
    }

    /// A 64-bit weight for (member, key): FNV-1a over both, then a SplitMix64 finalizer so that
    /// similar names spread evenly.
    public static func weight(member: String, key: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in member.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        h = (h ^ 0xff) &* 0x100000001b3
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        var z = h &+ 0x9E3779B97F4A7C15
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }

    /// The share of key space each member owns, estimated over `samples` keys (for status).
    public static func shares(among members: [String], samples: Int = 4096) -> [String: Double] {
        guard !members.isEmpty else { return [:] }
        var counts: [String: Int] = [:]
        for i in 0..<samples { counts[owner(of: "sample-\(i)", among: members)!, default: 0] += 1 }
        return counts.mapValues { Double($0) / Double(samples) }
    }
}
