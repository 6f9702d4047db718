/// Every org, team and virtual key a node knows, with the secrets' hashes indexed for a lookup
/// per request (a hash-table read: no SQLite, no network). Built from the replicated records;
/// pure.
public struct KeyDirectory: Sendable {
    public private(set) var orgs: [String: Org] = [:]
    public private(set) var teams: [String: Team] = [:]
    public private(set) var keys: [String: VirtualKey] = [:]
    /// Secret hash → key id.
    private var byHash: [String: String] = [:]
    public private(set) var tokens: [String: OperatorToken] = [:]
    private var tokenByHash: [String: String] = [:]
    /// The audit log, by entry id (UUIDv7: in time order when sorted).
    public private(set) var audit: [String: AuditEntry] = [:]

    public init() {}

    public mutating func put(_ token: OperatorToken) {
        if let old = tokens[token.id], tokenByHash[old.hash] == token.id { tokenByHash[old.hash] = nil }
        tokens[token.id] = token
        tokenByHash[token.hash] = token.id
    }

    public mutating func removeToken(_ id: String) {
        if let old = tokens.removeValue(forKey: id), tokenByHash[old.hash] == id { tokenByHash[old.hash] = nil }
    }

    /// The operator token whose secret hashes to `hash`, unless revoked.
    public func operatorToken(hash: String) -> OperatorToken? {
        guard let id = tokenByHash[hash], let token = tokens[id], token.revokedAtMs == nil else { return nil }
        return token
    }

    public mutating func put(_ entry: AuditEntry) { audit[entry.id] = entry }

    public var isEmpty: Bool { keys.isEmpty && teams.isEmpty && orgs.isEmpty }

    public mutating func put(_ org: Org) { orgs[org.id] = org }
    public mutating func put(_ team: Team) { teams[team.id] = team }

    public mutating func put(_ key: VirtualKey) {
        if let old = keys[key.id] { for s in old.secrets where byHash[s.hash] == key.id { byHash[s.hash] = nil } }
        keys[key.id] = key
        for s in key.secrets { byHash[s.hash] = key.id }
    }

    public mutating func remove(_ kind: EntityKind, id: String) {
        switch kind {
        case .org: orgs[id] = nil
        case .team: teams[id] = nil
        case .key:
            if let old = keys.removeValue(forKey: id) { for s in old.secrets where byHash[s.hash] == id { byHash[s.hash] = nil } }
        }
    }

    /// Who a request with a key is: the key, its team and org, the metadata they attach and
    /// their policies (key, team, org). For a name set at more than one level the higher one
    /// wins (the org's over the team's over the key's): whoever manages a team's keys cannot
    /// override what its org or team says.
    public struct Caller: Sendable {
        public var key: VirtualKey
        public var team: Team
        public var org: Org
        public var metadata: [(String, String)] {
            var out: [(String, String)] = []
            for (name, value) in org.policy.metadata + team.policy.metadata + key.policy.metadata
                where !out.contains(where: { $0.0 == name }) {
                out.append((name, value))
            }
            return out
        }
    }

    /// Why a key is refused (`401`).
    public enum Refusal: Error, Equatable, Sendable {
        case unknown
        case revoked(key: String)
        case rotatedOut(key: String)
        case expired(EntityKind, String)
        case disabled(EntityKind, String)
        /// The key's team, or the team's org, no longer exists.
        case orphaned(EntityKind, String)

        public var code: String {
            switch self {
            case .unknown: return "unknown_key"
            case .revoked: return "revoked_key"
            case .rotatedOut: return "rotated_key"
            case .expired: return "expired_key"
            case .disabled: return "disabled_key"
            case .orphaned: return "orphaned_key"
            }
        }

