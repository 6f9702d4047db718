/// Operator tokens with roles, and the audit log of admin-API changes: replicated as records
/// `token:ID` and `audit:ID` beside the orgs, teams and keys (docs/keys.md#operators). Pure.
public enum OperatorRole: String, Sendable, CaseIterable {
    /// Everything, as the config's admin token.
    case admin
    /// One team: its keys (make, change, rotate, revoke) and its logs, analytics and budgets.
    case teamAdmin = "team_admin"
    /// Read only: every `GET`.
    case viewer
}

public struct OperatorToken: Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: OperatorRole
    /// The team of a `team_admin`.
    public var team: String?
    /// Lowercase hex SHA-256 of the secret (`gmo_…`).
    public var hash: String
    public var createdAtMs: Int64
    public var revokedAtMs: Int64?

    public init(id: String, name: String, role: OperatorRole, team: String?, hash: String, createdAtMs: Int64, revokedAtMs: Int64? = nil) {
        self.id = id
        self.name = name
        self.role = role
        self.team = team
        self.hash = hash
        self.createdAtMs = createdAtMs
        self.revokedAtMs = revokedAtMs
    }

    public static let prefix = "gmo_"

    /// The stored document (with the hash).
    public var stored: String {
        var out = "{\"id\":\(JSON.quoted(id)),\"name\":\(JSON.quoted(name)),\"role\":\"\(role.rawValue)\","
        out += "\"team\":" + (team.map(JSON.quoted) ?? "null") + ",\"hash\":\(JSON.quoted(hash)),\"created_ms\":\(createdAtMs)"
        if let r = revokedAtMs { out += ",\"revoked_ms\":\(r)" }
        return out + "}"
    }

    /// As the API shows it (no hash).
    public var shown: String {
        "{\"id\":\(JSON.quoted(id)),\"name\":\(JSON.quoted(name)),\"role\":\"\(role.rawValue)\",\"team\":" + (team.map(JSON.quoted) ?? "null")
            + ",\"created_at\":\(JSON.quoted(Timestamps.iso(createdAtMs))),\"revoked_at\":" + (revokedAtMs.map { JSON.quoted(Timestamps.iso($0)) } ?? "null") + "}"
    }

    public static func parse(stored text: String) -> OperatorToken? {
        guard case .object(let o)? = JSONValue.parse(text), let id = o["id"]?.stringValue, let role = o["role"]?.stringValue.flatMap(OperatorRole.init),
              let hash = o["hash"]?.stringValue, let created = o["created_ms"]?.intValue else { return nil }
        // A team_admin without a team would see every team's figures: not a token.
        if role == .teamAdmin, o["team"]?.stringValue == nil { return nil }
        return OperatorToken(id: id, name: o["name"]?.stringValue ?? "", role: role, team: o["team"]?.stringValue, hash: hash,
                             createdAtMs: Int64(created), revokedAtMs: o["revoked_ms"]?.intValue.map(Int64.init))
    }
}

/// One change made through the admin API: who, what, before and after, when, on which node.
public struct AuditEntry: Sendable, Equatable {
    /// A UUIDv7: entries sort by time.
    public var id: String
    public var atMs: Int64
    public var node: String
    /// `root` (the config's admin token) or `token:ID`.
    public var actor: String
    /// `POST /api/keys`, `DELETE /api/rules/daily`, …
    public var action: String
    /// The JSON documents before and after (nil for none); secrets are never in them.
    public var before: String?
    public var after: String?
    /// The team the change concerns, when it concerns one (what a `team_admin` may read).
    public var team: String?

    public init(id: String, atMs: Int64, node: String, actor: String, action: String, before: String?, after: String?, team: String? = nil) {
        self.id = id
        self.atMs = atMs
        self.node = node
        self.actor = actor
        self.action = action
        self.before = before
        self.after = after
        self.team = team
    }

    public var json: String {
        "{\"id\":\(JSON.quoted(id)),\"time\":\(JSON.quoted(Timestamps.iso(atMs))),\"ts_ms\":\(atMs),\"node\":\(JSON.quoted(node)),"
            + "\"actor\":\(JSON.quoted(actor)),\"action\":\(JSON.quoted(action)),\"team\":" + (team.map(JSON.quoted) ?? "null")
            + ",\"before\":\(before ?? "null"),\"after\":\(after ?? "null")}"
    }

    public static func parse(_ text: String) -> AuditEntry? {
        guard case .object(let o)? = JSONValue.parse(text), let id = o["id"]?.stringValue, let at = o["ts_ms"]?.intValue,
              let node = o["node"]?.stringValue, let actor = o["actor"]?.stringValue, let action = o["action"]?.stringValue else { return nil }
        func doc(_ key: String) -> String? {
            guard let v = o[key], !v.isNull else { return nil }
            var out = ""
            v.write(to: &out)
            return out
        }
        return AuditEntry(id: id, atMs: Int64(at), node: node, actor: actor, action: action, before: doc("before"), after: doc("after"),
                          team: o["team"]?.stringValue)
    }
}

/// What an admin record's id names: an org, team or key, an operator token, an audit entry, or
/// (nil) a limit rule.
public enum AdminRecordID: Sendable, Equatable {
    case entity(EntityKind, String)
    case token(String)
    case audit(String)

    public static func parse(_ recordID: String) -> AdminRecordID? {
        if let (kind, id) = EntityKind.parse(recordID: recordID) { return .entity(kind, id) }
        if recordID.hasPrefix("token:") { return .token(String(recordID.dropFirst(6))) }
        if recordID.hasPrefix("audit:") { return .audit(String(recordID.dropFirst(6))) }
        return nil
    }
}
