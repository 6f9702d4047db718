import Foundation
import GateMeshAccounting
import GateMeshCluster
import GateMeshCore
import GateMeshStore
import Hummingbird
import HummingbirdCore

/// `GET /api/logs`, `GET /api/logs/{id}` and `GET /api/analytics`: the request log, read back.
struct LogAPI: Sendable {
    let log: RequestLog

    static let maxLimit = 1000

    /// A page of this node's rows (`limit`, below `cursor`), newest first, and whether more follow.
    func page(_ query: Query) async throws -> LogPageMerge.Page<JSONValue> {
        let filter = try query.filter()
        let page = try await log.page(filter, cursor: query["cursor"], limit: try Self.limit(query))
        return LogPageMerge.Page(rows: page.records.map { ($0.logID, Self.row($0, bodies: false)) }, more: page.nextCursor != nil)
    }

    static func limit(_ query: Query) throws(GatewayError) -> Int { try query.int("limit", range: 1...maxLimit) ?? 100 }

    /// This node's row with `id`, with its bodies; with `team`, only a row of that team.
    func row(id: String, team: String? = nil) async throws -> JSONValue? {
        guard let record = try await log.record(id: id), team == nil || record.principal?.team == team else { return nil }
        return Self.row(record, bodies: true)
    }

    /// What `/api/analytics` asks, read from its query: the time range defaults to the day before
    /// `nowMs`, the step to an hour.
    struct AnalyticsAsk: Sendable {
        var filter: LogFilter
        var grouping: AnalyticsGrouping
        var stepMs: Int64

        var fromMs: Int64 { filter.fromMs! }
        var toMs: Int64 { filter.toMs! }

        init(_ query: Query, nowMs: Int64) throws(GatewayError) {
            filter = try query.filter()
            if filter.toMs == nil { filter.toMs = nowMs + 1 }
            if filter.fromMs == nil { filter.fromMs = filter.toMs! - 86_400_000 }
            stepMs = try query.duration("step") ?? 3_600_000
            guard stepMs >= 1000 else { throw GatewayError.badRequest("step must be at least 1s", code: "invalid_query") }
            guard (filter.toMs! - filter.fromMs!) / stepMs <= 10_000 else {
                throw GatewayError.badRequest("the range holds more than 10000 steps; choose a larger step", code: "invalid_query")
            }
            switch query["group_by"] {
            case nil, "": grouping = .none
            case "provider": grouping = .provider
            case "model": grouping = .model
            case "gateway": grouping = .gateway
            case "key": grouping = .key
            case "team": grouping = .team
            case "org": grouping = .org
            case "user": grouping = .user
            case "node": grouping = .node
            case let g? where g.hasPrefix("metadata.") && g.count > 9: grouping = .metadata(String(g.dropFirst(9)))
            case let g?:
                throw GatewayError.badRequest("group_by must be provider, model, gateway, key, team, org, user, node or metadata.<key>, got '\(g)'",
                                              code: "invalid_query")
            }
        }

        /// The query a peer is sent: the same, with the range and the step this node resolved (a
        /// peer's clock must not move the range).
        func forPeers(_ query: Query) -> [String: String] {
            var items = query.items
            items["from"] = String(fromMs)
            items["to"] = String(toMs)
            items["step"] = String(stepMs)
            return items
        }
    }

    func partial(_ ask: AnalyticsAsk) async throws -> AnalyticsPartial {
        try await log.analyticsPartial(ask.filter, groupBy: ask.grouping, stepMs: ask.stepMs)
    }

