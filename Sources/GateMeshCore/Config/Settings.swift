/// The node's whole configuration, after `${ENV}` expansion and validation.
///
/// `Settings()` is the embedded default: one node on 127.0.0.1:8787 with its data in
/// ./gatemesh-data, the `default` gateway open, every built-in provider at its public URL.
public struct Settings: Sendable, Equatable {
    public var node = NodeConfig()
    public var admin = AdminConfig()
    public var limits = LimitsConfig()
    public var upstream = UpstreamConfig()
    public var providers: [String: ProviderConfig] = [:]
    public var gateways: [GatewayConfig] = [GatewayConfig(id: GatewayConfig.defaultID)]
    public var logging = LoggingConfig()
    public var reservations = ReservationConfig()
    public var alerts = AlertsConfig()
    public var cache = CacheStoreConfig()
    public var storage = StorageConfig()
    /// Where request spans go (`telemetry.otlp`); nil for nowhere.
    public var otlp: OTLPConfig?
    /// Peers (`cluster`); nil runs a single node.
    public var cluster: ClusterConfig?

    public init() {}

    /// The gateway with this id.
    public func gateway(_ id: some StringProtocol) -> GatewayConfig? {
        gateways.first { $0.id == id }
    }

    /// What a node listening beyond loopback leaves open (`check-config` and `serve` print these):
    /// gateways anyone who reaches the port may spend through, and no admin token to see it with.
    public var exposureWarnings: [String] {
        guard !node.listen.isLoopback else { return [] }
        var out: [String] = []
        let open = gateways.filter { $0.authTokens.isEmpty }.map(\.id)
        if !open.isEmpty {
            out.append("node.listen \(node.listen) is not a loopback address, and gateway(s) \(open.joined(separator: ", ")) take requests without a token: anyone who can reach the port can spend through them (set auth_tokens)")
        }
        if admin.token == nil {
            out.append("node.listen \(node.listen) is not a loopback address, and there is no admin.token: the operator API (status, budgets, logs) is disabled")
        }
        return out
    }
}

public struct NodeConfig: Sendable, Equatable {
    public var name = "node-1"
    public var region = "local"
    public var listen = ListenAddress(host: "127.0.0.1", port: 8787)
    public var dataDir = "./gatemesh-data"
    /// How long SIGTERM waits for in-flight requests before it cancels them.
    public var drainTimeoutMs = 30_000
    public init() {}
}

public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Whether only this machine can reach the address (127.0.0.0/8, ::1, localhost).
    public var isLoopback: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Returns nil when malformed.
    public static func parse(_ text: String) -> ListenAddress? {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            guard after.hasPrefix(":") else { return nil }
            portText = after.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return ListenAddress(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct AdminConfig: Sendable, Equatable {
    /// The bearer token for every operator endpoint but `/healthz`. Nil disables them (401).
    public var token: String?
    public init(token: String? = nil) { self.token = token }
}

public struct LimitsConfig: Sendable, Equatable {
    /// The largest request body accepted, in bytes; larger ones get 413.
    public var maxBodyBytes = 32 * 1024 * 1024
    /// The largest request header block accepted, in bytes.
    public var maxHeaderBytes = 64 * 1024
    /// The most header fields in one request.
    public var maxHeaderCount = 200
    /// The most client connections open at once (nil: from the open-file limit, see
    /// `connectionCap(openFiles:)`). At the cap the node stops accepting until one closes.
    public var maxConnections: Int?
    public init() {}

    /// The client connections the node takes at once: `maxConnections` if set, else 10,000, but
    /// never more than half of what the open-file limit leaves after 256 for everything else
    /// (each proxied request also holds an upstream connection), and at least 16. Running out of
    /// descriptors makes the accept loop spin, so the node stops accepting before that.
    public func connectionCap(openFiles: Int) -> Int {
        if let maxConnections { return maxConnections }
        return max(16, min(10_000, (openFiles - 256) / 2))
    }
}

public struct UpstreamConfig: Sendable, Equatable {
    /// Time allowed to open the TCP and TLS connection to a provider.
    public var connectTimeoutMs = 10_000
    /// Time allowed from sending the request to the first byte of the response head.
    public var firstByteTimeoutMs = 300_000
    /// Time allowed for the whole exchange, streamed body included. 0 means no limit.
    public var totalTimeoutMs = 1_800_000
    /// Offer HTTP/2 to TLS upstreams (falls back to HTTP/1.1 where not offered).
    public var http2 = true
    /// A PEM bundle to verify upstream TLS against instead of the system CA store.
    public var caFile: String?
    /// Bytes of response body buffered per transfer before the transfer is paused.
    public var responseBufferBytes = 256 * 1024
    public init() {}
}

public struct ProviderConfig: Sendable, Equatable {
    public var baseURL: String?
    public var apiKey: String?
    /// Prices that override or extend the shipped table for this provider, by model id.
    public var models: [String: PriceOverride] = [:]
    public init(baseURL: String? = nil, apiKey: String? = nil, models: [String: PriceOverride] = [:]) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.models = models
    }
}

/// A model's prices from the config, as decimal dollars per million tokens (validated on load).
public struct PriceOverride: Sendable, Equatable {
    public var input: String
    public var output: String
    public var cacheRead: String?
    public var cacheWrite: String?
    public init(input: String, output: String, cacheRead: String? = nil, cacheWrite: String? = nil) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
    }
}

