/// Orgs, teams and virtual keys: who spends, under which budgets and with which models. Made
/// through the admin API on any node and replicated to every node as `RuleRecord`s whose id is
/// `org:ID`, `team:ID` or `key:ID` (rule ids cannot contain `:`), so they travel, merge and
/// heal exactly as admin-API rules do. Pure.
public enum EntityKind: String, Sendable, CaseIterable {
    case org, team, key

    /// The record id of the entity `id` of this kind.
    public func recordID(_ id: String) -> String { "\(rawValue):\(id)" }

    /// The kind and entity id of a record id, or nil for a rule's.
    public static func parse(recordID: String) -> (EntityKind, String)? {
        guard let colon = recordID.firstIndex(of: ":"), let kind = EntityKind(rawValue: String(recordID[..<colon])) else { return nil }
        return (kind, String(recordID[recordID.index(after: colon)...]))
    }
}

/// What an org, a team and a key may each carry: limits, allowed models and gateways, an
/// expiry, a disabled flag and metadata attached to every request made under it.
public struct EntityPolicy: Sendable, Equatable {
    /// Budgets and rate limits, on every gateway (`LimitRule.anyGateway`), as written: the
    /// directory scopes them to the entity when it puts them in force.
    public var rules: [LimitRule] = []
    /// `provider/model` glob patterns (`openai/*`, `anthropic/claude-*`); empty allows every one.
    public var models: [String] = []
    /// Gateway ids; empty allows every one.
    public var gateways: [String] = []
    /// Unix ms; nil never expires.
    public var expiresAtMs: Int64?
    public var disabled = false
    /// A key's requests may price themselves with `x-gatemesh-custom-cost` (keys only).
    public var allowCustomCost = false
    /// Name → value, in the order given.
    public var metadata: [(String, String)] = []

    public init() {}

    public static func == (a: EntityPolicy, b: EntityPolicy) -> Bool {
        a.rules == b.rules && a.models == b.models && a.gateways == b.gateways && a.expiresAtMs == b.expiresAtMs
            && a.disabled == b.disabled && a.allowCustomCost == b.allowCustomCost && a.metadata.elementsEqual(b.metadata, by: ==)
    }
}

public struct Org: Sendable, Equatable {
    public var id: String
    public var policy: EntityPolicy
    public init(id: String, policy: EntityPolicy = EntityPolicy()) {
        self.id = id
        self.policy = policy
    }
}

public struct Team: Sendable, Equatable {
    public var id: String
    public var org: String
    public var policy: EntityPolicy
    public init(id: String, org: String, policy: EntityPolicy = EntityPolicy()) {
        self.id = id
        self.org = org
        self.policy = policy
    }
}

/// A virtual key: a secret (`gmk_…`) that clients present instead of a provider key. Only the
/// SHA-256 of a secret is kept. A rotated key keeps its previous secret until `validUntilMs`.
public struct VirtualKey: Sendable, Equatable {
    public struct Secret: Sendable, Equatable {
        /// Lowercase hex SHA-256 of the secret.
        public var hash: String
        /// Unix ms after which the secret no longer works (a rotated-out secret); nil: current.
        public var validUntilMs: Int64?
        public init(hash: String, validUntilMs: Int64? = nil) {
            self.hash = hash
            self.validUntilMs = validUntilMs
        }
    }

    public var id: String
    public var team: String
    public var name: String
    public var secrets: [Secret]
    /// The first characters of the current secret (`gmk_AbC1`), to tell keys apart in lists.
    public var hint: String
    public var createdAtMs: Int64
    /// Unix ms of the revoke; a revoked key is refused, and says so.
    public var revokedAtMs: Int64?
    public var policy: EntityPolicy

    public init(id: String, team: String, name: String, secrets: [Secret], hint: String, createdAtMs: Int64,
                revokedAtMs: Int64? = nil, policy: EntityPolicy = EntityPolicy()) {
        self.id = id
        self.team = team
        self.name = name
        self.secrets = secrets
        self.hint = hint
        self.createdAtMs = createdAtMs
        self.revokedAtMs = revokedAtMs
        self.policy = policy
    }

    /// Secrets start with this, so a gateway tells them from provider keys at a glance.
    public static let prefix = "gmk_"
}

/// `*` matches any run of characters (`/` included), everything else itself.
public enum Glob {
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(text.utf8)
        var pi = 0, ti = 0
        var star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] != UInt8(ascii: "*"), p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

/// Who a request is from, for its limits and its log row: the virtual key it authenticated with
/// and that key's team and org (never from a header), and the end user it says it is for.
public struct Principal: Sendable, Equatable {
    public var key: String?
    public var team: String?
    public var org: String?
    public var user: String?
    public init(key: String? = nil, team: String? = nil, org: String? = nil, user: String? = nil) {
        self.key = key
        self.team = team
        self.org = org
        self.user = user
    }
}

/// Whether a gateway takes virtual keys (`gateways[i].virtual_keys`).
public enum VirtualKeysMode: String, Sendable, Equatable {
    /// Every request must present one.
    case required
    /// A request with one is checked; one without works as before.
    case optional
    /// A request that presents one is refused (the gateway does not take them).
    case off
}
