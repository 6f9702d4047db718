import Foundation
import GateMeshAccounting
import GateMeshCore

/// The admin API's answers as `Codable` values, encoded here: the node writes them and the
/// `gatemesh` commands read them with the same types.
public enum AdminJSON {
    /// Keys sorted: Foundation's encoder on Linux keeps an object's keys in a dictionary, so their
    /// order would change from one run of the node to the next. `/` unescaped (paths and URLs read
    /// as written).
    public static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        // The answers' types hold nothing that fails to encode (no non-finite Double: shares and
        // ratios are quotients of counts that are checked for zero).
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }
}

/// A value the answer always carries, written `null` when there is none (where `Optional` would
/// leave the key out).
public struct OrNull<Wrapped: Codable & Sendable>: Codable, Sendable {
    public var value: Wrapped?
    public init(_ value: Wrapped?) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        value = c.decodeNil() ? nil : try c.decode(Wrapped.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value { try c.encode(value) } else { try c.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// An `OrNull` whose key is missing reads as null.
    public func decode<T>(_ type: OrNull<T>.Type, forKey key: Key) throws -> OrNull<T> {
        try decodeIfPresent(type, forKey: key) ?? OrNull(nil)
    }
}

/// A limit's amount: dollars as a decimal string (`"0.250000000"`), tokens and requests as numbers.
public enum Amount: Codable, Sendable, Equatable, CustomStringConvertible {
    case dollars(String)
    case count(Int64)

    public init(_ v: Int64, _ measure: LimitRule.Measure) {
        self = measure == .usd ? .dollars(Money(nanos: v).dollars) : .count(v)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int64.self) { self = .count(n) } else { self = .dollars(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .dollars(let s): try c.encode(s)
        case .count(let n): try c.encode(n)
        }
    }

    public var description: String {
        switch self {
        case .dollars(let s): s
        case .count(let n): String(n)
        }
    }
}

/// `GET /api/budgets`: every rule in force with its figures per scope value (docs/budgets.md).
public struct BudgetReport: Codable, Sendable {
    /// `block`, `{"downgrade": model}`.
    public enum Action: Codable, Sendable {
        case block
        case downgrade(String)

        init(_ action: LimitRule.Action) {
            switch action {
            case .block: self = .block
            case .downgrade(_, let model): self = .downgrade(model)
            }
        }

        public init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self), text == "block" {
                self = .block
            } else {
                self = .downgrade(try decoder.container(keyedBy: Keys.self).decode(String.self, forKey: .downgrade))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .block:
                var c = encoder.singleValueContainer()
                try c.encode("block")
            case .downgrade(let model):
                var c = encoder.container(keyedBy: Keys.self)
                try c.encode(model, forKey: .downgrade)
            }
        }

        enum Keys: String, CodingKey { case downgrade }
    }

    public struct Holder: Codable, Sendable {
        public var holder: String
        public var nodeID: String
        public var rights: Amount

        enum CodingKeys: String, CodingKey {
            case holder, rights
            case nodeID = "node_id"
        }
    }

    /// A leased rule's rights in the current period: the counter's owner, what it can still hand
    /// out, and who holds what.
    public struct Rights: Codable, Sendable {
        public var owner: String
        public var pool: Amount
        public var holders: [Holder]
    }

    public struct Scope: Codable, Sendable {
        public var scope: String
        public var spent: Amount
        public var reserved: Amount
        public var remaining: Amount
        /// `ok`, `warning` (80 % used) or `exhausted`.
        public var state: String
        public var rights: Rights?
    }

    public struct Rule: Codable, Sendable {
        public var id: String
        public var source: String
        public var gateway: String
        public var measure: String
        public var limit: Amount
        public var window: String
        public var windowStart: String
        public var windowEnd: String
        public var resetsAt: String
        public var action: Action
        public var enforcement: String
        public var leased: Bool
        public var scopes: [Scope]

        enum CodingKeys: String, CodingKey {
            case id, source, gateway, measure, limit, window, action, enforcement, leased, scopes
            case windowStart = "window_start", windowEnd = "window_end", resetsAt = "resets_at"
        }
    }

    public var time: String
    public var rules: [Rule]
}

/// The operator API's small answers.
enum AdminAnswer {
    /// `/healthz`.
    struct Health: Encodable {
        var status = "ok"
        var node: String
    }

    /// `GET /api/config`.
    struct Config: Encodable {
        var digest: String
        var gatewaysDigest: String
        var loadedAt: String
        var reloadable: Bool

        enum CodingKeys: String, CodingKey {
            case digest, reloadable
            case gatewaysDigest = "gateways_digest", loadedAt = "loaded_at"
        }
    }

    /// `POST /api/config/reload`.
    struct Reload: Encodable {
        var reloaded = true
        var changed: [String]
        var digest: String
        var gatewaysDigest: String

        enum CodingKeys: String, CodingKey {
            case reloaded, changed, digest
            case gatewaysDigest = "gateways_digest"
        }
    }

    /// `DELETE /api/cache…`: how many entries went, and which gateway's or which key.
    struct Purged: Encodable {
        var purged: Int
        var gateway: String?
        var key: String?
    }

    /// `DELETE` of a rule or an entity.
    struct Deleted: Encodable {
        var deleted: String
    }

    /// `POST /cluster/members/{name}/forget`.
    struct Forgotten: Encodable {
        var name: String
        /// Nil when it had left already.
        var id: String?
        var state = "left"
    }
}

/// The budget alert webhook's body (docs/budgets.md#alerts).
struct AlertPayload: Encodable {
    var type = "budget.threshold"
    var id: String
    var gateway: String
    var rule: String
    var scope: String
    var threshold: Double
    var measure: String
    var limit: Amount
    var spent: Amount
    var windowStart: String
    var windowEnd: String
    var node: String
    var time: String

    enum CodingKeys: String, CodingKey {
        case type, id, gateway, rule, scope, threshold, measure, limit, spent, node, time
        case windowStart = "window_start", windowEnd = "window_end"
    }
}
