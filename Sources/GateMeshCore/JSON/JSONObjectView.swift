/// One JSON object read in place: a member is found by walking the object's bytes, and nothing
/// is built but what is asked for (a number as an `Int`, a string). For the few members read
/// from every answer (its `model` and `usage`), where a tree would cost an allocation per key,
/// number and nested object. Pure.
public struct JSONObjectView: Sendable {
    private let bytes: [UInt8]
    /// Where the object's `{` is.
    private let start: Int

    /// Nil unless `bytes` is exactly one well-formed JSON object (whitespace around it allowed).
    public init?(_ bytes: [UInt8]) {
        var p = CanonicalJSON.Parser(bytes: bytes)
        p.skipWhitespace()
        let start = p.index
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{"), p.skipValue(depth: 0), p.trailingOnly else { return nil }
        self.bytes = bytes
        self.start = start
    }

    private init(bytes: [UInt8], start: Int) {
        self.bytes = bytes
        self.start = start
    }

    /// Where the value of the last member named `key` starts (as a parsed object's lookup would
    /// find it when a key is repeated).
    private func valueIndex(_ key: String) -> Int? {
        var p = CanonicalJSON.Parser(bytes: bytes, index: start)
        var found: Int?
        var key = key
        return key.withUTF8 { name in
            // The object was checked whole when the view was made.
            _ = p.forEachMember(depth: 0) { p, member in
                p.skipWhitespace()
                if member.elementsEqual(name) { found = p.index }
                return p.skipValue(depth: 1)
            }
            return found
        }
    }

    public func contains(_ key: String) -> Bool { valueIndex(key) != nil }

    /// The member's value when it is an object.
    public func object(_ key: String) -> JSONObjectView? {
        guard let i = valueIndex(key), bytes[i] == UInt8(ascii: "{") else { return nil }
        return JSONObjectView(bytes: bytes, start: i)
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
