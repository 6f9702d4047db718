import GateMeshCore

/// One row of the request log: everything the gateway knows about one request once it is over.
public struct RequestRecord: Sendable, Equatable {
    public var logID: String
    public var eventID: String?
    public var node: String
    public var gateway: String
    public var provider: String
    public var requestedModel: String?
    public var servedModel: String?
    /// The price-table entry the request was priced as (`openai/gpt-4o-mini`), nil when unpriced.
    public var pricedAs: String?
    public var method: String
    /// The client's path after the provider prefix (no query), as forwarded.
    public var path: String
    public var status: Int
    /// Unix milliseconds when the request arrived.
    public var startedAtMs: Int64
    public var durationMs: Int
    /// Milliseconds from arrival to the first response byte from the provider.
    public var ttfbMs: Int?
    public var streamed: Bool
    public var usage: TokenUsage
    public var cost: Money?
    /// `HIT`, `MISS`, `BYPASS`, or nil where the cache did not take part.
    public var cacheStatus: String?
    public var attempts: Int
    public var step: Int
    public var metadata: RequestMetadata
    /// The virtual key the request authenticated with, its team and org, and the end user it
    /// named (nil without).
    public var principal: Principal?
    public var error: String?
    public var requestBody: [UInt8]?
    public var responseBody: [UInt8]?
    /// What a cache hit saved: the cost of the answer it replayed (nano-dollars).
    public var savedNanos: Int64 = 0
    /// False when the request opted out of the log (`collect-log: false`): no row is written.
    public var logged = true
    /// The request's place in a distributed trace, when traces are exported (`telemetry.otlp`).
    public var trace: TraceContext?
    /// What the limits decided about the request when a rule changed its course: `refused` or
    /// `downgraded`, and the rule (for its span; the row's `error` says it in words).
    public var ruleDecision: RuleDecision?
    /// Each upstream attempt, when the trace is sampled: a child span each.
    public var attemptSpans: [UpstreamAttempt] = []
    /// The limits reservation this request settles when its row is written (so its spend counts,
    /// locally and for peers, only once it is on disk with the row).
    public var settlement: PendingSettlement?

    public init(
        logID: String, eventID: String? = nil, node: String, gateway: String, provider: String, requestedModel: String? = nil,
        servedModel: String? = nil, pricedAs: String? = nil, method: String, path: String, status: Int, startedAtMs: Int64,
        durationMs: Int, ttfbMs: Int? = nil, streamed: Bool = false, usage: TokenUsage = .zero, cost: Money? = nil,
        cacheStatus: String? = nil, attempts: Int = 1, step: Int = 0, metadata: RequestMetadata = RequestMetadata(),
        error: String? = nil, requestBody: [UInt8]? = nil, responseBody: [UInt8]? = nil
    ) {
        self.logID = logID
        self.eventID = eventID
        self.node = node
        self.gateway = gateway
        self.provider = provider
        self.requestedModel = requestedModel
        self.servedModel = servedModel
        self.pricedAs = pricedAs
        self.method = method
        self.path = path
        self.status = status
        self.startedAtMs = startedAtMs
        self.durationMs = durationMs
        self.ttfbMs = ttfbMs
        self.streamed = streamed
        self.usage = usage
        self.cost = cost
        self.cacheStatus = cacheStatus
        self.attempts = attempts
        self.step = step
        self.metadata = metadata
        self.error = error
        self.requestBody = requestBody
        self.responseBody = responseBody
    }
}

/// A node's own spend on one limit counter (its G-counter slot, absolute): the node, rule, scope
/// value and bucket. Persisted with the request log's batches so a restart never rewinds a slot.
public struct LimitCharge: Sendable, Hashable {
    /// The node's stable id (its counter slot), not its display name.
    public var node: String
    public var rule: String
    public var scope: String
    public var bucket: Int64
    public var amount: Int64

    public init(node: String, rule: String, scope: String, bucket: Int64, amount: Int64) {
        self.node = node
        self.rule = rule
        self.scope = scope
        self.bucket = bucket
        self.amount = amount
    }
}

/// A reservation to turn into spend when the request's row is committed.
public struct PendingSettlement: Sendable, Equatable {
    public var reservation: UInt64
    public var actual: LimitAmounts
    public init(reservation: UInt64, actual: LimitAmounts) {
        self.reservation = reservation
        self.actual = actual
    }
}

/// One attempt at the provider, as a traced request's child span shows it.
public struct UpstreamAttempt: Sendable, Equatable {
    public var startedAtMs: Int64
    public var endedAtMs: Int64
    /// The provider's status; nil when no answer came.
    public var status: Int?
    /// Why it failed or was retried; nil for the attempt whose answer was kept.
    public var error: String?

    public init(startedAtMs: Int64, endedAtMs: Int64, status: Int?, error: String?) {
        self.startedAtMs = startedAtMs
        self.endedAtMs = endedAtMs
        self.status = status
        self.error = error
    }
}

/// A rule that changed a request's course: it was `refused`, or `downgraded` to a cheaper model.
public struct RuleDecision: Sendable, Equatable {
    public var decision: String
    public var rule: String

    public init(_ decision: String, rule: String) {
        self.decision = decision
        self.rule = rule
    }
}
