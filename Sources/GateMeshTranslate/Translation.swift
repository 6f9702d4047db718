import GateMeshAccounting
import GateMeshCore

/// Why a request cannot be translated for a provider: a 400 that names the parameter and the
/// provider (or the field that is malformed).
public struct TranslationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var param: String?
    public var code: String

    public init(_ message: String, param: String? = nil, code: String = "invalid_request") {
        self.message = message
        self.param = param
        self.code = code
    }

    public static func unsupported(_ param: String, provider: String, detail: String = "") -> TranslationError {
        TranslationError("'\(param)' is not supported by \(provider)\(detail.isEmpty ? "" : ": " + detail); remove it, or set "
                         + "drop_unsupported_params: true on the gateway to drop such parameters",
                         param: param, code: "unsupported_parameter")
    }

    /// Something in the request that has no counterpart at the target and cannot be left out
    /// without changing what was asked (a content type, a tool type): refused even when
    /// unsupported parameters are dropped.
    public static func cannotTranslate(_ what: String, provider: String, detail: String = "") -> TranslationError {
        TranslationError("'\(what)' cannot be sent to \(provider)\(detail.isEmpty ? "" : ": " + detail)", param: what, code: "unsupported_parameter")
    }

    public var description: String { message }
}

/// Options that shape a translated request.
public struct TranslationOptions: Sendable, Equatable {
    /// Drop parameters the target cannot honour instead of refusing the request.
    public var dropUnsupported = false
    /// `max_tokens` for targets that require it when the request sets none.
    public var defaultMaxTokens = 4096

    public init(dropUnsupported: Bool = false, defaultMaxTokens: Int = 4096) {
        self.dropUnsupported = dropUnsupported
        self.defaultMaxTokens = defaultMaxTokens
    }
}

/// Turns a provider's response body, as it arrives, into the client's format. `feed` is given
/// the body in any split; `finish` is called once at its end. Pure.
public protocol ResponseTranslator: Sendable {
    mutating func feed(_ bytes: [UInt8]) -> [UInt8]
    mutating func finish() -> [UInt8]
}

/// Buffers a whole JSON body and converts it at the end (non-streamed answers and errors).
public struct WholeBodyTranslator: ResponseTranslator {
    var buffer: [UInt8] = []
    let convert: @Sendable ([UInt8]) -> [UInt8]
    /// The largest body buffered; past it, the body passes through unchanged.
    public static let maxBytes = 64 << 20

    public init(_ convert: @escaping @Sendable ([UInt8]) -> [UInt8]) { self.convert = convert }

    var passing = false

    public mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
        if passing { return bytes }
        if buffer.count + bytes.count > Self.maxBytes {
            // Too large to translate: the client gets the provider's body as it is.
            passing = true
            defer { buffer = [] }
            return buffer + bytes
        }
        buffer += bytes
        return []
    }

    public mutating func finish() -> [UInt8] { passing ? [] : convert(buffer) }
}

enum Util {
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

    /// `data:MEDIA;base64,DATA` split into its media type and data.
    static func dataURL(_ url: String) -> (mediaType: String, data: String)? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
        let meta = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        guard meta.hasSuffix(";base64") else { return nil }
        return (String(meta.dropLast(7)), String(url[url.index(after: comma)...]))
    }

    /// Adds a turn of `role` holding `items` under `key` (`content` blocks, `parts`), merged into
    /// the last turn when that has the same role: Anthropic and Google both want roles to alternate.
    static func appendTurn(_ turns: inout [JSONObject], role: String, key: String, _ items: [JSONValue]) {
        guard !items.isEmpty else { return }
        if var last = turns.last, last["role"]?.stringValue == role, case .array(let prior)? = last[key] {
            last[key] = .array(prior + items)
            turns[turns.count - 1] = last
        } else {
            turns.append(["role": .string(role), key: .array(items)])
        }
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

    /// Feeds `bytes` to `scanner` and translates each event it completes, in order.
    static func translate(_ bytes: [UInt8], _ scanner: inout SSEScanner, _ each: (SSEScanner.Event) -> [UInt8]) -> [UInt8] {
        var events: [SSEScanner.Event] = []
        scanner.feed(bytes) { events.append($0) }
        var out: [UInt8] = []
        for e in events { out += each(e) }
        return out
    }

    static func sse(_ data: String, event: String? = nil) -> [UInt8] {
        var s = ""
        if let event { s += "event: \(event)\n" }
        s += "data: \(data)\n\n"
        return Array(s.utf8)
    }

    /// An id for a generated object (`chatcmpl-…`, `msg_…`, `call_…`), unique enough for clients.
    static func id(_ prefix: String) -> String {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return prefix + String((0..<24).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
    }
}
