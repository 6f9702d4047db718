import GRDB

/// The budget alerts that fired (`alerts_fired`): recorded before they are delivered, so a restart
/// neither fires one again nor loses one the webhook has not acknowledged.
public struct AlertStore: Sendable {
    let pool: DatabasePool

    /// Records that an alert fired (before it is delivered), so a restart does not fire it again.
    /// `deliveredTs` records one another node sent (never to be sent from here).
    public func record(rule: String, scope: String, window: Int64, permille: Int, ts: Int64, body: String,
                       deliveredTs: Int64? = nil) async throws {
        let pool = self.pool
        try await Task.detached {
            try await pool.write { db in
                try db.execute(sql: """
                    INSERT OR IGNORE INTO alerts_fired (rule, scope, window, permille, ts, body, delivered_ts) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [rule, scope, window, permille, ts, body, deliveredTs])
            }
        }.value
    }

    /// Alerts recorded but never acknowledged by the webhook: (rule, scope, window, permille, body).
    public func undelivered() throws -> [(rule: String, scope: String, window: Int64, permille: Int, body: String)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT rule, scope, window, permille, body FROM alerts_fired WHERE delivered_ts IS NULL ORDER BY ts").map {
                (rule: $0["rule"], scope: $0["scope"], window: $0["window"], permille: $0["permille"], body: $0["body"])
            }
        }
    }

    public func markDelivered(rule: String, scope: String, window: Int64, permille: Int, ts: Int64) async {
        _ = try? await pool.write { db in
            try db.execute(sql: "UPDATE alerts_fired SET delivered_ts = ? WHERE rule = ? AND scope = ? AND window = ? AND permille = ?",
                           arguments: [ts, rule, scope, window, permille])
        }
    }

    /// Alerts fired since `sinceTs`: (rule, scope, window, permille).
    public func fired(sinceTs: Int64) throws -> [(rule: String, scope: String, window: Int64, permille: Int)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT rule, scope, window, permille FROM alerts_fired WHERE ts >= ?", arguments: [sinceTs]).map {
                (rule: $0["rule"], scope: $0["scope"], window: $0["window"], permille: $0["permille"])
            }
        }
    }
}
