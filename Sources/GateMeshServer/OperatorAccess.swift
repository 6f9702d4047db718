import GateMeshCore
import HTTPTypes
import Hummingbird

/// Who calls the operator API, and what they may do: the config's admin token (`root`, every
/// endpoint), or an operator token made through `POST /api/tokens` with a role (docs/keys.md).
struct Operator: Sendable {
    /// `root`, or `token:ID`.
    var actor: String
    var role: OperatorRole
    /// A `team_admin`'s team.
    var team: String?

    static let root = Operator(actor: "root", role: .admin, team: nil)
}

extension OperatorAPI {
    /// The caller of an operator endpoint, from `Authorization: Bearer …`: the config's admin
    /// token (compared in constant time), or an operator token's secret (looked up by hash).
    func identify(_ request: Request) throws(GatewayError) -> Operator {
        // Without the config's admin token the whole operator API is off, operator tokens included.
        guard let root = state.config.admin.token else { throw Self.disabled }
        guard let header = request.headers[.authorization] else {
            throw GatewayError.unauthorized("missing admin token: send Authorization: Bearer <admin token>", code: "missing_admin_token")
        }
        guard let presented = TokenCheck.bearerToken(header) else {
            throw GatewayError.unauthorized("wrong admin token", code: "invalid_admin_token")
        }
        if presented.hasPrefix(OperatorToken.prefix) {
            let hash = LimitsService.secretHash(String(presented))
            if let token = limits.directory.withLockedValue({ $0.operatorToken(hash: hash) }) {
                return Operator(actor: "token:\(token.id)", role: token.role, team: token.team)
            }
        }
        guard TokenCheck.constantTimeEquals(presented, root) else {
            throw GatewayError.unauthorized("wrong admin token", code: "invalid_admin_token")
        }
        return .root
    }

    static let disabled = GatewayError.unauthorized(
        "the operator API is disabled: set admin.token in the config (or GATEMESH_ADMIN_TOKEN when running without one)", code: "admin_disabled")

    static func forbidden(_ message: String) -> GatewayError {
        GatewayError(status: 403, type: "permission_error", code: "forbidden", message: message)
    }

    /// Refuses what the caller's role does not allow (`403`); a `team_admin`'s own-team checks on
    /// keys, logs, budgets and the audit log are made where those are read.
    func authorize(_ op: Operator, path: String, method: HTTPRequest.Method) throws(GatewayError) {
        let reading = method == .get || method == .head
        switch op.role {
        case .admin:
            return
        case .viewer:
            guard reading else { throw Self.forbidden("viewer tokens are read-only") }
            guard !path.hasPrefix("/api/tokens") else { throw Self.forbidden("only admins see operator tokens") }
        case .teamAdmin:
            let team = op.team ?? ""
            if path.hasPrefix("/api/keys") { return }
            if reading, ["/api/logs", "/api/analytics", "/api/budgets", "/api/audit"].contains(where: { path == $0 || path.hasPrefix($0 + "/") }) {
                return
            }
            if reading, path == "/api/teams/\(team)" { return }
            throw Self.forbidden("a team_admin token of team '\(team)' manages that team's keys and reads its logs, analytics, budgets and audit entries only")
        }
    }

    /// A `team_admin` acts on keys of its own team only.
    func requireTeam(_ op: Operator, key id: String) throws(GatewayError) {
        guard op.role == .teamAdmin else { return }
        let team = limits.directory.withLockedValue { $0.keys[id]?.team }
        guard let team, team == op.team else {
            throw Self.forbidden("key '\(id)' is not a key of team '\(op.team ?? "")'")
        }
    }
}
