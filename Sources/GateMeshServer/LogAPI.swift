import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshStore
import Hummingbird
import HummingbirdCore

/// `GET /api/logs`, `GET /api/logs/{id}` and `GET /api/analytics`: the request log, read back.
struct LogAPI: Sendable {
    let log: RequestLog

    static let maxLimit = 1000

    func logs(_ query: Query) async throws -> String {
        let filter = try query.filter()
        let limit = try query.int("limit", range: 1...Self.maxLimit) ?? 100
        let page = try await log.page(filter, cursor: query["cursor"], limit: limit)
        var out = "{\"data\":["
        for (i, record) in page.records.enumerated() {
            if i > 0 { out += "," }
            Self.append(record, bodies: false, to: &out)
        }
        out += "],\"next_cursor\":" + (page.nextCursor.map(JSON.quoted) ?? "null") + "}"
        return out
    }

    /// One row; with `team`, only a row of that team.
    func log(id: String, team: String? = nil) async throws -> String? {
        guard let record = try await log.record(id: id), team == nil || record.principal?.team == team else { return nil }
        var out = ""
        Self.append(record, bodies: true, to: &out)
        return out
    }

    func analytics(_ query: Query) async throws -> String {
        var filter = try query.filter()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if filter.toMs == nil { filter.toMs = now + 1 }
        if filter.fromMs == nil { filter.fromMs = filter.toMs! - 86_400_000 }
        let stepMs = try query.duration("step") ?? 3_600_000
        guard stepMs >= 1000 else { throw GatewayError.badRequest("step must be at least 1s", code: "invalid_query") }
        guard (filter.toMs! - filter.fromMs!) / stepMs <= 10_000 else {
            throw GatewayError.badRequest("the range holds more than 10000 steps; choose a larger step", code: "invalid_query")
        }
        let grouping: AnalyticsGrouping
        switch query["group_by"] {
        case nil, "": grouping = .none
        case "provider": grouping = .provider
        case "model": grouping = .model
        case "gateway": grouping = .gateway
        case "key": grouping = .key
        case "team": grouping = .team
        case "org": grouping = .org
        case "user": grouping = .user
        case let g? where g.hasPrefix("metadata.") && g.count > 9: grouping = .metadata(String(g.dropFirst(9)))
        case let g?:
            throw GatewayError.badRequest("group_by must be provider, model, gateway, key, team, org, user or metadata.<key>, got '\(g)'", code: "invalid_query")
        }
        let result = try await log.analytics(filter, groupBy: grouping, stepMs: stepMs)
        var out = "{\"from\":\(Self.iso(filter.fromMs!)),\"to\":\(Self.iso(filter.toMs!)),\"step_ms\":\(stepMs),\"totals\":"
        Self.append(result.totals, to: &out)
        out += ",\"groups\":["
        for (i, group) in result.groups.enumerated() {
            if i > 0 { out += "," }
            out += "{\"key\":" + (group.key.map(JSON.quoted) ?? "null") + ",\"totals\":"
            Self.append(group.totals, to: &out)
            out += ",\"series\":["
            for (j, point) in group.series.enumerated() {
                if j > 0 { out += "," }
                out += "{\"start\":\(Self.iso(point.startMs)),\"start_ms\":\(point.startMs),\"figures\":"
                Self.append(point.figures, to: &out)
                out += "}"
            }
            out += "]}"
        }
        return out + "]}"
    }

    // MARK: - JSON

    static func iso(_ ms: Int64) -> String { JSON.quoted(isoText(ms)) }

    /// Unix milliseconds as ISO 8601 in UTC with milliseconds (`2026-11-26T09:40:00.000Z`).
    static func isoText(_ ms: Int64) -> String {
        let date = Date(timeIntervalSince1970: Double(ms) / 1000)
        return date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    static func append(_ f: AnalyticsFigures, to out: inout String) {
        out += "{\"requests\":\(f.requests),\"errors\":\(f.errors),\"input_tokens\":\(f.inputTokens),\"output_tokens\":\(f.outputTokens),"
        out += "\"cache_read_tokens\":\(f.cacheReadTokens),\"cache_write_tokens\":\(f.cacheWriteTokens),"
        out += "\"cost\":\(JSON.quoted(f.cost.dollars)),\"cost_nanos\":\(f.cost.nanos),"
        out += "\"saved_cost\":\(JSON.quoted(f.savedCost.dollars)),\"saved_nanos\":\(f.savedCost.nanos),"
        out += "\"cache_hit_ratio\":" + (f.cacheHitRatio.map { String($0) } ?? "null") + ","
        out += "\"latency_p50_ms\":" + (f.latencyP50Ms.map(String.init) ?? "null") + ","
        out += "\"latency_p95_ms\":" + (f.latencyP95Ms.map(String.init) ?? "null") + "}"
    }

    static func append(_ r: RequestRecord, bodies: Bool, to out: inout String) {
        func opt(_ s: String?) -> String { s.map(JSON.quoted) ?? "null" }
        out += "{\"log_id\":\(JSON.quoted(r.logID)),\"event_id\":\(opt(r.eventID)),\"time\":\(iso(r.startedAtMs)),\"ts_ms\":\(r.startedAtMs),"
        out += "\"node\":\(JSON.quoted(r.node)),\"gateway\":\(JSON.quoted(r.gateway)),\"provider\":\(JSON.quoted(r.provider)),"
        out += "\"requested_model\":\(opt(r.requestedModel)),\"served_model\":\(opt(r.servedModel)),\"priced_as\":\(opt(r.pricedAs)),"
        out += "\"method\":\(JSON.quoted(r.method)),\"path\":\(JSON.quoted(r.path)),\"status\":\(r.status),"
        out += "\"duration_ms\":\(r.durationMs),\"ttfb_ms\":" + (r.ttfbMs.map(String.init) ?? "null") + ",\"streamed\":\(r.streamed),"
        out += "\"tokens\":{\"input\":\(r.usage.input),\"output\":\(r.usage.output),\"cache_read\":\(r.usage.cacheRead),\"cache_write\":\(r.usage.cacheWrite)},"
        out += "\"usage_estimated\":\(r.usage.estimated),"
        out += "\"cost\":" + (r.cost.map { JSON.quoted($0.dollars) } ?? "null") + ",\"cost_nanos\":" + (r.cost.map { String($0.nanos) } ?? "null") + ","
        out += "\"saved_cost\":\(JSON.quoted(Money(nanos: r.savedNanos).dollars)),\"saved_nanos\":\(r.savedNanos),"
        out += "\"cache_status\":\(opt(r.cacheStatus)),\"attempts\":\(r.attempts),\"step\":\(r.step),"
        out += "\"key\":\(opt(r.principal?.key)),\"team\":\(opt(r.principal?.team)),\"org\":\(opt(r.principal?.org)),\"user\":\(opt(r.principal?.user)),"
        out += "\"metadata\":\(r.metadata.json),\"error\":\(opt(r.error))"
        if bodies {
            out += ",\"request_body\":" + body(r.requestBody) + ",\"response_body\":" + body(r.responseBody)
        }
        out += "}"
    }

    /// A stored body as text when it is UTF-8, else as `{"base64": …}`; null when not stored.
    static func body(_ bytes: [UInt8]?) -> String {
        guard let bytes else { return "null" }
        if let text = String(validating: bytes, as: UTF8.self) { return JSON.quoted(text) }
        return "{\"base64\":\(JSON.quoted(Data(bytes).base64EncodedString()))}"
    }
}

/// The query string of an operator request, with typed readers that answer 400 on bad values.
struct Query: Sendable {
    private(set) var items: [String: String]

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
