import GateMeshCore

/// Request spans as OTLP/HTTP protobuf (`ExportTraceServiceRequest`), one span per request,
/// following OpenTelemetry's GenAI semantic conventions, plus GateMesh's own attributes. Pure.
///
/// Field numbers are those of opentelemetry-proto (`opentelemetry/proto/collector/trace/v1`,
/// `trace/v1`, `common/v1`, `resource/v1`), checked against the `opentelemetry-proto` Python
/// package's descriptors, which the integration test decodes with.
public enum OTLPTraces {
    /// The `gen_ai.system` of a provider (the semantic conventions' values where they name it).
    public static func system(_ provider: String) -> String {
        switch provider {
        case "google-ai-studio": "gcp.gemini"
        case "google-vertex-ai": "gcp.vertex_ai"
        case "aws-bedrock": "aws.bedrock"
        case "azure-openai": "az.ai.openai"
        case "mistral": "mistral_ai"
        case "perplexity-ai": "perplexity"
        default: provider
        }
    }

    /// The `gen_ai.operation.name` of an upstream path.
    public static func operation(_ path: String) -> String {
        if path.contains("chat/completions") || path.hasSuffix("/messages") || path.contains("generateContent") || path.hasSuffix("/chat") { return "chat" }
        if path.contains("embeddings") || path.contains("embedContent") { return "embeddings" }
        if path.hasSuffix("/responses") { return "chat" }
        if path.hasSuffix("/completions") { return "text_completion" }
        return "other"
    }

    /// The request body of an OTLP/HTTP export of `records` (those with a sampled trace) and of
    /// fallback chains' spans.
    public static func export(_ records: [RequestRecord], chains: [ChainSpan] = [], serviceName: String, node: String, version: String) -> [UInt8] {
        var scope = Protobuf()
        var name = Protobuf()
        name.string(1, "gatemesh")
        name.string(2, version)
        scope.message(1, name)
        for r in records {
            if let span = span(r) { scope.message(2, span) }
            for (i, a) in r.attemptSpans.enumerated() { if let span = attemptSpan(r, a, number: i + 1) { scope.message(2, span) } }
        }
        for c in chains { scope.message(2, span(c)) }
        var resource = Protobuf()
        resource.message(1, attribute("service.name", .string(serviceName)))
        resource.message(1, attribute("service.instance.id", .string(node)))
        var resourceSpans = Protobuf()
        resourceSpans.message(1, resource)
        resourceSpans.message(2, scope)
        var request = Protobuf()
        request.message(1, resourceSpans)
        return request.bytes
    }

    enum Value {
        case string(String), int(Int64), double(Double), bool(Bool)
    }

    static func attribute(_ key: String, _ value: Value) -> Protobuf {
        var any = Protobuf()
        switch value {
        case .string(let s): any.string(1, s)
        case .bool(let b): any.varint(2, b ? 1 : 0)
        case .int(let n): any.varint(3, UInt64(bitPattern: n))
        case .double(let d): any.fixed64(4, d.bitPattern)
        }
        var kv = Protobuf()
        kv.string(1, key)
        kv.message(2, any)
        return kv
    }

