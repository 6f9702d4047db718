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