    /// The `/api/analytics` answer, with `extra` members (which nodes answered) at the end.
    static func analytics(_ result: AnalyticsResult, _ ask: AnalyticsAsk, extra: [(String, JSONValue)]) -> String {
        JSONValue.object(JSONObject([
            ("from", .string(Timestamps.iso(ask.fromMs))), ("to", .string(Timestamps.iso(ask.toMs))), ("step_ms", .number(String(ask.stepMs))),
            ("totals", Self.figures(result.totals)),
            ("groups", .array(result.groups.map { group in
                .object(JSONObject([
                    ("key", Self.orNull(group.key)), ("totals", Self.figures(group.totals)),
                    ("series", .array(group.series.map { point in
                        .object(JSONObject([
                            ("start", .string(Timestamps.iso(point.startMs))), ("start_ms", .number(String(point.startMs))),
                            ("figures", Self.figures(point.figures)),
                        ]))
                    })),
                ]))
            })),
        ] + extra)).text
    }

    // MARK: - JSON

    /// Unix milliseconds as a quoted ISO 8601 time in UTC with milliseconds (`Timestamps.iso`,
    /// exact: Foundation's formatter, used here before, showed some times a millisecond early).
    static func iso(_ ms: Int64) -> String { JSON.quoted(Timestamps.iso(ms)) }

    static func orNull(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
    static func number(_ n: some BinaryInteger) -> JSONValue { .number(String(n)) }
    static func dollars(_ m: Money) -> JSONValue { .string(m.dollars) }

    static func figures(_ f: AnalyticsFigures) -> JSONValue {
        .object(JSONObject([
            ("requests", number(f.requests)), ("errors", number(f.errors)), ("input_tokens", number(f.inputTokens)),
            ("output_tokens", number(f.outputTokens)), ("cache_read_tokens", number(f.cacheReadTokens)),
            ("cache_write_tokens", number(f.cacheWriteTokens)), ("cost", dollars(f.cost)), ("cost_nanos", number(f.cost.nanos)),
            ("saved_cost", dollars(f.savedCost)), ("saved_nanos", number(f.savedCost.nanos)),
            ("cache_hit_ratio", f.cacheHitRatio.map { .number(String($0)) } ?? .null),
            ("latency_p50_ms", f.latencyP50Ms.map(number) ?? .null), ("latency_p95_ms", f.latencyP95Ms.map(number) ?? .null),
        ]))
    }

    /// A log row as `/api/logs` shows it; with `bodies`, the stored request and response bodies.
    static func row(_ r: RequestRecord, bodies: Bool) -> JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("log_id", .string(r.logID)), ("event_id", orNull(r.eventID)), ("time", .string(Timestamps.iso(r.startedAtMs))),
            ("ts_ms", number(r.startedAtMs)), ("node", .string(r.node)), ("gateway", .string(r.gateway)), ("provider", .string(r.provider)),
            ("requested_model", orNull(r.requestedModel)), ("served_model", orNull(r.servedModel)), ("priced_as", orNull(r.pricedAs)),
            ("method", .string(r.method)), ("path", .string(r.path)), ("status", number(r.status)), ("duration_ms", number(r.durationMs)),
            ("ttfb_ms", r.ttfbMs.map(number) ?? .null), ("streamed", .bool(r.streamed)),
            ("tokens", .object(JSONObject([
                ("input", number(r.usage.input)), ("output", number(r.usage.output)), ("cache_read", number(r.usage.cacheRead)),
                ("cache_write", number(r.usage.cacheWrite)),
            ]))),
            ("usage_estimated", .bool(r.usage.estimated)),
            ("cost", r.cost.map(dollars) ?? .null), ("cost_nanos", r.cost.map { number($0.nanos) } ?? .null),
            ("saved_cost", dollars(Money(nanos: r.savedNanos))), ("saved_nanos", number(r.savedNanos)),
            ("cache_status", orNull(r.cacheStatus)), ("attempts", number(r.attempts)), ("step", number(r.step)),
            ("key", orNull(r.principal?.key)), ("team", orNull(r.principal?.team)), ("org", orNull(r.principal?.org)),
            ("user", orNull(r.principal?.user)),
            ("metadata", .object(JSONObject(r.metadata.entries.map { key, value in
                switch value {
                // A number keeps the text it was sent with.
                case .number(let text): (key, .number(text))
                case .string(let s): (key, .string(s))
                case .bool(let b): (key, .bool(b))
                }
            }))),
            ("error", orNull(r.error)),
        ]
        if bodies {
            pairs.append(("request_body", body(r.requestBody)))
            pairs.append(("response_body", body(r.responseBody)))
        }
        return .object(JSONObject(pairs))
    }

    /// A stored body as text when it is UTF-8, else as `{"base64": …}`; null when not stored.
    static func body(_ bytes: [UInt8]?) -> JSONValue {
        guard let bytes else { return .null }
        if let text = String(validating: bytes, as: UTF8.self) { return .string(text) }
        return .object(["base64": .string(Data(bytes).base64EncodedString())])
    }
}