    /// One request's span; nil without a trace.
    static func span(_ r: RequestRecord) -> Protobuf? {
        guard let trace = r.trace else { return nil }
        var s = Protobuf()
        s.bytes(1, trace.traceID)
        s.bytes(2, trace.spanID)
        if let state = trace.traceState { s.string(3, state) }
        if let parent = trace.parentSpanID { s.bytes(4, parent) }
        let operation = operation(r.path)
        s.string(5, [operation, r.requestedModel ?? r.servedModel].compactMap { $0 }.joined(separator: " "))
        s.varint(6, trace.parentInGateway ? 1 : 2)  // SPAN_KIND_INTERNAL under a chain's span, else SERVER
        let start = UInt64(max(0, r.startedAtMs)) * 1_000_000
        s.fixed64(7, start)
        // The duration is monotonic and the attempts' times are wall-clock, each rounded to the
        // millisecond: the request's span ends no earlier than its last attempt.
        let lastAttempt = r.attemptSpans.map { UInt64(max(0, $0.endedAtMs)) * 1_000_000 }.max() ?? 0
        s.fixed64(8, max(start + UInt64(max(0, r.durationMs)) * 1_000_000, lastAttempt))
        var attributes: [(String, Value)] = [
            ("gen_ai.system", .string(system(r.provider))), ("gen_ai.operation.name", .string(operation)),
            ("gen_ai.usage.input_tokens", .int(Int64(r.usage.totalInput))), ("gen_ai.usage.output_tokens", .int(Int64(r.usage.output))),
            ("http.request.method", .string(r.method)), ("http.response.status_code", .int(Int64(r.status))),
            ("gatemesh.log_id", .string(r.logID)), ("gatemesh.node", .string(r.node)), ("gatemesh.gateway", .string(r.gateway)),
            ("gatemesh.provider", .string(r.provider)), ("gatemesh.path", .string(r.path)), ("gatemesh.attempts", .int(Int64(r.attempts))),
            ("gatemesh.step", .int(Int64(r.step))), ("gatemesh.streamed", .bool(r.streamed)), ("gatemesh.usage_estimated", .bool(r.usage.estimated)),
        ]
        if let m = r.requestedModel { attributes.append(("gen_ai.request.model", .string(m))) }
        if let m = r.servedModel { attributes.append(("gen_ai.response.model", .string(m))) }
        if r.usage.cacheRead > 0 { attributes.append(("gen_ai.usage.cache_read_input_tokens", .int(Int64(r.usage.cacheRead)))) }
        if let cost = r.cost {
            attributes.append(("gatemesh.cost_usd", .double(Double(cost.nanos) / 1e9)))
            attributes.append(("gatemesh.cost_nanos", .int(cost.nanos)))
        }
        if let p = r.pricedAs { attributes.append(("gatemesh.priced_as", .string(p))) }
        if let c = r.cacheStatus { attributes.append(("gatemesh.cache_status", .string(c))) }
        if let k = r.principal?.key { attributes.append(("gatemesh.key", .string(k))) }
        if let t = r.principal?.team { attributes.append(("gatemesh.team", .string(t))) }
        if let o = r.principal?.org { attributes.append(("gatemesh.org", .string(o))) }
        if let u = r.principal?.user { attributes.append(("gatemesh.user", .string(u))) }
        if let e = r.eventID { attributes.append(("gatemesh.event_id", .string(e))) }
        if let d = r.ruleDecision {
            attributes.append(("gatemesh.rule_decision", .string(d.decision)))
            attributes.append(("gatemesh.rule", .string(d.rule)))
        }
        if let t = r.ttfbMs { attributes.append(("gatemesh.ttfb_ms", .int(Int64(t)))) }
        if r.error != nil || r.status >= 500 { attributes.append(("error.type", .string(r.status >= 400 ? String(r.status) : "incomplete"))) }
        for (key, value) in attributes { s.message(9, attribute(key, value)) }
        var status = Protobuf()
        if r.status >= 500 || r.error != nil {
            if let e = r.error { status.string(2, e) }
            status.varint(3, 2)  // STATUS_CODE_ERROR
        } else {
            status.varint(3, 0)  // UNSET: fine by the server span conventions, 4xx included
        }
        s.message(15, status)
        s.fixed32(16, trace.sampled ? 1 : 0)  // flags: the W3C trace flags
        return s
    }
}

extension OTLPTraces {
    /// An attempt's span id: derived from the request's span and the attempt's number (FNV-1a),
    /// so the same record always encodes the same spans.
    static func attemptSpanID(_ parent: [UInt8], number: Int) -> [UInt8] {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in parent + [UInt8(truncatingIfNeeded: number), UInt8(truncatingIfNeeded: number >> 8), 0xA7] {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3
        }
        if h == 0 { h = 1 }
        return (0..<8).map { UInt8(truncatingIfNeeded: h >> (8 * UInt64($0))) }
    }

    /// A child span (kind `CLIENT`) of the request's, for one attempt at the provider.
    static func attemptSpan(_ r: RequestRecord, _ a: UpstreamAttempt, number: Int) -> Protobuf? {
        guard let trace = r.trace else { return nil }
        var s = Protobuf()
        s.bytes(1, trace.traceID)
        s.bytes(2, attemptSpanID(trace.spanID, number: number))
        if let state = trace.traceState { s.string(3, state) }
        s.bytes(4, trace.spanID)
        s.string(5, "\(r.method) \(r.provider) attempt \(number)")
        s.varint(6, 3)  // SPAN_KIND_CLIENT
        s.fixed64(7, UInt64(max(0, a.startedAtMs)) * 1_000_000)
        s.fixed64(8, UInt64(max(a.startedAtMs, a.endedAtMs)) * 1_000_000)
        var attributes: [(String, Value)] = [("gatemesh.attempt", .int(Int64(number))), ("gen_ai.system", .string(system(r.provider)))]
        if let status = a.status { attributes.append(("http.response.status_code", .int(Int64(status)))) }
        if let e = a.error { attributes.append(("error.type", .string(a.status.map(String.init) ?? e))) }
        for (key, value) in attributes { s.message(9, attribute(key, value)) }
        var status = Protobuf()
        if let e = a.error {
            status.string(2, e)
            status.varint(3, 2)
        }
        s.message(15, status)
        s.fixed32(16, trace.sampled ? 1 : 0)
        return s
    }
}

