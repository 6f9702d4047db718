import Foundation
import GateMeshAccounting
import GateMeshCache
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import GateMeshUpstream
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Forwards one passthrough request to its provider and streams the answer back.
///
/// Method, path, query and body go through untouched; hop-by-hop and gateway-control headers are
/// dropped; a stored key replaces the client's credential. Request bodies of known size up to
/// `inlineBodyLimit` are read whole (one copy, the common case for AI APIs); larger or chunked
/// ones stream up with back-pressure. The response streams down chunk by chunk; a client that
/// goes away cancels the upstream transfer.
///
/// A class, not a struct: each request's async frames then hold one reference to it, where a copy
/// of its dozen fields cost as many retains and releases at every suspension.
final class ProxyHandler: Sendable {
    let config: Settings
    let catalogue: ProviderCatalogue
    let client: UpstreamClient
    let prices: PriceTable
    let log: RequestLog?
    let metrics: NodeMetrics?
    let limits: LimitsService?
    let cache: ResponseCache?
    let logger: Logger
    /// Where each request's span goes (`telemetry.otlp`); nil: no traces.
    let traces: TraceExporter?

    init(config: Settings, catalogue: ProviderCatalogue, client: UpstreamClient, prices: PriceTable, log: RequestLog?,
         metrics: NodeMetrics?, limits: LimitsService?, cache: ResponseCache?, logger: Logger, traces: TraceExporter? = nil) {
        self.config = config
        self.catalogue = catalogue
        self.client = client
        self.prices = prices
        self.log = log
        self.metrics = metrics
        self.limits = limits
        self.cache = cache
        self.logger = logger
        self.traces = traces
    }

    /// Bodies up to this size with a Content-Length are read whole before the transfer starts.
    static let inlineBodyLimit = 4 << 20

    var timeouts: UpstreamTimeouts {
        UpstreamTimeouts(connectMs: config.upstream.connectTimeoutMs, firstByteMs: config.upstream.firstByteTimeoutMs,
                         totalMs: config.upstream.totalTimeoutMs)
    }

    /// Proxies the client's own request: `handle(_:input:…)` with nothing decided for it yet.
    func handle(_ route: PassthroughRoute, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        try await handle(route, input: ProxyInput(request), onFinish: onFinish)
    }

    /// Proxies one request. `onFinish` runs exactly once when the exchange is over (response body
    /// done or dropped unwritten, or an error answered), but only if this returns a response or
    /// throws a `GatewayError` after the request was accepted for a provider.
    ///
    /// For the universal endpoint and routes, `step` is the step's index (logged), and
    /// `fallsThrough` turns an upstream answer of 400 or more into a thrown `GatewayError` (logged
    /// as the step's failure) so that the next step is tried. `apiKey` is a route target's own key.
    func handle(_ route: PassthroughRoute, input: ProxyInput, step: Int = 0, fallsThrough: Bool = false, apiKey: String? = nil,
                onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        let started = ContinuousClock.now
        let startedAtMs = WallClock.nowMs()
        let gateway: GatewayConfig
        let provider: ResolvedProvider
        let controls: ControlHeaders
        let metadata: RequestMetadata
        let customPrice: ModelPrice?
        let caller: KeyDirectory.Caller?
        do {
            // Refusals before a provider is involved are not logged (no gateway or provider to file them under).
            guard let g = config.gateway(route.gateway) else { throw GatewayError.unknownGateway(route.gateway) }
            gateway = g
            switch input.identity {
            case .unchecked: caller = try authenticate(gateway, headers: input.headers)
            case .checked(let c): caller = c
            }
            guard var p = catalogue.provider(named: route.provider) else { throw GatewayError.unknownProvider(route.provider) }
            // A route target's own key replaces the provider's and the client's.
            if let apiKey { p.storedKey = apiKey }
            if caller != nil { try Self.requireStoredKey(p) }
            provider = p
            controls = try input.controls ?? Self.controls(input.headers, gateway: gateway)
            metadata = caller.map { Self.merging(controls.metadata, with: $0) } ?? controls.metadata
            customPrice = try controls.customCost.map { text throws(GatewayError) in
                // A client's own price would let it spend past every budget: only where trusted.
                // Or where the request's virtual key allows it.
                guard gateway.allowCustomCost || caller?.key.policy.allowCustomCost == true else {
                    throw GatewayError.customCostNotAllowed(gateway: gateway.id)
                }
                return try CustomCost.parse(text)
            }
        } catch {
            onFinish()
            throw error
        }
        let collectLog = controls.collectLog ?? gateway.collectLog
        let collectPayload = controls.collectPayload ?? gateway.collectLogPayload
        let eventID = controls.eventID
        let upstreamPath = route.rest.isEmpty ? "/" : route.rest
        let format = APIFormat.detect(wire: provider.spec.wire, path: Substring(upstreamPath))
        var record = RequestRecord(
            logID: UUIDv7.make(unixMillis: UInt64(startedAtMs)), eventID: eventID, node: config.node.name, gateway: gateway.id,
            provider: provider.spec.id, method: input.method.rawValue, path: upstreamPath, status: 0,
            startedAtMs: startedAtMs, durationMs: 0, step: step, metadata: metadata)
        record.trace = traces.map { input.trace ?? $0.trace(input.headers) }
        let exchange = ProxyExchange(
            record: record,
            principal: caller.map { Principal(key: $0.key.id, team: $0.team.id, org: $0.org.id, user: controls.user) }
                ?? controls.user.map { Principal(user: $0) },
            context: .init(log: log, writesRow: collectLog, prices: prices,
                           maxPayloadBytes: config.logging.maxPayloadBytes, collectPayload: collectPayload, metrics: metrics,
                           customPrice: customPrice, traces: traces,
                           onFinish: onFinish),
            started: started)
        do {
            var call = try ProxyCall(route: route, input: input, controls: controls, gateway: gateway, provider: provider, caller: caller,
                                     format: format, exchange: exchange, metadata: metadata, customPrice: customPrice,
                                     collectPayload: collectPayload, logged: collectLog, fallsThrough: fallsThrough, timeouts: timeouts,
                                     trace: record.trace)
            return try await forward(&call)
        } catch var error as GatewayError {
            exchange.finish(completed: false, status: error.status, error: error.message)
            if collectLog { error.headers.append(("x-gatemesh-log-id", exchange.logID)) }
            if let eventID { error.headers.append(("x-gatemesh-event-id", eventID)) }
            throw error
        } catch {
            exchange.finish(completed: false, status: 499, error: "the client went away: \(error)")
            throw error
        }
    }