/// The query string of an operator request, with typed readers that answer 400 on bad values.
struct Query: Sendable {
    private(set) var items: [String: String] = [:]

    init() {}

    /// A query as a peer sent it (`ReadCodec`).
    init(items: [String: String]) { self.items = items }

    /// The same query without `keys`.
    func removing(_ keys: String...) -> Query {
        var q = self
        for key in keys { q.items[key] = nil }
        return q
    }

    /// The same query with `key` set to `value` (a `team_admin` sees its own team only).
    func setting(_ key: String, _ value: String) -> Query {
        var q = self
        q.items[key] = value
        return q
    }

    init(_ uri: HummingbirdCore.URI) {
        var items: [String: String] = [:]
        for (key, value) in uri.queryParameters { items[String(key)] = String(value) }  // already percent-decoded
        self.items = items
    }

    subscript(key: String) -> String? { items[key] }

    func int(_ key: String, range: ClosedRange<Int>) throws(GatewayError) -> Int? {
        guard let text = items[key] else { return nil }
        guard let n = Int(text), range.contains(n) else {
            throw .badRequest("\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'", code: "invalid_query")
        }
        return n
    }

    /// A time: Unix milliseconds, or an ISO 8601 date-time.
    func time(_ key: String) throws(GatewayError) -> Int64? {
        guard let text = items[key] else { return nil }
        if let ms = Int64(text) { return ms }
        if let date = (try? Date(text, strategy: .iso8601))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))) {
            return Int64(date.timeIntervalSince1970 * 1000)
        }
        throw .badRequest("\(key) must be Unix milliseconds or an ISO 8601 time such as 2026-11-26T10:00:00Z, got '\(text)'",
                          code: "invalid_query")
    }

    /// A duration such as `60s`, `5m`, `1h`, `1d`, or milliseconds.
    func duration(_ key: String) throws(GatewayError) -> Int64? {
        guard let text = items[key] else { return nil }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let n = Int64(text.dropLast(suffix.count)), n > 0 { return n * factor }
        }
        if let n = Int64(text), n > 0 { return n }
        throw .badRequest("\(key) must be a duration such as 60s, 5m, 1h or 1d, got '\(text)'", code: "invalid_query")
    }

    func filter() throws(GatewayError) -> LogFilter {
        var f = LogFilter()
        f.fromMs = try time("from")
        f.toMs = try time("to")
        f.gateway = items["gateway"]
        f.provider = items["provider"]
        f.model = items["model"]
        if let status = items["status"] {
            guard status.count == 3, status.hasSuffix("xx"), let c = Int(status.prefix(1)), (1...5).contains(c) else {
                throw .badRequest("status must be a class such as 2xx, 4xx or 5xx, got '\(status)'", code: "invalid_query")
            }
            f.statusClass = c
        }
        f.cacheStatus = items["cache_status"]
        f.metadataKey = items["metadata_key"]
        f.metadataValue = items["metadata_value"]
        f.key = items["key"]
        f.team = items["team"]
        f.org = items["org"]
        f.user = items["user"]
        if f.metadataValue != nil && f.metadataKey == nil {
            throw .badRequest("metadata_value needs metadata_key", code: "invalid_query")
        }
        return f
    }
}
