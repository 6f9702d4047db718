import CGateMeshOpenSSL
import GateMeshConfig
import GateMeshCore
import GateMeshStore
import Logging

/// The admin API for orgs, teams and virtual keys (`/api/orgs`, `/api/teams`, `/api/keys`):
/// create, read, replace, delete (a key is revoked, and says so when used), and rotate a key's
/// secret. Each change is written to SQLite as a record beside the admin-API rules and
/// replicated with them, so every node holds the same directory; the budgets and rate limits
/// of each entity are put in force with it (docs/keys.md).
extension LimitsService {
    /// The most a rotated-out secret may stay valid.
    static let maxGraceMs: Int64 = 30 * 86_400_000

    /// Puts what an admin record other than a rule holds (an org, team, key, operator token or
    /// audit entry) in the directory.
    @discardableResult
    static func install(_ record: RuleRecord, into directory: inout KeyDirectory, logger: Logger) -> Bool {
        switch AdminRecordID.parse(record.id) {
        case .entity(let kind, let id)?:
            return install(record, kind: kind, id: id, into: &directory, logger: logger)
        case .token(let id)?:
            if record.deleted { directory.removeToken(id); return true }
            guard let token = OperatorToken.parse(stored: record.definition) else {
                logger.warning("an operator token record cannot be read and is left out", metadata: ["record": "\(record.id)"])
                directory.removeToken(id)
                return false
            }
            directory.put(token)
            return true
        case .audit?:
            guard let entry = AuditEntry.parse(record.definition) else { return false }
            directory.put(entry)
            return true
        case nil:
            return false
        }
    }

    /// Puts the entity of `record` in the directory (or takes it out for a tombstone). A record
    /// this build cannot read is logged and left out.
    @discardableResult
    static func install(_ record: RuleRecord, kind: EntityKind, id: String, into directory: inout KeyDirectory, logger: Logger) -> Bool {
        if record.deleted {
            directory.remove(kind, id: id)
            return true
        }
        do {
            let p = try EntityDocument.parse(record.definition, kind: kind, stored: true)
            switch kind {
            case .org: directory.put(Org(id: id, policy: p.policy))
            case .team: directory.put(Team(id: id, org: p.org ?? "", policy: p.policy))
            case .key:
                directory.put(VirtualKey(id: id, team: p.team ?? "", name: p.name ?? "", secrets: p.secrets,
                                         hint: p.hint ?? "", createdAtMs: p.createdMs ?? record.createdTs, revokedAtMs: p.revokedMs,
                                         policy: p.policy))
            }
        } catch {
            logger.warning("an org, team or key record cannot be read and is left out", metadata: ["record": "\(record.id)", "error": "\(error)"])
            // Fail closed: an older version must not stay in force (a revoke this build cannot read).
            directory.remove(kind, id: id)
            return false
        }
        return true
    }

    // MARK: - Reads