    /// The request's control headers (`ControlHeaders.parse`), over the gateway's settings.
    static func controls(_ headers: HTTPFields, gateway: GatewayConfig) throws(GatewayError) -> ControlHeaders {
        let present = headers.contains { HeaderPolicy.isGatewayControl($0.name.canonicalName) }
        return try ControlHeaders.parse({ name in headers[HTTPField.Name(name)!] }, present: present, retries: gateway.retries)
    }

    static let cacheStatusHeader = HTTPField.Name("x-gatemesh-cache-status")!
    static let attemptsHeader = HTTPField.Name("x-gatemesh-attempts")!
    static let cacheKeyHeader = HTTPField.Name("x-gatemesh-cache-key")!

    /// A digest of the provider credential the client sent, for the cache key: nil when the
    /// config's key replaces it (everyone on the gateway shares that key's answers) or the
    /// client sent none. Clients with different keys so never get each other's answers.
    static func credentialDigest(headers: [(name: String, value: String)], url: String, provider: ResolvedProvider) -> String? {
        guard provider.storedKey == nil else { return nil }
        var query: [Substring] = []
        if let param = provider.spec.queryKeyParameter, let q = url.firstIndex(of: "?") {
            query = UpstreamTarget.parameterValues(param, in: url[url.index(after: q)...])
        }
        let material = CacheKeyMaterial.credential(headers: headers, queryValues: query)
        guard !material.isEmpty else { return nil }
        return ResponseCache.key(Array("gatemesh-credential\n".utf8) + material)
    }

    /// The upstream URL as the cache key sees it: without a credential passed in the query
    /// (Google AI Studio's `key`), so keys never depend on credentials.
    static func cacheURL(_ url: String, provider: ResolvedProvider) -> String {
        guard let param = provider.spec.queryKeyParameter, let q = url.firstIndex(of: "?") else { return url }
        let query = UpstreamTarget.removingParameter(param, from: String(url[url.index(after: q)...]))
        return String(url[..<q]) + (query.isEmpty ? "" : "?" + query)
    }

