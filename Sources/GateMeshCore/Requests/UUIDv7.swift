/// UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort by time.
public enum UUIDv7 {
    /// The id for `unixMillis` with the given 74 random bits (`randomHigh` supplies 12, `randomLow` 62).
    public static func make(unixMillis: UInt64, randomHigh: UInt16, randomLow: UInt64) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8((unixMillis >> (8 * (5 - UInt64(i)))) & 0xFF) }
        bytes[6] = 0x70 | UInt8((randomHigh >> 8) & 0x0F)
        bytes[7] = UInt8(randomHigh & 0xFF)
        bytes[8] = 0x80 | UInt8((randomLow >> 56) & 0x3F)
        for i in 9..<16 { bytes[i] = UInt8((randomLow >> (8 * (15 - UInt64(i)))) & 0xFF) }
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A fresh id from the system random source.
    public static func make(unixMillis: UInt64) -> String {
        var rng = SystemRandomNumberGenerator()
        return make(unixMillis: unixMillis, randomHigh: UInt16.random(in: 0...0x0FFF, using: &rng), randomLow: rng.next())
    }
}
