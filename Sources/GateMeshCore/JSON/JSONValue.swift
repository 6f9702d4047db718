/// A JSON document as a tree, for the few places that must rebuild a body (translating between
/// provider formats). Objects keep their keys in order; numbers keep the text they were written
/// with. Pure. The proxy's pass-through path never builds one.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number as written (`1`, `0.5`, `1e3`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func int(_ v: Int) -> JSONValue { .number(String(v)) }
    public static func double(_ v: Double) -> JSONValue {
        v == v.rounded() && abs(v) < 1e15 ? .number(String(Int64(v))) : .number(String(v))
    }

    /// Parses a whole document; nil when it is not JSON (or nested deeper than `CanonicalJSON.maxDepth`).
    public static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        var p = CanonicalJSON.Parser(bytes: Array(bytes))
        guard let v = p.tree(depth: 0) else { return nil }
        p.skipWhitespace()
        return p.index == p.bytes.count ? v : nil
    }

    public static func parse(_ text: String) -> JSONValue? { parse(Array(text.utf8)) }

    // MARK: Reading

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public subscript(index: Int) -> JSONValue? {
        if case .array(let a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }
    public var intValue: Int? {
        guard case .number(let n) = self else { return nil }
        if let i = Int(n) { return i }
        if let d = Double(n), d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        return nil
    }
    public var doubleValue: Double? { if case .number(let n) = self { return Double(n) }; return nil }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    // MARK: Writing

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): JSON.appendQuoted(s, to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, v)) in o.pairs.enumerated() {
                if i > 0 { out += "," }
                JSON.appendQuoted(k, to: &out)
                out += ":"
                v.write(to: &out)
            }
            out += "}"
        }
    }

    public var text: String {
        var out = ""
        write(to: &out)
        return out
    }

    public var bytes: [UInt8] { Array(text.utf8) }
}

/// A JSON object: keys in the order they were written or added.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var pairs: [(String, JSONValue)] = []

    public init() {}
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (k, v) in elements { self[k] = v }
    }
    public init(_ pairs: [(String, JSONValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    /// Setting nil removes the key; setting an existing key keeps its place.
    public subscript(key: String) -> JSONValue? {
        get { pairs.last { $0.0 == key }?.1 }
        set {
            if let newValue {
                if let i = pairs.lastIndex(where: { $0.0 == key }) { pairs[i].1 = newValue } else { pairs.append((key, newValue)) }
            } else {
                pairs.removeAll { $0.0 == key }
            }
        }
    }

    public var keys: [String] { pairs.map(\.0) }
    public var isEmpty: Bool { pairs.isEmpty }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

extension CanonicalJSON.Parser {
    mutating func tree(depth: Int) -> JSONValue? {
        guard depth <= CanonicalJSON.maxDepth else { return nil }
        skipWhitespace()
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            var o = JSONObject()
            let ok = forEachMember(depth: depth) { p, key in
                guard let v = p.tree(depth: depth + 1) else { return false }
                o[String(decoding: key, as: UTF8.self)] = v
                return true
            }
            return ok ? .object(o) : nil
        case UInt8(ascii: "["):
            var a: [JSONValue] = []
            let ok = forEachElement(depth: depth) { p in
                guard let v = p.tree(depth: depth + 1) else { return false }
                a.append(v)
                return true
            }
            return ok ? .array(a) : nil
        case UInt8(ascii: "\""):
            guard let s = stringSlice() else { return nil }
            return .string(String(decoding: s, as: UTF8.self))
        case UInt8(ascii: "t"):
            return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"):
            return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"):
            return literal("null") ? .null : nil
        default:
            let start = index
            return skipNumber() ? .number(String(decoding: bytes[start..<index], as: UTF8.self)) : nil
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue {
    /// Only the members named in `keys` of a top-level object, each parsed; the others are
    /// skipped without being built. Nil when the bytes are not one JSON object.
    public static func members(of bytes: [UInt8], keys: Set<String>) -> JSONObject? {
        var p = CanonicalJSON.Parser(bytes: bytes)
        var out = JSONObject()
        let ok = p.forEachMember(depth: 0) { p, key in
            let name = String(decoding: key, as: UTF8.self)
            guard keys.contains(name) else { return p.skipValue(depth: 1) }
            guard let v = p.tree(depth: 1) else { return false }
            out[name] = v
            return true
        }
        return ok && p.trailingOnly ? out : nil
    }
}

extension CanonicalJSON.Parser {
    /// Moves past one value, checking its structure, building nothing.
    mutating func skipValue(depth: Int) -> Bool {
        guard depth <= CanonicalJSON.maxDepth else { return false }
        skipWhitespace()
        guard index < bytes.count else { return false }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return items(closedBy: UInt8(ascii: "}")) { p in
                p.skipWhitespace()
                guard p.index < p.bytes.count, p.bytes[p.index] == UInt8(ascii: "\""), p.skipString(), p.colon() else { return false }
                return p.skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "["):
            return items(closedBy: UInt8(ascii: "]")) { p in p.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            return literal("true") || literal("false") || literal("null")
        default:
            return skipNumber()
        }
    }

    /// Moves past a string (at its opening quote), without keeping what it unescapes; its escapes
    /// are checked as the tree checks them (an invalid one made the view accept what the tree refused).
    mutating func skipString() -> Bool {
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                index += 1
                return true
            case UInt8(ascii: "\\"):
                guard escapedScalar() != nil else { return false }
            case 0..<0x20:
                return false
            default:
                index += 1
            }
        }
        return false
    }
}