    /// Answers from the cache: the stored status, headers and body (a stream replayed as the
    /// chunks it arrived in), logged at no cost with the cost it saved. It still counts as a
    /// request under the gateway's rate limits.
    func serveHit(_ hit: CachedResponse, key: String, call: ProxyCall) async throws -> Response {
        let exchange = call.exchange
        if let limits, !limits.isEmpty {
            var request = LimitRequest(gateway: call.gateway.id, provider: call.provider.spec.id, model: call.facts.model, metadata: call.metadata)
            request.set(exchange.principal)
            let nothing = LimitAmounts(costNanos: 0, requests: 1, inputTokens: 0, outputTokens: 0)
            var skipping: Set<String> = []
            // A downgrade rule is moot for an answer that costs nothing: skip it and ask again.
            while true {
                switch await limits.admit(request, estimate: nothing, skipping: skipping) {
                case .admit(let reservation):
                    exchange.hold(reservation.id, in: limits)
                case .block(let refusal), .short(let refusal, _):
                    throw Self.refusalError(refusal)
                case .downgrade(let refusal, _, _):
                    skipping.insert(refusal.rule.id)
                    continue
                }
                break
            }
        }
        exchange.servedFromCache(status: hit.status, streamed: hit.streamed, saved: hit.costNanos, model: hit.servedModel)
        cache?.count("HIT")
        var headers = HTTPFields()
        headers.reserveCapacity(hit.headers.count + 4)
        for h in hit.headers {
            if let name = HTTPField.Name(h.name) { headers.append(HTTPField(name: name, value: h.value)) }
        }
        headers.append(HTTPField(name: Self.providerHeader, value: call.provider.spec.id))
        headers.append(HTTPField(name: Self.cacheStatusHeader, value: "HIT"))
        headers.append(HTTPField(name: Self.cacheKeyHeader, value: key))
        if call.logged { headers.append(HTTPField(name: Self.logIDHeader, value: exchange.logID)) }
        if let eventID = call.eventID { headers.append(HTTPField(name: Self.eventIDResponseHeader, value: eventID)) }
        let chunks = hit.chunks
        let body = ResponseBody(contentLength: hit.streamed ? nil : hit.body.count) { writer in
            for chunk in chunks { try await writer.write(ByteBuffer(bytes: chunk)) }
            try await Self.end(&writer) { exchange.finish(completed: true) }
        }
        return Response(status: .init(code: hit.status), headers: headers, body: body)
    }

    /// Ends the client's answer first, then does the exchange's bookkeeping (log row, metrics,
    /// settlement, the cache) off the answer's path, whether or not the end went out.
    static func end(_ writer: inout any ResponseBodyWriter, then bookkeeping: () -> Void) async throws {
        let end: Result<Void, any Error>
        do {
            try await writer.finish(nil)
            end = .success(())
        } catch {
            end = .failure(error)
        }
        bookkeeping()
        try end.get()
    }

    static let providerHeader = HTTPField.Name("x-gatemesh-provider")!
    static let downgradedHeader = HTTPField.Name("x-gatemesh-downgraded")!
    static let modelHeader = HTTPField.Name("x-gatemesh-model")!

    struct Downgrade {
        var rule: String
        var model: String
        var body: [UInt8]
    }

    /// Reserves the request's estimate under every matching limit, or refuses it with a 429 that
    /// names the rule. A downgrade rule that is exhausted rewrites the model and reserves again
    /// for the cheaper one (skipping that rule). Returns the downgrade, if one happened.
    func reserve(_ limits: LimitsService, _ call: ProxyCall, body: [UInt8]?) async throws(GatewayError) -> Downgrade? {
        let (format, facts, provider, exchange, customPrice) = (call.format, call.facts, call.provider, call.exchange, call.customPrice)
        func estimate(model: String?) -> LimitAmounts {
            // Embeddings and unread formats produce no output tokens.
            let output = format == .other || format == .openAIEmbeddings ? 0 : facts.maxOutputTokens ?? config.reservations.defaultOutputTokens
            let usage = TokenUsage(input: facts.estimatedInputTokens, output: output)
            let price = customPrice ?? model.flatMap { prices.price(provider: provider.spec.id, model: $0)?.price }
            return LimitAmounts(costNanos: price?.cost(of: usage).nanos ?? 0, requests: 1,
                                inputTokens: Int64(usage.input), outputTokens: Int64(usage.output))
        }
        var request = LimitRequest(gateway: call.gateway.id, provider: provider.spec.id, model: facts.model, metadata: call.metadata)
        request.set(exchange.principal)
        switch await limits.admit(request, estimate: estimate(model: facts.model)) {
        case .admit(let reservation):
            exchange.hold(reservation.id, in: limits)
            return nil
        case .block(let refusal), .short(let refusal, _):
            exchange.setRuleDecision("refused", rule: refusal.rule.id)
            throw Self.refusalError(refusal)
        case .downgrade(let refusal, let toProvider, let model):
            // Only the model in an OpenAI- or Anthropic-format body can be swapped in place.
            guard toProvider == nil || toProvider == provider.spec.id, let body,
                  format != .googleGenerate && format != .googleStream,
                  let rewritten = RequestInspector.replacingModel(in: body, with: model) else {
                exchange.setRuleDecision("refused", rule: refusal.rule.id)
                throw Self.refusalError(refusal)
            }
            request.model = model
            switch await limits.admit(request, estimate: estimate(model: model), skipping: [refusal.rule.id]) {
            case .admit(let reservation):
                exchange.hold(reservation.id, in: limits)
                exchange.setRuleDecision("downgraded", rule: refusal.rule.id)
                return Downgrade(rule: refusal.rule.id, model: model, body: rewritten)
            case .block(let second), .downgrade(let second, _, _), .short(let second, _):
                exchange.setRuleDecision("refused", rule: second.rule.id)
                throw Self.refusalError(second)
            }
        }
    }

