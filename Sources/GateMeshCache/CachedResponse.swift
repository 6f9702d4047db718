import GateMeshCore

/// One cached answer: what the client was sent (status, the headers worth replaying, the body as
/// the chunks it arrived in) and what it cost, so a hit can be replayed byte for byte (a stream as
/// a stream) and logged with the cost it saved.
public struct CachedResponse: Sendable, Equatable {
    public var gateway: String
    public var provider: String
    public var status: Int
    public var headers: [HeaderField]
    public var body: [UInt8]
    /// End offsets of the chunks the body arrived in; a replay writes the same chunks.
    public var chunkEnds: [Int]
    public var streamed: Bool
    public var createdAtMs: Int64
    public var expiresAtMs: Int64
    /// What the original answer cost (nil when it could not be priced): what each hit saves.
    public var costNanos: Int64?
    public var servedModel: String?

    public init(gateway: String, provider: String, status: Int, headers: [HeaderField], body: [UInt8], chunkEnds: [Int], streamed: Bool,
                createdAtMs: Int64, expiresAtMs: Int64, costNanos: Int64?, servedModel: String?) {
        self.gateway = gateway
        self.provider = provider
        self.status = status
        self.headers = headers
        self.body = body
        self.chunkEnds = chunkEnds
        self.streamed = streamed
        self.createdAtMs = createdAtMs
        self.expiresAtMs = expiresAtMs
        self.costNanos = costNanos
        self.servedModel = servedModel
    }

    /// The bytes an entry holds in memory, roughly: what the LRU's bound counts.
    public var size: Int {
        body.count + chunkEnds.count * 8 + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 } + 256
    }

    /// The body's chunks, as they arrived.
    public var chunks: [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = 0
        for end in chunkEnds where end > start && end <= body.count {
            out.append(body[start..<end])
            start = end
        }
        if start < body.count { out.append(body[start...]) }
        return out
    }

    /// Response headers that describe the answer rather than one delivery of it: a hit replays
    /// these. Dropped: framing and connection headers, dates, request ids, rate-limit figures,
    /// cookies, timing, and the gateway's own headers (a hit gets fresh ones).
    public static func storable(_ headers: [(name: String, value: String)]) -> [HeaderField] {
        headers.compactMap { h in
            let n = h.name.lowercased()
            if dropped.contains(n) || droppedPrefixes.contains(where: { n.hasPrefix($0) }) { return nil }
            return HeaderField(n, h.value)
        }
    }

    static let dropped: Set<String> = [
        "date", "content-length", "transfer-encoding", "connection", "keep-alive", "set-cookie", "age", "expires",
        "x-request-id", "request-id", "openai-processing-ms", "retry-after", "cf-ray", "server", "via", "alt-svc",
        "content-encoding", "strict-transport-security", "server-timing",
    ]
    static let droppedPrefixes = ["x-ratelimit-", "anthropic-ratelimit-", "x-gatemesh-", "cf-aig-", "x-envoy-", "x-mock-"]
}
