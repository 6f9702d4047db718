

/// One spend or rate limit: what it counts, over which requests and window, and what happens
/// when it is reached.
public struct LimitRule: Sendable, Hashable {
    /// A request dimension a rule can look at.
    public enum Dimension: Sendable, Hashable, CustomStringConvertible {
        case provider, model
        case metadata(String)
        /// The virtual key, its team and its org (from the key the request authenticated with,
        /// never from a header), and the end user (the body's `user`, or `x-gatemesh-user`).
        case key, team, org, user

        public var description: String {
            switch self {
            case .provider: return "provider"
            case .model: return "model"
            case .metadata(let key): return "metadata.\(key)"
            case .key: return "key"
            case .team: return "team"
            case .org: return "org"
            case .user: return "user"
            }
        }
    }

    /// The gateway of rules that apply on every gateway: those of orgs, teams and virtual keys.
    public static let anyGateway = "*"

    /// How a rule treats one dimension: one bucket per value, or only requests with one value.
    public enum Scope: Sendable, Hashable {
        case split(Dimension)
        case only(Dimension, String)
    }

    public enum Measure: String, Sendable, Hashable {
        /// Money, in nano-dollars.
        case usd
        case requests
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case totalTokens = "total_tokens"
    }

    public enum Action: Sendable, Hashable {
        case block
        /// Serve the request with this model (and provider, when given) instead.
        case downgrade(provider: String?, model: String)
    }

    /// How hard a limit holds in a cluster (docs/budgets.md#enforcement-modes).
    public enum Enforcement: String, Sendable, Hashable {
        /// Each node admits from what it has heard: bursts on several nodes can pass the limit
        /// by what they admit within the gossip delay; each side of a partition spends what was left.
        case soft
        /// Admission consumes rights handed out by the counter's owner, picked among the live
        /// members: the owner moves when a node dies (overshoot only from grants of a dead owner
        /// that never reached anyone).
        case bounded
        /// Like bounded, with the owner picked among every member not known to have left, so it
        /// does not move while it may be alive: never over, also across a partition.
        case strict

        /// The default: `bounded` for budgets over a calendar or fixed window, `soft` otherwise (a
        /// rate limit is a guard against bursts, and its counters turn over every window: no
        /// round trip to an owner for it unless asked).
        public static func defaultMode(for window: Window, kind: Kind) -> Enforcement {
            kind == .budget && allowed(for: window) ? .bounded : .soft
        }

        /// Rights are kept per bucket, so only windows of one bucket (calendar, fixed) have them.
        public static func allowed(for window: Window) -> Bool {
            switch window {
            case .calendar, .fixed: return true
            case .rolling, .sliding: return false
            }
        }
    }

    /// Whether the rule came from `budgets` or `rate_limits` (it decides how a refusal is named).
    public enum Kind: String, Sendable, Hashable { case budget, rateLimit = "rate_limit" }

    public var id: String
    public var gateway: String
    public var kind: Kind
    public var scope: [Scope]
    public var measure: Measure
    /// The limit in the measure's unit (nano-dollars for `usd`).
    public var limit: Int64
    public var window: Window
    public var action: Action
    /// Alert thresholds as fractions of the limit in thousandths (500 = 50 %).
    public var alertPermille: [Int]
    public var enforcement: Enforcement

    public init(id: String, gateway: String, kind: Kind? = nil, scope: [Scope] = [], measure: Measure, limit: Int64, window: Window,
                action: Action = .block, alertPermille: [Int] = [], enforcement: Enforcement = .soft) {
        self.id = id
        self.gateway = gateway
        self.kind = kind ?? (measure == .usd ? .budget : .rateLimit)
        self.scope = scope
        self.measure = measure
        self.limit = limit
        self.window = window
        self.action = action
        self.alertPermille = alertPermille
        self.enforcement = enforcement
    }

    /// The scope value a request falls in (`""` for a rule without splits), or nil when the rule
    /// does not apply to it (another gateway, a filter that does not match, a missing split key).
    public func scopeValue(for request: LimitRequest) -> String? {
        guard request.gateway == gateway || gateway == Self.anyGateway else { return nil }
        var parts: [String] = []
        for s in scope {
            switch s {
            case .only(let dimension, let value):
                guard request.value(dimension) == value else { return nil }
            case .split(let dimension):
                guard let value = request.value(dimension) else { return nil }
                parts.append("\(dimension)=\(value)")
            }
        }
        return parts.joined(separator: ",")
    }
}

/// What the limits look at in a request.
public struct LimitRequest: Sendable {
    public var gateway: String
    public var provider: String
    public var model: String?
    public var metadata: RequestMetadata
    /// The virtual key the request authenticated with, and its team and org (nil without one).
    public var key: String?
    public var team: String?
    public var org: String?
    /// The end user the request says it is for.
    public var user: String?

    public init(gateway: String, provider: String, model: String?, metadata: RequestMetadata = RequestMetadata(),
                key: String? = nil, team: String? = nil, org: String? = nil, user: String? = nil) {
        self.gateway = gateway
        self.provider = provider
        self.model = model
        self.metadata = metadata
        self.key = key
        self.team = team
        self.org = org
        self.user = user
    }

    /// Takes the principal's key, team, org and end user.
    public mutating func set(_ principal: Principal?) {
        key = principal?.key
        team = principal?.team
        org = principal?.org
        user = principal?.user
    }

    public func value(_ dimension: LimitRule.Dimension) -> String? {
        switch dimension {
        case .provider: return provider
        case .model: return model
        case .metadata(let key): return metadata.text(key)
        case .key: return key
        case .team: return team
        case .org: return org
        case .user: return user
        }
    }
}

/// What one request counts for, in every measure.
public struct LimitAmounts: Sendable, Hashable {
    public var costNanos: Int64
    public var requests: Int64
    public var inputTokens: Int64
    public var outputTokens: Int64

    public init(costNanos: Int64 = 0, requests: Int64 = 1, inputTokens: Int64 = 0, outputTokens: Int64 = 0) {
        self.costNanos = costNanos
        self.requests = requests
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    public func value(_ measure: LimitRule.Measure) -> Int64 {
        switch measure {
        case .usd: return costNanos
        case .requests: return requests
        case .inputTokens: return inputTokens
        case .outputTokens: return outputTokens
        case .totalTokens: return inputTokens + outputTokens
        }
    }
}
