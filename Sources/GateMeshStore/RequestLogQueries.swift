import Foundation
import GateMeshAccounting
import GateMeshCore
import GRDB

/// Filters shared by `/api/logs` and `/api/analytics`.
public struct LogFilter: Sendable, Equatable {
    public var fromMs: Int64?
    public var toMs: Int64?
    public var gateway: String?
    public var provider: String?
    /// Matches the requested or the served model.
    public var model: String?
    /// 2, 4 or 5 for 2xx, 4xx, 5xx.
    public var statusClass: Int?
    public var cacheStatus: String?
    public var metadataKey: String?
    public var metadataValue: String?
    /// The virtual key, team, org and end user (`key_id`, `team`, `org`, `end_user`).
    public var key: String?
    public var team: String?
    public var org: String?
    public var user: String?

    public init() {}

    func sql(into clauses: inout [String], arguments: inout StatementArguments) {
        if let fromMs { clauses.append("ts >= ?"); arguments += [fromMs] }
        if let toMs { clauses.append("ts < ?"); arguments += [toMs] }
        if let gateway { clauses.append("gateway = ?"); arguments += [gateway] }
        if let provider { clauses.append("provider = ?"); arguments += [provider] }
        if let model { clauses.append("(requested_model = ? OR served_model = ?)"); arguments += [model, model] }
        if let statusClass { clauses.append("status >= ? AND status < ?"); arguments += [statusClass * 100, statusClass * 100 + 100] }
        if let cacheStatus { clauses.append("cache_status = ?"); arguments += [cacheStatus] }
        if let key { clauses.append("key_id = ?"); arguments += [key] }
        if let team { clauses.append("team = ?"); arguments += [team] }
        if let org { clauses.append("org = ?"); arguments += [org] }
        if let user { clauses.append("end_user = ?"); arguments += [user] }
        if let metadataKey {
            let path = "$." + Self.jsonPathKey(metadataKey)
            if let metadataValue {
                clauses.append(Self.metadataText + " = ?")
                arguments += [path, path, path, metadataValue]
            } else {
                clauses.append("json_type(metadata, ?) IS NOT NULL")
                arguments += [path]
            }
        }
    }

    /// A metadata value as the text filters compare: a string as itself, a number or boolean as
    /// its JSON text (`12.50`, `true`), never SQLite's conversion of it. Takes the path three times.
    static let metadataText = "(CASE json_type(metadata, ?) WHEN 'text' THEN json_extract(metadata, ?) ELSE metadata -> ? END)"

    /// A metadata key as a quoted JSON path member, so any characters are safe.
    static func jsonPathKey(_ key: String) -> String {
        "\"" + key.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}

/// One page of the log, newest first.
public struct LogPage: Sendable {
    public var records: [RequestRecord]
    /// Pass as `cursor` to get the next (older) page; nil on the last page.
    public var nextCursor: String?
}

extension RequestLog {
    static let columns = """
        log_id, ts, event_id, node, gateway, provider, requested_model, served_model, priced_as, method, path, status,
        duration_ms, ttfb_ms, streamed, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, usage_estimated,
        cost_nanos, saved_nanos, cache_status, attempts, step, metadata, error, key_id, team, org, end_user
        """

    /// Rows matching `filter`, newest first, `limit` per page, older than `cursor` (a log id).
    public func page(_ filter: LogFilter, cursor: String?, limit: Int) async throws -> LogPage {
        var clauses: [String] = []
        var arguments = StatementArguments()
        filter.sql(into: &clauses, arguments: &arguments)
        if let cursor { clauses.append("log_id < ?"); arguments += [cursor] }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments += [limit + 1]
        let sql = "SELECT \(Self.columns) FROM request_log \(whereSQL) ORDER BY log_id DESC LIMIT ?"
        // Rows become records inside the read, so it runs on the store's reader queue (async),
        // not on one of the request path's threads.
        let rows = try await pool.read { [arguments] db in
            try Row.fetchAll(db, sql: sql, arguments: arguments).map { Self.record(from: $0, bodies: nil) }
        }
        let records = Array(rows.prefix(limit))
        return LogPage(records: records, nextCursor: rows.count > limit ? records.last?.logID : nil)
    }