    func entityList(_ kind: EntityKind, team: String? = nil) -> String {
        let d = directory.withLockedValue { $0 }
        let items: [String]
        switch kind {
        case .org: items = d.orgs.keys.sorted().map { EntityDocument.json(d.orgs[$0]!) }
        case .team: items = d.teams.keys.sorted().map { EntityDocument.json(d.teams[$0]!) }
        case .key:
            items = d.keys.values.filter { team == nil || $0.team == team }.sorted { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) }
                .map { EntityDocument.json($0, stored: false) }
        }
        return "{\"count\":\(items.count),\"\(kind.rawValue)s\":[\(items.joined(separator: ","))]}"
    }

    func entityDocument(_ kind: EntityKind, id: String) throws(GatewayError) -> String {
        let d = directory.withLockedValue { $0 }
        switch kind {
        case .org: if let o = d.orgs[id] { return EntityDocument.json(o) }
        case .team: if let t = d.teams[id] { return EntityDocument.json(t) }
        case .key: if let k = d.keys[id] { return EntityDocument.json(k, stored: false) }
        }
        throw GatewayError.notFound("no \(kind.rawValue) with id '\(id)'")
    }

    // MARK: - Changes

    /// Creates an org or a team from `text`. 409 when the id is taken.
    func createEntity(_ kind: EntityKind, _ text: String) throws(GatewayError) -> String {
        let p = try parseEntity(text, kind: kind)
        guard let id = p.id else { throw GatewayError.badRequest("'id' is required", code: "invalid_entity") }
        return try write(kind, id: id, p, creating: true).body
    }

    /// Replaces org or team `id` (created when missing). Returns whether it was created.
    func putEntity(_ kind: EntityKind, id: String, _ text: String) throws(GatewayError) -> (created: Bool, body: String) {
        let p = try parseEntity(text, kind: kind)
        if let given = p.id, given != id {
            throw GatewayError.badRequest("the id '\(given)' differs from the id in the path '\(id)'", code: "invalid_entity")
        }
        return try write(kind, id: id, p, creating: false)
    }

    /// Writes org or team `id` from its parsed document (`creating`: refused when it exists).
    private func write(_ kind: EntityKind, id: String, _ p: EntityDocument.Parsed, creating: Bool) throws(GatewayError) -> (created: Bool, body: String) {
        try change { a throws(GatewayError) in
            try checkParent(kind, p, in: a.directory)
            let existed = kind == .org ? a.directory.orgs[id] != nil : a.directory.teams[id] != nil
            if creating, existed {
                throw Self.entityConflict("\(kind.rawValue) '\(id)' exists; replace it with PUT /api/\(kind.rawValue)s/\(id)")
            }
            let document = kind == .org ? EntityDocument.json(Org(id: id, policy: p.policy))
                : EntityDocument.json(Team(id: id, org: p.org!, policy: p.policy))
            try store(kind, id: id, document: document, into: &a)
            return (!existed, document)
        }
    }

    /// Deletes org or team `id`: refused while it has teams or keys that are not revoked.
    func deleteEntity(_ kind: EntityKind, id: String) throws(GatewayError) -> String {
        try change { a throws(GatewayError) in
            switch kind {
            case .org:
                guard a.directory.orgs[id] != nil else { throw GatewayError.notFound("no org with id '\(id)'") }
                let teams = a.directory.teams.values.filter { $0.org == id }.map(\.id).sorted()
                guard teams.isEmpty else {
                    throw Self.entityConflict("org '\(id)' has teams (\(teams.joined(separator: ", "))): delete them first")
                }
            case .team:
                guard a.directory.teams[id] != nil else { throw GatewayError.notFound("no team with id '\(id)'") }
                let keys = a.directory.keys.values.filter { $0.team == id && $0.revokedAtMs == nil }.map(\.id).sorted()
                guard keys.isEmpty else {
                    throw Self.entityConflict("team '\(id)' has keys that are not revoked (\(keys.joined(separator: ", "))): revoke them first")
                }
            case .key:
                preconditionFailure("keys are revoked, not deleted")
            }
            let now = Self.now()
            let recordID = kind.recordID(id)
            let ts = RuleRecord.nextVersion(now: now, after: a.records.byID[recordID])
            let tombstone = RuleRecord(id: recordID, gateway: "", definition: "", createdTs: ts, updatedTs: ts, origin: nodeName, deleted: true)
            try save([tombstone], forgetSpend: [], into: &a)
            a.directory.remove(kind, id: id)
            return AdminJSON.encode(AdminAnswer.Deleted(deleted: id))
        }
    }

    /// Makes a key in its team; returns its document with `key`, the secret, shown this once.
    /// A `team_admin` of `team` may make and change keys of that team only, and may not let a
    /// key price its own requests (`allow_custom_cost`: that would spend past every budget).
    static func checkTeamAdmin(_ p: EntityDocument.Parsed, team: String?, current: VirtualKey? = nil) throws(GatewayError) {
        guard let team else { return }
        if let given = p.team, given != team {
            throw GatewayError(status: 403, type: "permission_error", code: "forbidden",
                               message: "a team_admin token of team '\(team)' makes and changes keys of that team only")
        }
        if p.policy.allowCustomCost != (current?.policy.allowCustomCost ?? false) {
            throw GatewayError(status: 403, type: "permission_error", code: "forbidden",
                               message: "only an admin may change a key's allow_custom_cost")
        }
    }

    func createKey(_ text: String, teamAdminOf team: String? = nil) throws(GatewayError) -> String {
        let p = try parseEntity(text, kind: .key)
        guard p.team != nil else { throw GatewayError.badRequest("'team' is required: the team the key belongs to", code: "invalid_entity") }
        try Self.checkTeamAdmin(p, team: team)
        let (secret, hash) = Self.newSecret()
        let now = Self.now()
        return try change { a throws(GatewayError) in
            try checkParent(.key, p, in: a.directory)
            var id = p.id ?? Self.newKeyID()
            if p.id == nil { while a.directory.keys[id] != nil { id = Self.newKeyID() } }
            guard a.directory.keys[id] == nil else { throw Self.entityConflict("key '\(id)' exists") }
            let key = VirtualKey(id: id, team: p.team!, name: p.name ?? "", secrets: [.init(hash: hash)], hint: Self.hint(secret),
                                 createdAtMs: now, policy: p.policy)
            try store(key, into: &a)
            return String(EntityDocument.json(key, stored: false).dropLast()) + ",\"key\":\(JSON.quoted(secret))}"
        }
    }

    /// Replaces key `id`'s settings (its secrets, creation time and revoke stay).
    func putKey(id: String, _ text: String, teamAdminOf team: String? = nil) throws(GatewayError) -> String {
        let p = try parseEntity(text, kind: .key)
        if let given = p.id, given != id {
            throw GatewayError.badRequest("the id '\(given)' differs from the id in the path '\(id)'", code: "invalid_entity")
        }
        return try change { a throws(GatewayError) in
            guard var key = a.directory.keys[id] else { throw GatewayError.notFound("no key with id '\(id)' (make one with POST /api/keys)") }
            // A revoked key stays revoked: a change here must not write a version without the revoke.
            guard key.revokedAtMs == nil else { throw Self.entityConflict("key '\(id)' is revoked: make a new one") }
            if let team { guard key.team == team else { throw GatewayError(status: 403, type: "permission_error", code: "forbidden",
                                                                           message: "key '\(id)' is not a key of team '\(team)'") } }
            try Self.checkTeamAdmin(p, team: team, current: key)
            try checkParent(.key, p, in: a.directory)
            key.team = p.team ?? key.team
            if let name = p.name { key.name = name }
            key.policy = p.policy
            try store(key, into: &a)
            return EntityDocument.json(key, stored: false)
        }
    }

    /// Revokes key `id`: from now on it is refused with `revoked_key` on every node.
    func revokeKey(id: String) throws(GatewayError) -> String {
        try change { a throws(GatewayError) in
            guard var key = a.directory.keys[id] else { throw GatewayError.notFound("no key with id '\(id)'") }
            if key.revokedAtMs == nil { key.revokedAtMs = Self.now() }
            try store(key, into: &a)
            return EntityDocument.json(key, stored: false)
        }
    }

    /// A new secret for key `id`; the current one stays valid for `graceMs` (0: stops at once).
    func rotateKey(id: String, graceMs: Int64) throws(GatewayError) -> String {
        guard (0...Self.maxGraceMs).contains(graceMs) else {
            throw GatewayError.badRequest("grace must be between 0s and 30d", code: "invalid_entity")
        }
        let (secret, hash) = Self.newSecret()
        let now = Self.now()
        return try change { a throws(GatewayError) in
            guard var key = a.directory.keys[id] else { throw GatewayError.notFound("no key with id '\(id)'") }
            guard key.revokedAtMs == nil else { throw Self.entityConflict("key '\(id)' is revoked: make a new one") }
            // Secrets rotated out earlier keep their end (or lose it now, if sooner); the current one gets the grace.
            key.secrets = key.secrets.compactMap { s in
                let until = min(s.validUntilMs ?? (now + graceMs), now + graceMs)
                return until > now ? VirtualKey.Secret(hash: s.hash, validUntilMs: until) : nil
            } + [.init(hash: hash)]
            key.hint = Self.hint(secret)
            try store(key, into: &a)
            return String(EntityDocument.json(key, stored: false).dropLast()) + ",\"key\":\(JSON.quoted(secret))}"
        }
    }

    // MARK: -

    private func parseEntity(_ text: String, kind: EntityKind) throws(GatewayError) -> EntityDocument.Parsed {
        do {
            return try EntityDocument.parse(text, kind: kind)
        } catch {
            var e = GatewayError.badRequest(error.key.isEmpty ? error.message : "'\(error.key)': \(error.message)", code: "invalid_entity")
            if !error.key.isEmpty { e.details = [("key", JSON.quoted(error.key))] }
            throw e
        }
    }

    /// A team's org and a key's team must exist.
    private func checkParent(_ kind: EntityKind, _ p: EntityDocument.Parsed, in d: KeyDirectory) throws(GatewayError) {
        switch kind {
        case .org: break
        case .team:
            guard let org = p.org else { throw GatewayError.badRequest("'org' is required: the org the team belongs to", code: "invalid_entity") }
            guard d.orgs[org] != nil else { throw GatewayError.badRequest("no org '\(org)': make it first (POST /api/orgs)", code: "invalid_entity") }
        case .key:
            if let team = p.team, d.teams[team] == nil {
                throw GatewayError.badRequest("no team '\(team)': make it first (POST /api/teams)", code: "invalid_entity")
            }
        }
    }

    private func store(_ kind: EntityKind, id: String, document: String, into a: inout AdminRules) throws(GatewayError) {
        try storeRecord(kind.recordID(id), document: document, into: &a)
    }

    /// Writes the admin record `recordID` (not a rule) and puts what it holds in the directory.
    func storeRecord(_ recordID: String, document: String, into a: inout AdminRules) throws(GatewayError) {
        let now = Self.now()
        let ts = RuleRecord.nextVersion(now: now, after: a.records.byID[recordID])
        let created = a.records.byID[recordID].flatMap { $0.deleted ? nil : $0.createdTs } ?? ts
        let record = RuleRecord(id: recordID, gateway: "", definition: document, createdTs: created, updatedTs: ts, origin: nodeName)
        // What this node writes it must read back; checked before anything is stored.
        var check = a.directory
        guard Self.install(record, into: &check, logger: logger) else {
            throw GatewayError.internalError("the document this node wrote for '\(recordID)' does not read back; nothing was changed")
        }
        try save([record], forgetSpend: [], into: &a)
        a.directory = check
    }

    private func store(_ key: VirtualKey, into a: inout AdminRules) throws(GatewayError) {
        try store(.key, id: key.id, document: EntityDocument.json(key, stored: true), into: &a)
    }

    static func entityConflict(_ message: String) -> GatewayError {
        GatewayError(status: 409, type: "invalid_request_error", code: "entity_conflict", message: message)
    }

    /// `gmk_` and 40 base-62 characters (238 bits) from the system's secure generator, and its hash.
    static func newSecret(prefix: String = VirtualKey.prefix) -> (secret: String, hash: String) {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var rng = SystemRandomNumberGenerator()
        let body = (0..<40).map { _ in alphabet[Int(rng.next(upperBound: UInt64(alphabet.count)))] }
        let secret = prefix + String(decoding: body, as: UTF8.self)
        return (secret, secretHash(secret))
    }

    static func newKeyID() -> String { newID("key-") }

    static func newID(_ prefix: String) -> String {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        return prefix + String(decoding: (0..<10).map { _ in alphabet[Int(rng.next(upperBound: UInt64(alphabet.count)))] }, as: UTF8.self)
    }

    /// The lowercase hex SHA-256 of a secret (what is stored, and what the request path looks up).
    static func secretHash(_ secret: String) -> String {
        ResponseCache.key(Array(secret.utf8))
    }

    static func hint(_ secret: String) -> String { String(secret.prefix(8)) + "…" }
}

