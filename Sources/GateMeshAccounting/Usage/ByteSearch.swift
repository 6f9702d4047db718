/// Byte-level scans used on streamed events, so that most events are never JSON-parsed.
enum ByteSearch {
    /// The index of the first occurrence of `needle` in `haystack`, if any (offset from its start).
    static func find(_ needle: [UInt8], in haystack: some Collection<UInt8>) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        if let found = haystack.withContiguousStorageIfAvailable({ h in find(needle, in: UnsafeRawBufferPointer(h)) }) {
            return found
        }
        return Array(haystack).withUnsafeBytes { find(needle, in: $0) }
    }

    static func find(_ needle: [UInt8], in h: UnsafeRawBufferPointer) -> Int? {
        let n = h.count
        let m = needle.count
        guard m > 0, n >= m else { return nil }
        let first = needle[0]
        return needle.withUnsafeBufferPointer { nd -> Int? in
            var i = 0
            let last = n - m
            while i <= last {
                if h[i] == first {
                    var j = 1
                    while j < m && h[i + j] == nd[j] { j += 1 }
                    if j == m { return i }
                }
                i += 1
            }
            return nil
        }
    }

    static func contains(_ needle: [UInt8], in haystack: some Collection<UInt8>) -> Bool {
        find(needle, in: haystack) != nil
    }

    /// The total length, in characters, of the JSON string values that follow each of `keys`
    /// (`"content":"…"`), counting an escape sequence as one character.
    static func stringValueLengths(after keys: [[UInt8]], in bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { all in
            var total = 0
            for key in keys {
                var start = 0
                while start < all.count, let found = find(key, in: UnsafeRawBufferPointer(rebasing: all[start...])) {
                    var i = start + found + key.count
                    var n = 0
                    while i < all.count && all[i] != UInt8(ascii: "\"") {
                        if all[i] == UInt8(ascii: "\\") {
                            i += all.count > i + 1 && all[i + 1] == UInt8(ascii: "u") ? 6 : 2
                            n += 1
                        } else {
                            // Count UTF-8 lead bytes only, so a character is one whatever its encoding.
                            if all[i] & 0xC0 != 0x80 { n += 1 }
                            i += 1
                        }
                    }
                    total += n
                    start = i + 1
                }
            }
            return total
        }
    }

    /// The value of the first `"key":"value"` string in `bytes`.
    static func stringValue(after key: [UInt8], in bytes: [UInt8]) -> String? {
        guard let found = find(key, in: bytes) else { return nil }
        let start = found + key.count
        var end = start
        while end < bytes.count && bytes[end] != UInt8(ascii: "\"") {
            end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
        }
        guard end <= bytes.count, end > start else { return nil }
        return String(decoding: bytes[start..<min(end, bytes.count)], as: UTF8.self)
    }

    /// `bytes` with every occurrence of each pattern removed.
    static func removing(_ patterns: [[UInt8]], from bytes: [UInt8]) -> [UInt8] {
        var out = bytes
        for pattern in patterns {
            while let i = find(pattern, in: out) {
                out.removeSubrange(i..<(i + pattern.count))
            }
        }
        return out
    }
}
