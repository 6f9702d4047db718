/// One JSON object read in place: its members are indexed in one walk (where each key and each
/// value start), and nothing is built but what is asked for (a number as an `Int`, a string, a
/// nested object's own index). For the few members read from every answer (its `model` and
/// `usage`), where a tree would cost an allocation per key, number and nested object. Pure.
public struct JSONObjectView: Sendable {
    private let bytes: [UInt8]
    /// Each member: its unescaped key (a slice of `bytes` unless the key has escapes) and where
    /// its value starts.
    private let members: [(key: ArraySlice<UInt8>, value: Int)]

    /// Nil unless `bytes` is exactly one well-formed JSON object (whitespace around it allowed).
    public init?(_ bytes: [UInt8]) {
        var p = CanonicalJSON.Parser(bytes: bytes)
        guard let members = Self.index(&p, depth: 0), p.trailingOnly else { return nil }
        self.bytes = bytes
        self.members = members
    }

    private init(bytes: [UInt8], members: [(key: ArraySlice<UInt8>, value: Int)]) {
        self.bytes = bytes
        self.members = members
    }

    /// Walks the object at the parser's index, checking every value, and notes its members.
    private static func index(_ p: inout CanonicalJSON.Parser, depth: Int) -> [(key: ArraySlice<UInt8>, value: Int)]? {
        var members: [(key: ArraySlice<UInt8>, value: Int)] = []
        members.reserveCapacity(12)
        let ok = p.forEachMember(depth: depth) { p, key in
            p.skipWhitespace()
            members.append((key, p.index))
            return p.skipValue(depth: depth + 1)
        }
        return ok ? members : nil
    }

    /// Where the value of the last member named `key` starts (as a parsed object's lookup would
    /// find it when a key is repeated).
    private func valueIndex(_ key: String) -> Int? {
        var key = key
        return key.withUTF8 { name in members.last { $0.key.elementsEqual(name) }?.value }
    }

    public func contains(_ key: String) -> Bool { valueIndex(key) != nil }

    /// The member's value when it is an object.
    public func object(_ key: String) -> JSONObjectView? {
        guard let i = valueIndex(key), bytes[i] == UInt8(ascii: "{") else { return nil }
        // Checked when the outer object was indexed; indexed again here for its own members.
        var p = CanonicalJSON.Parser(bytes: bytes, index: i)
        return Self.index(&p, depth: 0).map { JSONObjectView(bytes: bytes, members: $0) }
    }

    /// The member's value when it is a string.
    public func string(_ key: String) -> String? {
        guard let i = valueIndex(key), bytes[i] == UInt8(ascii: "\"") else { return nil }
        var p = CanonicalJSON.Parser(bytes: bytes, index: i)
        return p.stringSlice().map { String(decoding: $0, as: UTF8.self) }
    }

    /// The member's value when it is a number with an integral value (`12`, `12.0`, `1.2e1`), as
    /// `JSONValue.intValue` reads it.
    public func int(_ key: String) -> Int? {
        guard let i = valueIndex(key) else { return nil }
        var p = CanonicalJSON.Parser(bytes: bytes, index: i)
        guard p.skipNumber() else { return nil }
        // Plain digits, the usual case, without making a string.
        let digits = bytes[i..<p.index]
        if digits.count <= 18, digits.allSatisfy({ (0x30...0x39).contains($0) }) {
            return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        return JSONValue.number(String(decoding: digits, as: UTF8.self)).intValue
    }
}