        public var message: String {
            switch self {
            case .unknown: return "unknown virtual key: no key has this secret (it may have been mistyped, or made on a node this one has not heard from yet)"
            case .revoked(let id): return "virtual key '\(id)' was revoked"
            case .rotatedOut(let id): return "this secret of virtual key '\(id)' was rotated out and its grace period is over: use the new secret"
            case .expired(let kind, let id):
                return kind == .key ? "virtual key '\(id)' has expired" : "the key's \(kind.rawValue) '\(id)' has expired"
            case .disabled(let kind, let id):
                return kind == .key ? "virtual key '\(id)' is disabled" : "the key's \(kind.rawValue) '\(id)' is disabled"
            case .orphaned(let kind, let id): return "the key's \(kind.rawValue) '\(id)' does not exist (any more)"
            }
        }
    }

    /// The caller whose key has the secret hashing to `hash`, at `now` (Unix ms).
    public func authenticate(hash: String, now: Int64) -> Result<Caller, Refusal> {
        guard let id = byHash[hash], let key = keys[id], let secret = key.secrets.first(where: { $0.hash == hash }) else {
            return .failure(.unknown)
        }
        if key.revokedAtMs != nil { return .failure(.revoked(key: id)) }
        if let until = secret.validUntilMs, until <= now { return .failure(.rotatedOut(key: id)) }
        guard let team = teams[key.team] else { return .failure(.orphaned(.team, key.team)) }
        guard let org = orgs[team.org] else { return .failure(.orphaned(.org, team.org)) }
        for (kind, entityID, policy) in [(EntityKind.key, id, key.policy), (.team, team.id, team.policy), (.org, org.id, org.policy)] {
            if policy.disabled { return .failure(.disabled(kind, entityID)) }
            if let expires = policy.expiresAtMs, expires <= now { return .failure(.expired(kind, entityID)) }
        }
        return .success(Caller(key: key, team: team, org: org))
    }

    /// Why the caller may not use `model` of `provider` on `gateway` (`403`), or nil when it may:
    /// every one of key, team and org must allow it.
    public static func denial(_ caller: Caller, gateway: String, provider: String, model: String?) -> String? {
        for (kind, id, policy) in [(EntityKind.key, caller.key.id, caller.key.policy), (.team, caller.team.id, caller.team.policy),
                                   (.org, caller.org.id, caller.org.policy)] {
            if !policy.gateways.isEmpty, !policy.gateways.contains(gateway) {
                return "\(kind.rawValue) '\(id)' may not use gateway '\(gateway)' (allowed: \(policy.gateways.joined(separator: ", ")))"
            }
            guard !policy.models.isEmpty else { continue }
            guard let model else {
                return "\(kind.rawValue) '\(id)' may use only some models, and this request names none the gateway can read"
            }
            let full = "\(provider)/\(model)"
            let allowed = policy.models.contains { pattern in
                pattern.contains("/") ? Glob.matches(pattern, full) : Glob.matches(pattern, model)
            }
            if !allowed {
                return "\(kind.rawValue) '\(id)' may not use \(full) (allowed: \(policy.models.joined(separator: ", ")))"
            }
        }
        return nil
    }

    /// Every entity's budgets and rate limits as rules in force on every gateway: rule `R` of
    /// key `K` becomes `key:K:R`, scoped to requests with that key first (so the engine finds a
    /// key's rules by one hash lookup among 10,000 keys' rules), then by the rule's own scope.
    public var rules: [LimitRule] {
        var out: [LimitRule] = []
        func add(_ kind: EntityKind, _ id: String, _ policy: EntityPolicy, _ dimension: LimitRule.Dimension) {
            for var rule in policy.rules {
                rule.id = "\(kind.rawValue):\(id):\(rule.id)"
                rule.gateway = LimitRule.anyGateway
                rule.scope = [.only(dimension, id)] + rule.scope
                out.append(rule)
            }
        }
        for id in orgs.keys.sorted() { add(.org, id, orgs[id]!.policy, .org) }
        for id in teams.keys.sorted() { add(.team, id, teams[id]!.policy, .team) }
        for id in keys.keys.sorted() where keys[id]!.revokedAtMs == nil { add(.key, id, keys[id]!.policy, .key) }
        return out
    }
}
