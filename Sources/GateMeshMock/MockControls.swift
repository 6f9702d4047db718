import HTTPTypes
import Hummingbird

/// Per-request behaviour of the mock provider, read from `x-mock-…` request headers.
///
/// | header | effect |
/// |---|---|
/// | `x-mock-latency-ms` | wait this long before the response head |
/// | `x-mock-token-delay-ms` | wait this long before each streamed event after the first |
/// | `x-mock-output-tokens` | produce exactly this many output tokens (default 16, capped by the request's max tokens) |
/// | `x-mock-status` | answer with this error status and the provider's error body |
/// | `x-mock-fail-after` | answer the first N requests with this key normally, later ones with `x-mock-status` (default 500) |
/// | `x-mock-fail-first` | answer the first N requests with this key with `x-mock-status` (default 503), later ones normally |
/// | `x-mock-fail-key` | the counter `x-mock-fail-after` and `x-mock-fail-first` use (default `default`) |
/// | `x-mock-retry-after` | with an error status, send `Retry-After` with this many seconds |
/// | `x-mock-hang` | `true`: never answer; the mock gives up when the client closes the connection |
/// | `x-mock-drop-after` | in a streamed response, close the connection abruptly after N events |
/// | `x-mock-tool-calls` | when the request declares tools, answer with this many tool calls (1–8, default 1; 0: answer with text) |
/// | `x-mock-tool-text` | `true`: an Anthropic tool-call answer starts with a short text block |
public struct MockControls: Sendable, Equatable {
    public var latencyMs = 0
    public var tokenDelayMs = 0
    public var outputTokens: Int?
    public var status: Int?
    public var failAfter: Int?
    public var failFirst: Int?
    public var retryAfter: Int?
    public var failKey = "default"
    public var hang = false
    public var dropAfter: Int?
    public var toolCalls = 1
    public var toolText = false

    public init() {}

    /// The largest output a request may ask for, so a typo cannot make the mock stream forever.
    public static let maxOutputTokens = 10_000_000

    /// The most tool calls one answer may carry.
    public static let maxToolCalls = 8

    init(headers: HTTPFields) throws(MockError) {
        func int(_ name: String, _ range: ClosedRange<Int>) throws(MockError) -> Int? {
            guard let value = headers[HTTPField.Name(name)!] else { return nil }
            guard let n = Int(value), range.contains(n) else {
                throw MockError(status: 400, message: "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        latencyMs = try int("x-mock-latency-ms", 0...600_000) ?? 0
        tokenDelayMs = try int("x-mock-token-delay-ms", 0...60_000) ?? 0
        outputTokens = try int("x-mock-output-tokens", 0...Self.maxOutputTokens)
        status = try int("x-mock-status", 100...599)
        failAfter = try int("x-mock-fail-after", 0...Int(Int32.max))
        failFirst = try int("x-mock-fail-first", 0...Int(Int32.max))
        retryAfter = try int("x-mock-retry-after", 0...86_400)
        dropAfter = try int("x-mock-drop-after", 0...Self.maxOutputTokens)
        toolCalls = try int("x-mock-tool-calls", 0...Self.maxToolCalls) ?? 1
        if let key = headers[HTTPField.Name("x-mock-fail-key")!] { failKey = key }
        if let hang = headers[HTTPField.Name("x-mock-hang")!] { self.hang = hang == "true" || hang == "1" }
        if let text = headers[HTTPField.Name("x-mock-tool-text")!] { toolText = text == "true" || text == "1" }
    }
}

/// A request the mock refuses, answered in the format of the provider it imitates.
struct MockError: Error {
    var status: Int
    var message: String
}
