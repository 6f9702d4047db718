/// RFC 9562 version 7 UUIDs (a millisecond timestamp, then random bits): the request log's ids,
/// which sort by time as text.
public enum UUIDv7 {
    /// The id for `unixMillis` with the given 74 random bits (`randomHigh` supplies 12, `randomLow` 62),
    /// as lowercase text with dashes (`0190b5d2-…`). One allocation: the string's own.
    public static func make(unixMillis: UInt64, randomHigh: UInt16, randomLow: UInt64) -> String {
        // The 16 bytes as two big-endian halves.
        let high = (unixMillis & 0xFFFF_FFFF_FFFF) << 16 | 0x7000 | UInt64(randomHigh & 0x0FFF)
        let low = 0x8000_0000_0000_0000 | (randomLow & 0x3FFF_FFFF_FFFF_FFFF)
        return String(unsafeUninitializedCapacity: 36) { out in
            var o = 0
            func put(_ word: UInt64, dashesAfter mask: UInt16) {
                for i in 0..<16 {
                    let nibble = UInt8((word >> (60 - 4 * UInt64(i))) & 0xF)
                    out[o] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
                    o += 1
                    if mask & (1 << i) != 0 {
                        out[o] = UInt8(ascii: "-")
                        o += 1
                    }
                }
            }
            // xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx
            put(high, dashesAfter: 1 << 7 | 1 << 11 | 1 << 15)
            put(low, dashesAfter: 1 << 3)
            return o
        }
    }

    /// A fresh id from the system random source.
    public static func make(unixMillis: UInt64) -> String {
        var rng = SystemRandomNumberGenerator()
        let random = rng.next() as UInt64
        let more = rng.next() as UInt64
        return make(unixMillis: unixMillis, randomHigh: UInt16(truncatingIfNeeded: more), randomLow: random)
    }
}
