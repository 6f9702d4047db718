import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import NIOConcurrencyHelpers
import NIOCore

/// The accounting side of one proxied request: it watches the response go by, prices it, and
/// writes its log row exactly once, whether the response completes, breaks, or is abandoned.
///
/// Contract: `observe` is called by one task at a time, in byte order; `finish` may be called
/// from anywhere, more than once, and only the first call counts. If nobody calls it, releasing
/// the exchange finishes it as incomplete, so no request ever goes unlogged or uncharged.
final class ProxyExchange: @unchecked Sendable {
    struct Context: Sendable {
        var log: RequestLog?
        /// Whether the request's row is written (`collect-log`); its limit charges always are.
        var writesRow: Bool
        var prices: PriceTable
        var maxPayloadBytes: Int
        var collectPayload: Bool
        var metrics: NodeMetrics?
        /// Prices from the request's `custom-cost` header, which win over the table.
        var customPrice: ModelPrice?
        /// Where the request's span goes (`telemetry.otlp`).
        var traces: TraceExporter?
        var onFinish: @Sendable () -> Void
    }

    private let lock = NIOLock()
    private var record: RequestRecord
    private var accountant: ResponseAccountant?
    private var responseBody: [UInt8]?
    private var finished = false
    private var reservation: (id: UInt64, limits: LimitsService)?
    private let context: Context
    private let started: ContinuousClock.Instant

    /// Who the request is from: its virtual key, team and org, and the end user it names.
    var principal: Principal? { lock.withLock { record.principal } }

    /// The end user the body names, when no `x-gatemesh-user` header named one.
    func nameUser(_ user: String?) {
        guard let user else { return }
        lock.withLock {
            guard record.principal?.user == nil else { return }
            var p = record.principal ?? Principal()
            p.user = user
            record.principal = p
        }
    }

    init(record: RequestRecord, principal: Principal? = nil, context: Context, started: ContinuousClock.Instant) {
        var record = record
        record.principal = principal
        self.record = record
        self.context = context
        self.started = started
        if context.collectPayload { responseBody = [] }
    }

    var logID: String { record.logID }

    func setRequestBody(_ bytes: [UInt8]) { lock.withLock { record.requestBody = bytes } }

    func setRequestedModel(_ model: String?) { lock.withLock { record.requestedModel = model } }

    /// The budget reservation this request holds; settled or released when the exchange ends.
    func hold(_ id: UInt64, in limits: LimitsService) { lock.withLock { reservation = (id, limits) } }

    /// The response head arrived: the accountant starts watching its body.
    func responseStarted(status: Int, contentType: String?, format: APIFormat, facts: RequestFacts, stripsInjectedUsage: Bool) {
        lock.withLock {
            record.status = status
            record.ttfbMs = Int((ContinuousClock.now - started).milliseconds)
            record.streamed = contentType?.lowercased().hasPrefix("text/event-stream") ?? false
            accountant = ResponseAccountant(format: format, contentType: contentType, request: facts, stripsInjectedUsage: stripsInjectedUsage)
        }
    }

    /// Looks at a chunk on its way to the client; returns the bytes to send instead, if any.
    func observe(_ chunk: ByteBuffer) -> ByteBuffer? {
        lock.withLock {
            guard accountant != nil else { return nil }
            let replaced = chunk.withUnsafeReadableBytes { accountant!.process($0) }
            let cap = context.maxPayloadBytes
            if var body = responseBody, body.count < cap {
                responseBody = nil  // appended in place below without a copy
                if let replaced { body.append(contentsOf: replaced.prefix(cap - body.count)) } else {
                    body.append(contentsOf: chunk.readableBytesView.prefix(cap - body.count))
                }
                responseBody = body
            }
            return replaced.map { ByteBuffer(bytes: $0) }
        }
    }

    /// Bytes still to send at the end (strip mode holds at most one incomplete event).
    func tail() -> ByteBuffer? {
        lock.withLock {
            guard accountant != nil else { return nil }
            let (tail, outcome) = accountant!.finish(completed: true)
            accountantOutcome = outcome
            return tail.isEmpty ? nil : ByteBuffer(bytes: tail)
        }
    }