    /// One row with its stored bodies.
    public func record(id: String) async throws -> RequestRecord? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.columns), request_body, response_body FROM request_log WHERE log_id = ?",
                                             arguments: [id]) else { return nil }
            return Self.record(from: row, bodies: (row["request_body"], row["response_body"]))
        }
    }

    static func record(from row: Row, bodies: (Data?, Data?)?) -> RequestRecord {
        let costNanos: Int64? = row["cost_nanos"]
        let metadataJSON: String = row["metadata"]
        let metadata = (try? RequestMetadata.parse(metadataJSON)) ?? RequestMetadata()
        var record = RequestRecord(
            logID: row["log_id"], eventID: row["event_id"], node: row["node"], gateway: row["gateway"], provider: row["provider"],
            requestedModel: row["requested_model"], servedModel: row["served_model"], pricedAs: row["priced_as"],
            method: row["method"], path: row["path"], status: row["status"], startedAtMs: row["ts"], durationMs: row["duration_ms"],
            ttfbMs: row["ttfb_ms"], streamed: row["streamed"],
            usage: TokenUsage(input: row["input_tokens"], output: row["output_tokens"], cacheRead: row["cache_read_tokens"],
                              cacheWrite: row["cache_write_tokens"], estimated: row["usage_estimated"]),
            cost: costNanos.map { Money(nanos: $0) }, cacheStatus: row["cache_status"], attempts: row["attempts"], step: row["step"],
            metadata: metadata, error: row["error"],
            requestBody: bodies?.0.map { Array($0) }, responseBody: bodies?.1.map { Array($0) })
        record.savedNanos = row["saved_nanos"]
        let key: String? = row["key_id"], team: String? = row["team"], org: String? = row["org"], user: String? = row["end_user"]
        if key != nil || user != nil { record.principal = Principal(key: key, team: team, org: org, user: user) }
        return record
    }
}

// MARK: - Analytics

public enum AnalyticsGrouping: Sendable, Equatable {
    case none, provider, model, gateway, metadata(String)
    case key, team, org, user
    /// The node that served the request (the row's `node`).
    case node
}

extension RequestLog {
    /// Totals and a time series at `stepMs`, optionally grouped. Latency percentiles come from
    /// the matching rows' durations (nearest-rank, `LatencyHistogram`).
    public func analytics(_ filter: LogFilter, groupBy: AnalyticsGrouping, stepMs: Int64) async throws -> AnalyticsResult {
        try await analyticsPartial(filter, groupBy: groupBy, stepMs: stepMs).result
    }

    /// The sums behind `analytics`, before percentiles are read: what a node answers a peer that
    /// adds up the cluster's.
    public func analyticsPartial(_ filter: LogFilter, groupBy: AnalyticsGrouping, stepMs: Int64) async throws -> AnalyticsPartial {
        var clauses: [String] = []
        var arguments = StatementArguments()
        filter.sql(into: &clauses, arguments: &arguments)
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let groupSQL: String
        switch groupBy {
        case .none: groupSQL = "NULL"
        case .provider: groupSQL = "provider"
        case .model: groupSQL = "COALESCE(served_model, requested_model)"
        case .gateway: groupSQL = "gateway"
        case .key: groupSQL = "key_id"
        case .team: groupSQL = "team"
        case .org: groupSQL = "org"
        case .user: groupSQL = "end_user"
        case .node: groupSQL = "node"
        case .metadata(let key):
            groupSQL = LogFilter.metadataText
            let path = "$." + LogFilter.jsonPathKey(key)
            arguments = [path, path, path] + arguments
        }
        let step = max(stepMs, 1)
        let sql = """
            SELECT \(groupSQL) AS grp, (ts / \(step)) * \(step) AS bucket, status, duration_ms, input_tokens, output_tokens,
                   cache_read_tokens, cache_write_tokens, cost_nanos, saved_nanos, cache_status
            FROM request_log \(whereSQL)
            """
        // Summed row by row inside the read: on the store's reader queue (async), not on one of
        // the request path's threads, and without holding every matching row in memory.
        return try await pool.read { [arguments] db in
            var partial = AnalyticsPartial()
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try rows.next() {
                partial.add(group: row["grp"], bucket: row["bucket"]) { cell in
                    cell.add(status: row["status"], inputTokens: row["input_tokens"], outputTokens: row["output_tokens"],
                             cacheReadTokens: row["cache_read_tokens"], cacheWriteTokens: row["cache_write_tokens"],
                             cost: Money(nanos: (row["cost_nanos"] as Int64?) ?? 0), saved: Money(nanos: row["saved_nanos"]),
                             cacheStatus: row["cache_status"], durationMs: row["duration_ms"])
                }
            }
            return partial
        }
    }
}

// MARK: - Export

extension RequestLog {
    static let exportCursorKey = "export_cursor"

    /// Up to `limit` rows written after `seq` (in the order they were written), with their bodies.
    public func rowsWritten(after seq: Int64, limit: Int) async throws -> [(seq: Int64, record: RequestRecord)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT \(Self.columns), seq, request_body, response_body FROM request_log WHERE seq > ? ORDER BY seq LIMIT ?
                """, arguments: [seq, limit]).map { row in
                (row["seq"], Self.record(from: row, bodies: (row["request_body"], row["response_body"])))
            }
        }
    }

    /// The `seq` of the last row written; 0 for none.
    public func lastSeq() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM request_log") } ?? 0
    }

    /// The export's cursor: the `seq` of the last row the sink acknowledged (0: none yet).
    public func exportCursor() throws -> Int64 {
        try pool.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM node_meta WHERE key = ?", arguments: [Self.exportCursorKey]).flatMap { Int64($0) }
        } ?? 0
    }

    public func saveExportCursor(_ seq: Int64) async throws {
        try await pool.write { db in try Self.setMeta(db, Self.exportCursorKey, String(seq)) }
    }
}
