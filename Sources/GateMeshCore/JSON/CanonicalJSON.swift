/// The canonical form of a JSON document, for cache keys: object keys sorted by their UTF-8 bytes
/// (after unescaping), no insignificant whitespace, strings re-escaped one way (only `"`, `\` and
/// control characters escaped, `\u` for controls without a short form), numbers kept as written.
/// Two documents that differ only in key order, whitespace or string escaping (`"\u00e9"` and
/// `"é"`) have the same canonical form. Pure; returns nil for text that is not JSON, or nested
/// deeper than `maxDepth`.
public enum CanonicalJSON {
    public static let maxDepth = 512

    public static func canonical(_ bytes: [UInt8]) -> [UInt8]? {
        var parser = Parser(bytes: bytes)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        guard parser.value(into: &out, depth: 0) else { return nil }
        parser.skipWhitespace()
        return parser.index == bytes.count ? out : nil
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
        }

        mutating func value(into out: inout [UInt8], depth: Int) -> Bool {
            guard depth <= CanonicalJSON.maxDepth else { return false }
            skipWhitespace()
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "{"): return object(into: &out, depth: depth)
            case UInt8(ascii: "["): return array(into: &out, depth: depth)
            case UInt8(ascii: "\""):
                guard let s = string() else { return false }
                Self.writeString(s, into: &out)
                return true
            case UInt8(ascii: "t"): return literal("true", into: &out)
            case UInt8(ascii: "f"): return literal("false", into: &out)
            case UInt8(ascii: "n"): return literal("null", into: &out)
            default: return number(into: &out)
            }
        }

        mutating func literal(_ word: StaticString, into out: inout [UInt8]) -> Bool {
            let start = index
            guard literal(word) else { return false }
            out.append(contentsOf: bytes[start..<index])
            return true
        }

        /// Moves past `word` (`true`, `false`, `null`) when it is next.
        mutating func literal(_ word: StaticString) -> Bool {
            let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
            guard index + w.count <= bytes.count, bytes[index..<index + w.count].elementsEqual(w) else { return false }
            index += w.count
            return true
        }

        mutating func number(into out: inout [UInt8]) -> Bool {
            let start = index
            guard skipNumber() else { return false }
            out.append(contentsOf: bytes[start..<index])
            return true
        }

        /// Moves past a number, checking its grammar.
        mutating func skipNumber() -> Bool {
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            var digits = 0
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1; digits += 1 }
            guard digits > 0 else { return false }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                var fraction = 0
                while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1; fraction += 1 }
                guard fraction > 0 else { return false }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                var exponent = 0
                while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1; exponent += 1 }
                guard exponent > 0 else { return false }
            }
            return true
        }

        /// A string's unescaped UTF-8 bytes; the index moves past its closing quote.
        mutating func string() -> [UInt8]? {
            index += 1
            var s: [UInt8] = []
            while index < bytes.count {
                let b = bytes[index]
                switch b {
                case UInt8(ascii: "\""):
                    index += 1
                    return s
                case UInt8(ascii: "\\"):
                    guard let scalar = escapedScalar() else { return nil }
                    UTF8.encode(scalar) { s.append($0) }
                default:
                    guard b >= 0x20 else { return nil }
                    s.append(b)
                    index += 1
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: return nil
                }
                v = v << 4 | d
                index += 1
            }
            return v
        }

        mutating func array(into out: inout [UInt8], depth: Int) -> Bool {
            out.append(UInt8(ascii: "["))
            var first = true
            guard items(closedBy: UInt8(ascii: "]"), { p in
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                return p.value(into: &out, depth: depth + 1)
            }) else { return false }
            out.append(UInt8(ascii: "]"))
            return true
        }

        mutating func object(into out: inout [UInt8], depth: Int) -> Bool {
            var members: [(key: [UInt8], value: [UInt8])] = []
            guard items(closedBy: UInt8(ascii: "}"), { p in
                p.skipWhitespace()
                guard p.index < p.bytes.count, p.bytes[p.index] == UInt8(ascii: "\""), let key = p.string(), p.colon() else { return false }
                var v: [UInt8] = []
                guard p.value(into: &v, depth: depth + 1) else { return false }
                members.append((key, v))
                return true
            }) else { return false }
            // Sorted by key bytes; a repeated key keeps its order of appearance (stable sort).
            let sorted = members.enumerated().sorted { a, b in
                a.element.key.lexicographicallyPrecedes(b.element.key) || (a.element.key == b.element.key && a.offset < b.offset)
            }
            out.append(UInt8(ascii: "{"))
            for (i, m) in sorted.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(m.element.key, into: &out)
                out.append(UInt8(ascii: ":"))
                out.append(contentsOf: m.element.value)
            }
            out.append(UInt8(ascii: "}"))
            return true
        }

        static func writeString(_ s: [UInt8], into out: inout [UInt8]) {
            out.append(UInt8(ascii: "\""))
            for b in s {
                switch b {
                case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                default: out.append(b)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
    }
}

/// Raw spans of a JSON document's parts, so a value can be passed on byte for byte (never
/// re-encoded). Pure; nil for text that is not the expected JSON.
public enum JSONSpans {
    /// The elements of a top-level array, as raw byte ranges.
    public static func array(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>]? {
        var p = CanonicalJSON.Parser(bytes: Array(bytes))
        let base = bytes.startIndex
        p.skipWhitespace()
        guard p.index < p.bytes.count, p.bytes[p.index] == UInt8(ascii: "[") else { return nil }
        p.index += 1
        var out: [ArraySlice<UInt8>] = []
        p.skipWhitespace()
        if p.index < p.bytes.count, p.bytes[p.index] == UInt8(ascii: "]") {
            p.index += 1
            return p.trailingOnly ? out : nil
        }
        while true {
            p.skipWhitespace()
            let start = p.index
            var scratch: [UInt8] = []
            guard p.value(into: &scratch, depth: 1) else { return nil }
            out.append(bytes[(base + start)..<(base + p.index)])
            p.skipWhitespace()
            guard p.index < p.bytes.count else { return nil }
            if p.bytes[p.index] == UInt8(ascii: ",") { p.index += 1; continue }
            guard p.bytes[p.index] == UInt8(ascii: "]") else { return nil }
            p.index += 1
            return p.trailingOnly ? out : nil
        }
    }

    /// The members of an object, keys unescaped, values as raw byte ranges, in order.
    public static func object(_ bytes: ArraySlice<UInt8>) -> [(key: String, value: ArraySlice<UInt8>)]? {
        var p = CanonicalJSON.Parser(bytes: Array(bytes))
        let base = bytes.startIndex
        var out: [(key: String, value: ArraySlice<UInt8>)] = []
        let ok = p.forEachMember(depth: 0) { p, key in
            p.skipWhitespace()
            let start = p.index
            var scratch: [UInt8] = []
            guard p.value(into: &scratch, depth: 1) else { return false }
            out.append((String(decoding: key, as: UTF8.self), bytes[(base + start)..<(base + p.index)]))
            return true
        }
        return ok && p.trailingOnly ? out : nil
    }

    /// A JSON string's text, or nil when the bytes are not exactly one string.
    public static func string(_ bytes: ArraySlice<UInt8>) -> String? {
        var p = CanonicalJSON.Parser(bytes: Array(bytes))
        p.skipWhitespace()
        guard p.index < p.bytes.count, p.bytes[p.index] == UInt8(ascii: "\""), let s = p.string(), p.trailingOnly else { return nil }
        return String(decoding: s, as: UTF8.self)
    }

    /// A JSON number's text (as written), or nil.
    public static func number(_ bytes: ArraySlice<UInt8>) -> String? {
        var p = CanonicalJSON.Parser(bytes: Array(bytes))
        p.skipWhitespace()
        var out: [UInt8] = []
        guard p.number(into: &out), p.trailingOnly else { return nil }
        return String(decoding: out, as: UTF8.self)
    }
}

extension CanonicalJSON.Parser {
    /// Walks the object that starts here (after whitespace): for each member, `visit` gets the
    /// unescaped key with the parser just past the colon, and must move past the value (false:
    /// malformed). False when the object is malformed; the parser ends just past its `}`.
    mutating func forEachMember(depth: Int, _ visit: (inout Self, ArraySlice<UInt8>) -> Bool) -> Bool {
        guard depth <= CanonicalJSON.maxDepth else { return false }
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return false }
        return items(closedBy: UInt8(ascii: "}")) { p in
            p.skipWhitespace()
            guard p.index < p.bytes.count, p.bytes[p.index] == UInt8(ascii: "\""), let key = p.stringSlice(), p.colon() else { return false }
            return visit(&p, key)
        }
    }

    /// Walks the array or object whose opening bracket is at the index: `item` must move past one
    /// element or member (false: malformed); a `,` comes between them and `close` after the last.
    /// False when the container is malformed; the parser ends just past `close`. The one loop of
    /// every container walk here (the tree, the canonical form, the skipping, the visits).
    mutating func items(closedBy close: UInt8, _ item: (inout Self) -> Bool) -> Bool {
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == close {
            index += 1
            return true
        }
        while true {
            guard item(&self) else { return false }
            skipWhitespace()
            guard index < bytes.count else { return false }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == close {
                index += 1
                return true
            } else {
                return false
            }
        }
    }

    /// Moves past the `:` after a member's key (whitespace around it allowed); false when it is not there.
    mutating func colon() -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
        index += 1
        return true
    }

    /// A string's unescaped bytes, as a slice of the input when it has no escapes (no copy);
    /// the index moves past its closing quote.
    mutating func stringSlice() -> ArraySlice<UInt8>? {
        let start = index + 1
        var i = start
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                index = i + 1
                return bytes[start..<i]
            }
            if b == UInt8(ascii: "\\") { break }
            guard b >= 0x20 else { return nil }
            i += 1
        }
        return string().map { ArraySlice($0) }
    }

    /// Decodes the escape at the index (a backslash and what follows: `\n`, `\u00e9`, a
    /// surrogate pair `\ud83d\ude00`) and moves past it; nil when it is not a valid escape.
    mutating func escapedScalar() -> Unicode.Scalar? {
        index += 1
        guard index < bytes.count else { return nil }
        let e = bytes[index]
        index += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return Unicode.Scalar(e)
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            guard var scalar = hex4() else { return nil }
            if (0xD800...0xDBFF).contains(scalar) {
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else { return nil }
                index += 2
                guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                return nil
            }
            return Unicode.Scalar(scalar)
        default:
            return nil
        }
    }

    /// Walks the array that starts at the index: `visit` must move past each element (false:
    /// malformed). False when the array is malformed; the parser ends just past its `]`.
    mutating func forEachElement(depth: Int, _ visit: (inout Self) -> Bool) -> Bool {
        guard depth <= CanonicalJSON.maxDepth, index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return false }
        return items(closedBy: UInt8(ascii: "]"), visit)
    }

    /// Nothing but whitespace is left.
    var trailingOnly: Bool {
        mutating get {
            skipWhitespace()
            return index == bytes.count
        }
    }
}