public struct GatewayConfig: Sendable, Equatable {
    public static let defaultID = "default"
    public var id: String
    /// Tokens accepted in `x-gatemesh-authorization: Bearer …`; empty means the gateway is open.
    public var authTokens: [String]
    /// Write a request-log row for each request (a request may turn it off with `collect-log: false`).
    public var collectLog = true
    /// Store request and response bodies in the log (a request may turn it on or off with `collect-log-payload`).
    public var collectLogPayload = false
    /// Accept the `custom-cost` header, which prices a request as the client says. Off by
    /// default: a client could price its requests at nothing and spend past every budget.
    public var allowCustomCost = false
    /// Whether requests present virtual keys (`virtual_keys`).
    public var virtualKeys = VirtualKeysMode.optional
    /// The gateway's budgets and rate limits (`budgets` and `rate_limits` in the config).
    public var limits: [LimitRule] = []
    /// The response cache's default time to live in seconds; nil when the cache is off for the
    /// gateway (a request may still turn it on with `cache-ttl`).
    public var cacheTTLSeconds: Int?
    /// Retries of failed upstream attempts (`retries`); one attempt unless configured.
    public var retries = RetryPolicy()
    /// Named routes (`routes`): a request whose model is a route's name goes to its targets.
    public var routes: [String: ModelRoute] = [:]
    /// The unified API drops parameters a target provider cannot honour instead of refusing them.
    public var dropUnsupportedParams = false
    /// `max_tokens` the unified API sends to providers that require one when the request has none.
    public var defaultMaxTokens = 4096
    public init(id: String, authTokens: [String] = [], collectLog: Bool = true, collectLogPayload: Bool = false) {
        self.id = id
        self.authTokens = authTokens
        self.collectLog = collectLog
        self.collectLogPayload = collectLogPayload
    }
}

/// The peer transport and membership (`cluster`).
public struct ClusterConfig: Sendable, Equatable {
    /// Where this node accepts peer connections (TLS).
    public var listen: ListenAddress
    /// The address peers reach this node at; defaults to `listen` (set it when listening on 0.0.0.0).
    public var advertise: ListenAddress?
    /// Peer addresses (`host:port`), the same list on every node (this node's own may be in it).
    public var seeds: [String]
    public var caFile: String
    public var certFile: String
    public var keyFile: String
    /// The largest peer frame accepted.
    public var maxFrameBytes = 4 << 20
    /// An authenticated connection from a peer on which nothing arrives for this long is closed
    /// (the peer dials again when it next has something to send).
    public var idleTimeoutMs = 120_000
    /// Failure-detection timings: `lan` (one network) or `wan` (across regions), memberlist's
    /// profiles; the three overrides below replace the profile's figure when set.
    public var profile: Profile = .lan
    public var probeIntervalMs: Int64?
    public var probeTimeoutMs: Int64?
    public var suspicionMinMs: Int64?

    public enum Profile: String, Sendable, Equatable, CaseIterable {
        case lan, wan

        /// The profile's probe interval, direct-ack wait and suspicion floor (`Membership.Config`
        /// takes them from here, and the loader checks overrides against them).
        public var probeIntervalMs: Int64 { self == .wan ? 5_000 : 1_000 }
        public var probeTimeoutMs: Int64 { self == .wan ? 3_000 : 500 }
        public var suspicionMinMs: Int64 { self == .wan ? 15_000 : 5_000 }
    }

