/// Checks bearer tokens without leaking, through timing, how much of a guess was right.
public enum TokenCheck {
    /// The token in an `Authorization`-style value `Bearer <token>` (scheme case-insensitive).
    public static func bearerToken(_ headerValue: some StringProtocol) -> Substring? {
        let value = Substring(headerValue)
        guard value.count > 7 else { return nil }
        let scheme = value.prefix(7)
        guard scheme.lowercased() == "bearer " else { return nil }
        let token = value.dropFirst(7).drop(while: { $0 == " " })
        return token.isEmpty ? nil : token
    }

    /// True when `presented` equals one of `accepted`. Compares every byte of every candidate.
    public static func matches(_ presented: some StringProtocol, anyOf accepted: [String]) -> Bool {
        var found = false
        for candidate in accepted where constantTimeEquals(presented, candidate) {
            found = true
        }
        return found
    }

    /// Byte equality whose running time depends only on the lengths.
    public static func constantTimeEquals(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var diff: UInt8 = x.count == y.count ? 0 : 1
        let n = max(x.count, y.count)
        for i in 0..<n {
            let p = i < x.count ? x[i] : 0
            let q = i < y.count ? y[i] : 0
            diff |= p ^ q
        }
        return diff == 0
    }
}