/// The span of a request tried as a chain of steps (a universal-endpoint request, a route's
/// targets): the request's `SERVER` span, whose children are its steps' spans (`INTERNAL`, each
/// with its attempts under it), so that a fallback is one trace whether or not the client sent a
/// `traceparent`.
public struct ChainSpan: Sendable, Equatable {
    public var trace: TraceContext
    public var gateway: String
    /// The model route tried; nil for the universal endpoint.
    public var route: String?
    public var startedAtMs: Int64
    /// When the answer's head was chosen (a streamed step's span may end later).
    public var endedAtMs: Int64
    public var stepsTried: Int
    /// The step whose answer (or, for the last one, error) went to the client.
    public var answeredStep: Int
    public var status: Int
    public var error: String?

    public init(trace: TraceContext, gateway: String, route: String?, startedAtMs: Int64, endedAtMs: Int64, stepsTried: Int,
                answeredStep: Int, status: Int, error: String?) {
        self.trace = trace
        self.gateway = gateway
        self.route = route
        self.startedAtMs = startedAtMs
        self.endedAtMs = endedAtMs
        self.stepsTried = stepsTried
        self.answeredStep = answeredStep
        self.status = status
        self.error = error
    }
}

extension OTLPTraces {
    static func span(_ c: ChainSpan) -> Protobuf {
        var s = Protobuf()
        s.bytes(1, c.trace.traceID)
        s.bytes(2, c.trace.spanID)
        if let state = c.trace.traceState { s.string(3, state) }
        if let parent = c.trace.parentSpanID { s.bytes(4, parent) }
        s.string(5, c.route.map { "route \($0)" } ?? "universal")
        s.varint(6, 2)  // SPAN_KIND_SERVER
        s.fixed64(7, UInt64(max(0, c.startedAtMs)) * 1_000_000)
        s.fixed64(8, UInt64(max(c.startedAtMs, c.endedAtMs)) * 1_000_000)
        var attributes: [(String, Value)] = [
            ("gatemesh.gateway", .string(c.gateway)), ("gatemesh.steps_tried", .int(Int64(c.stepsTried))),
            ("gatemesh.step", .int(Int64(c.answeredStep))), ("http.response.status_code", .int(Int64(c.status))),
        ]
        if let r = c.route { attributes.append(("gatemesh.route", .string(r))) }
        if c.error != nil || c.status >= 500 { attributes.append(("error.type", .string(String(c.status)))) }
        for (key, value) in attributes { s.message(9, attribute(key, value)) }
        var status = Protobuf()
        if c.status >= 500 || c.error != nil {
            if let e = c.error { status.string(2, e) }
            status.varint(3, 2)
        } else {
            status.varint(3, 0)
        }
        s.message(15, status)
        s.fixed32(16, c.trace.sampled ? 1 : 0)
        return s
    }
}

/// Protocol Buffers' wire format, enough for OTLP: tags and varints (LEB128, `BinaryWriter.uint`),
/// length-delimited fields (`BinaryWriter.blob`: a varint length, then the bytes), fixed64, fixed32.
struct Protobuf {
    private var w = BinaryWriter()

    var bytes: [UInt8] { w.bytes }

    private mutating func tag(_ field: Int, _ wire: UInt64) { w.uint(UInt64(field) << 3 | wire) }

    mutating func varint(_ field: Int, _ v: UInt64) {
        tag(field, 0)
        w.uint(v)
    }

    mutating func fixed64(_ field: Int, _ v: UInt64) {
        tag(field, 1)
        for i in 0..<8 { w.byte(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) }
    }

    mutating func fixed32(_ field: Int, _ v: UInt32) {
        tag(field, 5)
        for i in 0..<4 { w.byte(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) }
    }

    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        tag(field, 2)
        w.blob(b)
    }

    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }

    mutating func message(_ field: Int, _ m: Protobuf) { bytes(field, m.bytes) }
}