// MARK: - Operator tokens and the audit log

extension LimitsService {
    /// Makes an operator token from `{"role": "admin" | "team_admin" | "viewer", "team": …,
    /// "name": …}`; returns it with `token`, the secret, shown this once.
    func createToken(_ text: String) throws(GatewayError) -> String {
        guard case .object(let o)? = JSONValue.parse(text) else {
            throw GatewayError.badRequest("the body is a JSON object such as {\"role\": \"viewer\", \"name\": \"grafana\"}", code: "invalid_token")
        }
        for key in o.keys where !["role", "team", "name"].contains(key) {
            throw GatewayError.badRequest("unknown key '\(key)'; expected role, team, name", code: "invalid_token")
        }
        guard let roleText = o["role"]?.stringValue, let role = OperatorRole(rawValue: roleText) else {
            throw GatewayError.badRequest("'role' is one of admin, team_admin, viewer", code: "invalid_token")
        }
        let team = o["team"]?.stringValue
        if role == .teamAdmin, team == nil {
            throw GatewayError.badRequest("a team_admin token needs 'team'", code: "invalid_token")
        }
        if role != .teamAdmin, team != nil {
            throw GatewayError.badRequest("only a team_admin token has a 'team'", code: "invalid_token")
        }
        let name = o["name"]?.stringValue ?? ""
        guard name.utf8.count <= 128 else { throw GatewayError.badRequest("'name' is at most 128 bytes", code: "invalid_token") }
        let (secret, hash) = Self.newSecret(prefix: OperatorToken.prefix)
        let now = Self.now()
        return try change { a throws(GatewayError) in
            if let team, a.directory.teams[team] == nil {
                throw GatewayError.badRequest("no team '\(team)': make it first (POST /api/teams)", code: "invalid_token")
            }
            var id = Self.newID("tok-")
            while a.directory.tokens[id] != nil { id = Self.newID("tok-") }
            let token = OperatorToken(id: id, name: name, role: role, team: team, hash: hash, createdAtMs: now)
            try storeRecord("token:\(id)", document: token.stored, into: &a)
            return String(token.shown.dropLast()) + ",\"token\":\(JSON.quoted(secret))}"
        }
    }

