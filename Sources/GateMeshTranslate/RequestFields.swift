import GateMeshCore

/// Reading a client's request for translation: a field of the wrong type is a `TranslationError`
/// that names it (a 400 to the client), an absent or null one is nil.
enum RequestFields {
    /// A value that asks for nothing: absent, null, false, zero, or empty.
    static func isNoOp(_ v: JSONValue?) -> Bool {
        switch v {
        case nil, .null?, .bool(false)?: return true
        case .number(let n)?: return Double(n) == 0
        case .object(let o)?: return o.isEmpty
        case .array(let a)?: return a.isEmpty
        default: return false
        }
    }

    static func object(_ v: JSONValue?, _ field: String) throws(TranslationError) -> JSONObject? {
        guard let v, !v.isNull else { return nil }
        guard case .object(let o) = v else { throw TranslationError("'\(field)' must be an object, not \(v.typeName)", param: field) }
        return o
    }

    static func array(_ v: JSONValue?, _ field: String) throws(TranslationError) -> [JSONValue]? {
        guard let v, !v.isNull else { return nil }
        guard case .array(let a) = v else { throw TranslationError("'\(field)' must be an array, not \(v.typeName)", param: field) }
        return a
    }

    static func string(_ v: JSONValue?, _ field: String) throws(TranslationError) -> String? {
        guard let v, !v.isNull else { return nil }
        guard case .string(let s) = v else { throw TranslationError("'\(field)' must be a string, not \(v.typeName)", param: field) }
        return s
    }

    /// The client's `messages`: a non-empty array of objects, each with its field path for errors.
    static func messages(_ req: JSONObject) throws(TranslationError) -> [(field: String, message: JSONObject)] {
        guard let list = try array(req["messages"], "messages"), !list.isEmpty else {
            throw TranslationError("'messages' must be a non-empty array", param: "messages")
        }
        var out: [(field: String, message: JSONObject)] = []
        for (i, m) in list.enumerated() {
            let field = "messages[\(i)]"
            guard let msg = try object(m, field) else { throw TranslationError("'\(field)' must be an object", param: field) }
            out.append((field, msg))
        }
        return out
    }
}
