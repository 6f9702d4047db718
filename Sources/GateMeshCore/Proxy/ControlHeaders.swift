/// The gateway's own request headers. Each has two spellings, `x-gatemesh-<name>` and Cloudflare
/// AI Gateway's `cf-aig-<name>`, so that a client written for either works unchanged; when both
/// come, the `x-gatemesh-` one wins.
public enum ControlHeader {
    /// Both spellings of the control header `name` (lowercased), the winning one first.
    public static func names(_ name: String) -> [String] { ["x-gatemesh-" + name, "cf-aig-" + name] }

    /// The control header `name`'s value, trimmed of spaces, and the spelling it came under (for
    /// an error that names it). `header` returns a header's value by lowercased name.
    public static func value(_ name: String, in header: (String) -> String?) -> (name: String, value: String)? {
        for spelling in names(name) {
            if let v = header(spelling) { return (spelling, String(v.trimmingSpaces())) }
        }
        return nil
    }
}

/// Every control header of one request, read once where the request comes in (`parse`): the
/// proxy's stages read this value, and the endpoints that make requests of their own (the unified
/// API, routes) hand it to each request they make instead of writing headers to be read again.
public struct ControlHeaders: Sendable {
    /// `metadata`: the client's own entries for the log and for rule scopes.
    public var metadata = RequestMetadata()
    /// `collect-log`, `collect-log-payload`: nil leaves it to the gateway.
    public var collectLog: Bool?
    public var collectPayload: Bool?
    /// `custom-cost` as sent; `CustomCost.parse` reads it where the gateway trusts the client.
    public var customCost: String?
    /// `event-id`, stored with the log row and echoed.
    public var eventID: String?
    /// `request-timeout`: milliseconds until the provider's first byte.
    public var requestTimeoutMs: Int?
    /// The gateway's retry policy as `max-attempts`, `retry-delay` and `backoff` change it.
    public var retries: RetryPolicy
    /// `skip-cache`, `cache-ttl`, `cache-key` and `Cache-Control`.
    public var cache = CacheDirectives()
    /// `x-gatemesh-user`: the end user the request is for.
    public var user: String?

    /// No control header: the gateway's own settings.
    public init(retries: RetryPolicy) { self.retries = retries }

    /// The longest `event-id` a request may carry.
    public static let maxEventIDBytes = 256
    /// The longest `request-timeout`: an hour.
    public static let maxRequestTimeoutMs = 3_600_000

    /// Reads them all; `header` returns a header's value by lowercased name, and `present` says
    /// whether the request has any `x-gatemesh-` or `cf-aig-` header at all (most have none, and
    /// then only `Cache-Control` is looked up). A bad value is a 400 that names the header.
    public static func parse(_ header: (String) -> String?, present: Bool, retries: RetryPolicy) throws(GatewayError) -> ControlHeaders {
        var c = ControlHeaders(retries: retries)
        guard present else {
            if header("cache-control") != nil { c.cache = try CacheDirectives.parse(header) }
            return c
        }
        func first(_ name: String) -> (name: String, value: String)? { ControlHeader.value(name, in: header) }
        if let (name, text) = first("metadata") {
            do {
                c.metadata = try RequestMetadata.parse(text)
            } catch {
                var e = error
                e.message = e.message.replacing("x-gatemesh-metadata:", with: "\(name):")
                throw e
            }
        }
        c.collectLog = try flag(first("collect-log"))
        c.collectPayload = try flag(first("collect-log-payload"))
        c.customCost = first("custom-cost")?.value
        if let (name, text) = first("event-id") {
            guard text.utf8.count <= maxEventIDBytes else {
                throw .badRequest("\(name) is \(text.utf8.count) bytes long; at most \(maxEventIDBytes) are allowed", code: "invalid_header")
            }
            c.eventID = text
        }
        if let (name, text) = first("request-timeout") {
            guard let ms = Int(text), ms >= 1, ms <= maxRequestTimeoutMs else {
                throw .badRequest("\(name) must be a whole number of milliseconds from 1 to \(maxRequestTimeoutMs), got '\(text)'",
                                  code: "invalid_request_timeout")
            }
            c.requestTimeoutMs = ms
        }
        c.retries = try retries.applying(headers: header)
        c.cache = try CacheDirectives.parse(header)
        c.user = header("x-gatemesh-user")
        return c
    }

    /// A true/false header; anything else is a 400 naming it.
    static func flag(_ found: (name: String, value: String)?) throws(GatewayError) -> Bool? {
        guard let (name, text) = found else { return nil }
        switch text.lowercased() {
        case "true", "1": return true
        case "false", "0": return false
        default: throw .badRequest("\(name) must be true or false, got '\(text)'", code: "invalid_header")
        }
    }
}

/// The cache settings a request asks for, from its headers (`x-gatemesh-…`, or Cloudflare's
/// `cf-aig-…` names) and `Cache-Control`.
public struct CacheDirectives: Sendable, Equatable {
    /// `skip-cache: true`, or `Cache-Control: no-store`: neither read nor write the cache.
    public var skip = false
    /// `Cache-Control: no-cache`: do not answer from the cache, but store the new answer.
    public var refresh = false
    /// `cache-ttl` in seconds: how long to keep this answer (turns the cache on for the request).
    public var ttlSeconds: Int?
    /// `cache-key`: the client's own key, instead of one computed from the request.
    public var customKey: String?

    public init() {}

    public static let maxTTLSeconds = CacheLimits.maxTTLSeconds
    public static let maxKeyLength = 1024

    /// Reads the directives; `header` returns a header's value by lowercased name. A bad value is
    /// a 400 that names the header and says what is expected.
    public static func parse(_ header: (String) -> String?) throws(GatewayError) -> CacheDirectives {
        var d = CacheDirectives()
        func first(_ name: String) -> (name: String, value: String)? { ControlHeader.value(name, in: header) }
        if let skip = try ControlHeaders.flag(first("skip-cache")) { d.skip = skip }
        if let (name, v) = first("cache-ttl") {
            guard let n = Int(v), (1...maxTTLSeconds).contains(n) else {
                throw GatewayError.badRequest("\(name) must be a whole number of seconds from 1 to \(maxTTLSeconds) (30 days), got '\(v)'",
                                              code: "invalid_header")
            }
            d.ttlSeconds = n
        }
        if let (name, v) = first("cache-key") {
            guard !v.isEmpty, v.utf8.count <= maxKeyLength else {
                throw GatewayError.badRequest("\(name) must be 1 to \(maxKeyLength) bytes long", code: "invalid_header")
            }
            d.customKey = v
        }
        if let cc = header("cache-control") {
            for part in cc.split(separator: ",") {
                switch part.trimmingSpaces().lowercased() {
                case "no-store": d.skip = true
                case "no-cache": d.refresh = true
                default: continue
                }
            }
        }
        return d
    }
}
