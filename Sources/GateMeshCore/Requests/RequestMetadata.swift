/// The `metadata` request header: a flat JSON object whose values are strings, numbers or booleans.
///
/// Parsed by hand so that numbers keep their exact text and booleans never turn into numbers.
/// Limits: at most `maxEntries` entries, keys of 1 to 64 characters, string values of at most 512
/// characters, the header itself at most 8 KiB. Anything else is a 400 that says what was wrong.
public struct RequestMetadata: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case string(String)
        /// The number's JSON text, unchanged.
        case number(String)
        case bool(Bool)
    }

    public static let maxEntries = 32
    public static let maxKeyLength = 64
    public static let maxStringLength = 512
    public static let maxHeaderBytes = 8 * 1024

    public var entries: [(key: String, value: Value)]

    public init(entries: [(key: String, value: Value)] = []) { self.entries = entries }

    public static func == (a: RequestMetadata, b: RequestMetadata) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public var isEmpty: Bool { entries.isEmpty }

    public subscript(key: String) -> Value? { entries.first { $0.key == key }?.value }

    /// The value as text, as budgets and filters compare it (`"true"`, `"12.5"`, `"team-a"`).
    public func text(_ key: String) -> String? {
        switch self[key] {
        case .string(let s): return s
        case .number(let n): return n
        case .bool(let b): return b ? "true" : "false"
        case nil: return nil
        }
    }

    /// The metadata as a compact JSON object, entries in the order given.
    public var json: String {
        var out = "{"
        for (i, (key, value)) in entries.enumerated() {
            if i > 0 { out += "," }
            JSON.appendQuoted(key, to: &out)
            out += ":"
            switch value {
            case .string(let s): JSON.appendQuoted(s, to: &out)
            case .number(let n): out += n
            case .bool(let b): out += b ? "true" : "false"
            }
        }
        return out + "}"
    }

    public static func parse(_ header: String) throws(GatewayError) -> RequestMetadata {
        func fail(_ why: String) -> GatewayError {
            .badRequest("x-gatemesh-metadata: \(why); it must be a JSON object of at most \(maxEntries) strings, numbers and booleans",
                        code: "invalid_metadata")
        }
        guard header.utf8.count <= maxHeaderBytes else { throw fail("the header is longer than \(maxHeaderBytes) bytes") }
        var p = Parser(Array(header.utf8))
        var out = RequestMetadata()
        p.skipSpace()
        guard p.take(UInt8(ascii: "{")) else { throw fail("not a JSON object") }
        p.skipSpace()
        if !p.take(UInt8(ascii: "}")) {
            while true {
                p.skipSpace()
                guard let key = p.string() else { throw fail("expected a quoted key") }
                guard !key.isEmpty, key.count <= maxKeyLength else { throw fail("key '\(key)' must have 1 to \(maxKeyLength) characters") }
                guard out[key] == nil else { throw fail("key '\(key)' appears twice") }
                p.skipSpace()
                guard p.take(UInt8(ascii: ":")) else { throw fail("expected ':' after key '\(key)'") }
                p.skipSpace()
                let value: Value
                if let s = p.string() {
                    guard s.count <= maxStringLength else { throw fail("the value of '\(key)' is longer than \(maxStringLength) characters") }
                    value = .string(s)
                } else if p.literal("true") {
                    value = .bool(true)
                } else if p.literal("false") {
                    value = .bool(false)
                } else if let n = p.number() {
                    value = .number(n)
                } else if p.peek == UInt8(ascii: "{") || p.peek == UInt8(ascii: "[") {
                    throw fail("the value of '\(key)' is an object or array")
                } else if p.literal("null") {
                    throw fail("the value of '\(key)' is null")
                } else {
                    throw fail("the value of '\(key)' is not valid JSON")
                }
                out.entries.append((key, value))
                guard out.entries.count <= maxEntries else { throw fail("more than \(maxEntries) entries") }
                p.skipSpace()
                if p.take(UInt8(ascii: ",")) { continue }
                guard p.take(UInt8(ascii: "}")) else { throw fail("expected ',' or '}' after the value of '\(key)'") }
                break
            }
        }
        p.skipSpace()
        guard p.atEnd else { throw fail("unexpected text after the object") }
        return out
    }

    struct Parser {
        let bytes: [UInt8]
        var i = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
        mutating func skipSpace() {
            while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
        }
        mutating func take(_ c: UInt8) -> Bool {
            guard peek == c else { return false }
            i += 1
            return true
        }
        mutating func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { return false }
            i += w.count
            return true
        }
        mutating func number() -> String? {
            let start = i
            if peek == UInt8(ascii: "-") { i += 1 }
            guard let first = peek, (0x30...0x39).contains(first) else { i = start; return nil }
            if first == 0x30 { i += 1 } else { while let c = peek, (0x30...0x39).contains(c) { i += 1 } }
            if peek == UInt8(ascii: ".") {
                i += 1
                guard let c = peek, (0x30...0x39).contains(c) else { i = start; return nil }
                while let c = peek, (0x30...0x39).contains(c) { i += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                i += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
                guard let c = peek, (0x30...0x39).contains(c) else { i = start; return nil }
                while let c = peek, (0x30...0x39).contains(c) { i += 1 }
            }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var out = [UInt8]()
            while let c = peek {
                i += 1
                switch c {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard let e = peek else { return nil }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "u"):
                        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else { return nil }
                        i += 4
                        var scalar = v
                        if (0xD800...0xDBFF).contains(v), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                           let low = UInt32(String(decoding: bytes[(i + 2)..<(i + 6)], as: UTF8.self), radix: 16), (0xDC00...0xDFFF).contains(low) {
                            scalar = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                            i += 6
                        }
                        guard let u = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: Array(String(Character(u)).utf8))
                    default: return nil
                    }
                default:
                    if c < 0x20 { return nil }
                    out.append(c)
                }
            }
            return nil
        }
    }
}