    func tokenList() -> String {
        let tokens = directory.withLockedValue { $0.tokens.values.sorted { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) } }
        return "{\"count\":\(tokens.count),\"tokens\":[\(tokens.map(\.shown).joined(separator: ","))]}"
    }

    /// Revokes operator token `id`: refused on every node from then on.
    func revokeToken(id: String) throws(GatewayError) -> String {
        try change { a throws(GatewayError) in
            guard var token = a.directory.tokens[id] else { throw GatewayError.notFound("no operator token with id '\(id)'") }
            if token.revokedAtMs == nil { token.revokedAtMs = Self.now() }
            try storeRecord("token:\(id)", document: token.stored, into: &a)
            return token.shown
        }
    }

    /// Records one change made through the admin API (replicated to every node).
    func audit(_ entry: AuditEntry) {
        do {
            try change { a throws(GatewayError) in
                try storeRecord("audit:\(entry.id)", document: entry.json, into: &a)
            }
        } catch {
            logger.error("cannot write an audit entry", metadata: ["action": "\(entry.action)", "error": "\(error.message)"])
        }
    }

    /// The audit log, newest first, `limit` entries before `cursor` (an entry id); with `team`,
    /// only that team's entries.
    func auditLog(limit: Int, cursor: String?, team: String?) -> String {
        let all = directory.withLockedValue { Array($0.audit.values) }
        let entries = all.filter { (cursor == nil || $0.id < cursor!) && (team == nil || $0.team == team) }.sorted { $0.id > $1.id }
        let page = entries.prefix(limit)
        let next = entries.count > limit ? page.last.map { JSON.quoted($0.id) } ?? "null" : "null"
        return "{\"data\":[\(page.map(\.json).joined(separator: ","))],\"next_cursor\":\(next)}"
    }
}