    /// The 429 for a refusal: Retry-After, and the rule, scope value, limit and reset time.
    static func refusalError(_ r: LimitsEngine.Refusal) -> GatewayError {
        let budget = r.rule.kind == .budget
        let amount = { (v: Int64) in LimitsService.amount(v, r.rule.measure) }
        let what = r.rule.measure == .usd ? "$\(Money(nanos: r.rule.limit).dollars)"
            : "\(r.rule.limit) \(r.rule.measure.rawValue.replacing("_", with: " "))"
        let scope = r.scopeValue.isEmpty ? "" : " for \(r.scopeValue)"
        let name = "\(budget ? "budget" : "rate limit") '\(r.rule.id)'\(scope) allows \(what) per \(r.rule.window)"
        // An estimate larger than the whole limit can never fit: no Retry-After would help.
        let never = r.requested > r.rule.limit
        var error = GatewayError(
            status: 429, type: budget ? "budget_error" : "rate_limit_error", code: budget ? "budget_exceeded" : "rate_limit_exceeded",
            message: never ? "\(name); this request's estimate (\(amount(r.requested))) is larger than the whole limit"
                : "\(name); retry in \((r.retryAfterMs + 999) / 1000) s",
            headers: never ? [] : [("Retry-After", String((r.retryAfterMs + 999) / 1000))])
        error.details = [
            ("rule", JSON.quoted(r.rule.id)), ("scope", JSON.quoted(r.scopeValue)), ("limit", amount(r.rule.limit)),
            ("used", amount(r.used)), ("requested", amount(r.requested)), ("window", JSON.quoted(r.rule.window.description)),
            ("resets_at", LogAPI.iso(r.resetsAt)),
        ]
        return error
    }
    static let logIDHeader = HTTPField.Name("x-gatemesh-log-id")!
    static let eventIDResponseHeader = HTTPField.Name("x-gatemesh-event-id")!
    /// Both spellings of a control header (`ControlHeader`), as field names.
    static func controlHeader(_ name: String) -> [HTTPField.Name] { ControlHeader.names(name).map { HTTPField.Name($0)! } }

    static let gatewayAuthHeaders = controlHeader("authorization")

    /// Checks the gateway token when the gateway requires one.
    static func authorize(_ gateway: GatewayConfig, headers: HTTPFields) throws(GatewayError) {
        guard !gateway.authTokens.isEmpty else { return }
        guard let value = gatewayAuthHeaders.lazy.compactMap({ headers[$0] }).first else {
            throw .unauthorized("gateway '\(gateway.id)' requires a token: send x-gatemesh-authorization: Bearer <token>",
                                code: "missing_gateway_token")
        }
        guard let token = TokenCheck.bearerToken(value), TokenCheck.matches(token, anyOf: gateway.authTokens) else {
            throw .unauthorized("wrong gateway token for gateway '\(gateway.id)'")
        }
    }

    /// The declared body length; a malformed Content-Length is a 400.
    static func contentLength(_ headers: HTTPFields) throws(GatewayError) -> Int? {
        guard let text = headers[.contentLength] else { return nil }
        guard let n = Int(text), n >= 0 else { throw .badRequest("Content-Length '\(text)' is not a byte count") }
        return n
    }

    static func collect(_ request: inout Request, limit: Int, setting: String = "limits.max_body_bytes") async throws -> ByteBuffer {
        do {
            return try await request.collectBody(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw GatewayError.payloadTooLarge(limit: limit, setting: setting)
        } catch is NIOTooManyBytesError {
            // Hummingbird's check on the bytes actually received (no or a wrong content-length).
            throw GatewayError.payloadTooLarge(limit: limit, setting: setting)
        }
    }
}

/// Owns a transfer and its exchange for the life of a response body: if the server drops the
/// response without ever writing its body (the client vanished before the head went out), releasing
/// the lease cancels the transfer and finishes the exchange as incomplete, so a paused transfer
/// never holds its connection until the total timeout and no request goes unlogged.
final class TransferLease: Sendable {
    let transfer: UpstreamTransfer
    let exchange: ProxyExchange
    init(_ transfer: UpstreamTransfer, exchange: ProxyExchange) {
        self.transfer = transfer
        self.exchange = exchange
    }

    /// The client went away or the provider broke: stop the transfer and charge what was seen.
    func abandon() {
        transfer.cancel()
        exchange.finish(completed: false, error: "the stream ended early (client disconnected or provider connection broke)")
    }

    deinit {
        transfer.cancel()
        exchange.finish(completed: false, error: "the response was dropped before its body was sent")
    }
}
