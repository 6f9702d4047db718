extension JSONValue {
    /// One pass over a request body that is a JSON object, building only what the caller asks
    /// for: the top-level members named in `keys` (parsed), and the number of characters
    /// (Unicode scalars, escapes decoded) in string values anywhere in the document, keys not
    /// counted, except in values under a member named in `skipping`. Nil when the bytes are not
    /// one JSON object.
    ///
    /// This is the request's hot path (token estimates for every proxied request): strings are
    /// counted in place, never copied.
    public static func scan(_ bytes: [UInt8], keys: Set<String>, skipping: [[UInt8]]) -> (members: JSONObject, characters: Int)? {
        var p = CanonicalJSON.Parser(bytes: bytes)
        var members = JSONObject()
        var characters = 0
        let ok = p.forEachMember(depth: 0) { p, key in
            let skipped = skipping.contains { $0.elementsEqual(key) }
            p.skipWhitespace()
            let start = p.index
            if skipped {
                guard p.skipValue(depth: 1) else { return false }
            } else {
                guard let n = p.countText(depth: 1, skipping: skipping) else { return false }
                characters += n
            }
            let name = String(decoding: key, as: UTF8.self)
            guard keys.contains(name) else { return true }
            let end = p.index
            p.index = start
            guard let v = p.tree(depth: 1), p.index == end else { return false }
            members[name] = v
            return true
        }
        return ok && p.trailingOnly ? (members, characters) : nil
    }
}

extension CanonicalJSON.Parser {
    /// Moves past one value, returning the characters of the string values in it (see
    /// `JSONValue.scan`), or nil when it is malformed.
    mutating func countText(depth: Int, skipping: [[UInt8]]) -> Int? {
        guard depth <= CanonicalJSON.maxDepth else { return nil }
        skipWhitespace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return countString()
        case UInt8(ascii: "["):
            var total = 0
            let ok = forEachElement(depth: depth) { p in
                guard let n = p.countText(depth: depth + 1, skipping: skipping) else { return false }
                total += n
                return true
            }
            return ok ? total : nil
        case UInt8(ascii: "{"):
            var total = 0
            let ok = forEachMember(depth: depth) { p, key in
                if skipping.contains(where: { $0.elementsEqual(key) }) { return p.skipValue(depth: depth + 1) }
                guard let n = p.countText(depth: depth + 1, skipping: skipping) else { return false }
                total += n
                return true
            }
            return ok ? total : nil
        default:
            return skipValue(depth: depth) ? 0 : nil
        }
    }

    /// Moves past a string, returning its Unicode scalars (an escape counts as one; a surrogate
    /// pair as one), or nil when it is malformed.
    mutating func countString() -> Int? {
        index += 1
        var n = 0
        while index < bytes.count {
            let b = bytes[index]
            switch b {
            case UInt8(ascii: "\""):
                index += 1
                return n
            case UInt8(ascii: "\\"):
                guard escapedScalar() != nil else { return nil }
                n += 1
            default:
                guard b >= 0x20 else { return nil }
                // Count the first byte of each UTF-8 sequence, not its continuation bytes.
                if b & 0xC0 != 0x80 { n += 1 }
                index += 1
            }
        }
        return nil
    }
}