    private var accountantOutcome: ResponseAccountant.Outcome?
    /// Set when the answer came from the cache: what it saved and the model that made it.
    private var hit: (saved: Int64?, model: String?)?

    /// How many upstream attempts the request took (retries included).
    func setAttempts(_ n: Int) { lock.withLock { record.attempts = n } }

    /// A rule refused the request or made it use a cheaper model.
    func setRuleDecision(_ decision: String, rule: String) { lock.withLock { record.ruleDecision = RuleDecision(decision, rule: rule) } }

    /// An upstream attempt of a traced request, for its child span.
    func noteAttempt(_ attempt: UpstreamAttempt) { lock.withLock { record.attemptSpans.append(attempt) } }

    /// Records the request's `cache-status` (HIT, MISS, BYPASS) for its log row.
    func setCacheStatus(_ status: String) { lock.withLock { record.cacheStatus = status } }

    /// The answer is a cache hit: it costs nothing and saves what the cached answer cost.
    func servedFromCache(status: Int, streamed: Bool, saved: Int64?, model: String?) {
        lock.withLock {
            record.status = status
            record.ttfbMs = Int((ContinuousClock.now - started).milliseconds)
            record.streamed = streamed
            record.cacheStatus = "HIT"
            hit = (saved, model)
        }
    }

    /// The model the provider said served the request, once finished.
    var servedModel: String? { lock.withLock { finished ? record.servedModel : nil } }

    /// The request's cost once finished (nil before, or when it could not be priced).
    var costNanos: Int64? { lock.withLock { finished ? record.cost?.nanos : nil } }

    /// Ends the exchange: prices it and writes its log row. Only the first call counts.
    func finish(completed: Bool, status: Int? = nil, error: String? = nil) {
        let row: RequestRecord? = lock.withLock {
            guard !finished else { return nil }
            finished = true
            if let status { record.status = status }
            if let error { record.error = error }
            record.durationMs = Int((ContinuousClock.now - started).milliseconds)
            var outcome = accountantOutcome
            if outcome == nil, accountant != nil { outcome = accountant!.finish(completed: completed).outcome }
            if let outcome {
                record.usage = outcome.usage
                record.servedModel = outcome.servedModel
            }
            let requestedModel = record.requestedModel
            let model = record.servedModel ?? requestedModel
            if let custom = context.customPrice {
                record.pricedAs = "custom-cost"
                record.cost = custom.cost(of: record.usage)
            } else if let model, let entry = context.prices.price(provider: record.provider, model: model)
                ?? requestedModel.flatMap({ context.prices.price(provider: record.provider, model: $0) }) {
                record.pricedAs = "\(entry.provider)/\(entry.model)"
                record.cost = entry.price.cost(of: record.usage)
            }
            if let hit {
                record.cost = .zero
                record.pricedAs = "cache"
                record.savedNanos = hit.saved ?? 0
                record.servedModel = hit.model
            }
            if let body = responseBody { record.responseBody = body }
            return record
        }
        guard var row else { return }
        row.logged = context.writesRow
        var queued = false
        if let (id, limits) = lock.withLock({ reservation }) {
            // A request that used nothing and failed releases its reservation; anything that
            // reached the provider and produced tokens is charged what it used, when its row is
            // on disk (the log writer settles it then; the reservation holds until).
            if row.status >= 400 && row.usage.total == 0 {
                limits.release(id)
            } else {
                let actual = LimitAmounts(costNanos: row.cost?.nanos ?? 0, requests: 1,
                                          inputTokens: Int64(row.usage.totalInput), outputTokens: Int64(row.usage.output))
                var settling = row
                settling.settlement = PendingSettlement(reservation: id, actual: actual)
                if let log = context.log {
                    queued = true  // even if the queue was full: the row is not offered twice
                    if !log.append(settling) { limits.settle(id, actual: actual) }
                } else {
                    // No log, or its queue is full: count the spend now (without a row).
                    limits.settle(id, actual: actual)
                }
            }
        }
        if row.logged && !queued { context.log?.append(row) }
        context.metrics?.record(row)
        context.traces?.record(row)
        context.onFinish()
    }

    deinit {
        finish(completed: false, error: record.error ?? "the response was abandoned before it completed")
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