    public init(listen: ListenAddress, seeds: [String], caFile: String, certFile: String, keyFile: String) {
        self.listen = listen
        self.seeds = seeds
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }

    public var advertised: ListenAddress { advertise ?? listen }
}

/// Bounds of the response cache that the config and the request headers share.
public enum CacheLimits {
    /// The longest time to live: 30 days.
    public static let maxTTLSeconds = 30 * 86_400
}

/// The node's response cache store (`cache` at the top of the config): its bounds.
public struct CacheStoreConfig: Sendable, Equatable {
    /// The in-memory LRU's bound in bytes.
    public var memoryBytes = 256 << 20
    /// The SQLite copy's bound in bytes (oldest entries go first beyond it).
    public var diskBytes = 2 << 30
    /// The largest answer that is cached.
    public var maxEntryBytes = 8 << 20
    /// How often expired entries are purged.
    public var purgeIntervalMs = 60_000
    public init() {}
}

/// `telemetry.otlp`: an OpenTelemetry collector that receives a span per request over OTLP/HTTP.
public struct OTLPConfig: Sendable, Equatable {
    /// The traces URL (`…/v1/traces`).
    public var endpoint: String
    public var headers: [String: String] = [:]
    /// The share of traces that start here that are recorded (a client's `traceparent` decides
    /// for its own).
    public var sampleRatio = 1.0
    /// Spans waiting to be sent; past this they are dropped and counted.
    public var queueSize = 2048

    public init(endpoint: String) { self.endpoint = endpoint }
}

/// The node's database file (`storage`).
public struct StorageConfig: Sendable, Equatable {
    /// The most bytes the database file and its WAL may take on disk; 0 for no cap. Before the
    /// file would pass it the oldest log rows are deleted and their pages reused for new rows; a
    /// file already past it is shrunk.
    public var maxBytes = 0
    public init() {}
}

/// Where budget alerts go.
public struct AlertsConfig: Sendable, Equatable {
    /// The webhook URL called with a JSON body when a rule crosses an alert threshold.
    public var webhook: String?
    /// When set, each call carries `x-gatemesh-signature: sha256=<hex HMAC-SHA256 of the body>`.
    public var secret: String?
    public init() {}
}

/// How requests reserve against budgets before they are forwarded.
public struct ReservationConfig: Sendable, Equatable {
    /// Output tokens assumed for a request that sets no `max_tokens` (or the like).
    public var defaultOutputTokens = 4096
    /// A reservation neither settled nor released by then expires (milliseconds).
    public var timeoutMs = 3_600_000
    /// How long a request waits for rights from a counter's owner (a `bounded` or `strict`
    /// rule, near its limit) before it is refused (milliseconds).
    public var rightsWaitMs = 2_000
    public init() {}
}

/// The request log kept in the node's SQLite store.
public struct LoggingConfig: Sendable, Equatable {
    /// Rows older than this are deleted (milliseconds); 0 keeps them.
    public var retentionMs: Int = 30 * 86_400_000
    /// At most this many rows are kept; 0 for no limit.
    public var maxRows = 1_000_000
    /// Rows waiting to be written; past this, rows are dropped and counted, never waited for.
    public var queueSize = 10_000
    /// Bytes of each request and response body stored when payloads are collected.
    public var maxPayloadBytes = 64 * 1024
    /// What is rewritten in payloads before they are stored (`logging.redact`).
    public var redact: [RedactRule] = [RedactRule(name: "api_keys")]
    /// Where the log is sent as it is written (`logging.export`); nil for nowhere.
    public var export: LogExportConfig?
    public init() {}
}

/// `logging.export`: an HTTP sink that receives the request log as gzip-compressed NDJSON.
public struct LogExportConfig: Sendable, Equatable {
    public var url: String
    /// Sent with every batch (an `authorization` header, say).
    public var headers: [String: String] = [:]
    /// Rows per batch.
    public var batchRows = 1000
    /// How often the log is looked at for new rows when the last batch was not full (ms).
    public var intervalMs = 5000

    public init(url: String) { self.url = url }
}

/// One rule of `logging.redact`: a built-in one by name, or a regular expression (`pattern`) and
/// what its matches become.
public struct RedactRule: Sendable, Equatable {
    public var name: String
    public var pattern: String?
    public var replace: String?

    public init(name: String, pattern: String? = nil, replace: String? = nil) {
        self.name = name
        self.pattern = pattern
        self.replace = replace
    }
}
