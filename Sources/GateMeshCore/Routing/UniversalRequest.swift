/// The universal endpoint's body, `POST /{gateway}`: a JSON array of steps in Cloudflare AI
/// Gateway's shape, tried in order until one succeeds.
///
/// ```json
/// [{"provider": "anthropic", "endpoint": "v1/messages",
///   "headers": {"x-api-key": "…", "anthropic-version": "2023-06-01"},
///   "query": {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": […]},
///   "config": {"requestTimeout": 5000, "maxAttempts": 2, "retryDelay": 500, "backoff": "exponential"}},
///  {"provider": "openai", "endpoint": "chat/completions", "headers": {"authorization": "Bearer …"},
///   "query": {"model": "gpt-4o-mini", "messages": […]}}]
/// ```
///
/// `query` is the body the provider gets, passed on byte for byte (never re-encoded). `authorization`
/// (a string) is accepted as the older shape of `headers.authorization`. `config` sets the step's
/// request timeout (ms, to the first byte) and retries; each becomes the matching request header.
public struct UniversalStep: Sendable, Equatable {
    public var provider: String
    public var endpoint: String
    /// The step's own headers (names lowercased), the `config` ones included.
    public var headers: [HeaderField]
    /// The request body: `query`'s bytes as sent.
    public var body: [UInt8]

    public init(provider: String, endpoint: String, headers: [HeaderField], body: [UInt8]) {
        self.provider = provider
        self.endpoint = endpoint
        self.headers = headers
        self.body = body
    }
}

public enum UniversalRequest {
    public static let maxSteps = 16

    /// Reads the steps; anything malformed is a 400 that says which step and what is wrong.
    public static func parse(_ bytes: [UInt8]) throws(GatewayError) -> [UniversalStep] {
        guard let elements = JSONSpans.array(bytes[...]) else {
            throw bad("the body must be a JSON array of steps, each {\"provider\", \"endpoint\", \"headers\", \"query\"}")
        }
        guard !elements.isEmpty else { throw bad("the array of steps is empty") }
        guard elements.count <= maxSteps else { throw bad("at most \(maxSteps) steps, got \(elements.count)") }
        var steps: [UniversalStep] = []
        for (i, element) in elements.enumerated() {
            guard let members = JSONSpans.object(element) else { throw bad("step \(i) must be a JSON object") }
            var provider: String?
            var endpoint: String?
            var headers: [HeaderField] = []
            var body: [UInt8]?
            var configHeaders: [HeaderField] = []
            for (key, value) in members {
                switch key {
                case "provider":
                    guard let s = JSONSpans.string(value), !s.isEmpty else { throw bad("step \(i): provider must be a non-empty string") }
                    provider = s.lowercased()
                case "endpoint":
                    guard let s = JSONSpans.string(value), !s.isEmpty else { throw bad("step \(i): endpoint must be a non-empty string") }
                    endpoint = s
                case "headers":
                    guard let hs = JSONSpans.object(value) else { throw bad("step \(i): headers must be an object of strings") }
                    for (name, v) in hs {
                        guard let text = JSONSpans.string(v) ?? JSONSpans.number(v), Self.isHeaderName(name), Self.isHeaderValue(text) else {
                            throw bad("step \(i): headers.\(name) must be a header name with a string value")
                        }
                        headers.append(.init(name.lowercased(), text))
                    }
                case "authorization":
                    guard let s = JSONSpans.string(value), Self.isHeaderValue(s) else { throw bad("step \(i): authorization must be a string") }
                    headers.append(.init("authorization", s))
                case "query":
                    body = Array(value)
                case "config":
                    configHeaders = try config(value, step: i)
                default:
                    throw bad("step \(i): unknown key '\(key)'; a step has provider, endpoint, headers, query and config")
                }
            }
            guard let provider else { throw bad("step \(i): provider is required") }
            guard let endpoint else { throw bad("step \(i): endpoint is required") }
            steps.append(UniversalStep(provider: provider, endpoint: endpoint, headers: headers + configHeaders, body: body ?? []))
        }
        return steps
    }

    static func config(_ value: ArraySlice<UInt8>, step i: Int) throws(GatewayError) -> [HeaderField] {
        guard let members = JSONSpans.object(value) else { throw bad("step \(i): config must be an object") }
        var out: [HeaderField] = []
        for (key, v) in members {
            let header: String
            switch key {
            case "requestTimeout": header = "x-gatemesh-request-timeout"
            case "maxAttempts": header = "x-gatemesh-max-attempts"
            case "retryDelay": header = "x-gatemesh-retry-delay"
            case "backoff": header = "x-gatemesh-backoff"
            default: throw bad("step \(i): unknown config key '\(key)'; expected requestTimeout, maxAttempts, retryDelay or backoff")
            }
            guard let text = JSONSpans.number(v) ?? JSONSpans.string(v) else { throw bad("step \(i): config.\(key) must be a number or a string") }
            out.append(.init(header, text))
        }
        return out
    }

    static func bad(_ message: String) -> GatewayError {
        GatewayError.badRequest("universal endpoint: \(message)", code: "invalid_universal_request")
    }

    static func isHeaderName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    static func isHeaderValue(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}
