import GateMeshAccounting
import GateMeshCore
import Yams

/// Limit rules as JSON documents: what the admin API accepts and returns, and how rules made
/// through it are stored. A rule document has the shape of a rule in the config (docs/budgets.md)
/// plus `gateway` (required) and `kind` (`budget` or `rate_limit`; by default `rate_limit` when
/// the limit is `requests`, else `budget`), and is read by the same code as the config, so the
/// two accept exactly the same rules with the same errors. `${…}` is not expanded here.
public enum RuleDocument {
    /// Keys the admin API adds to the rules it returns; accepted and ignored, so a rule read with
    /// GET can be edited and sent back as it is.
    static let echoed: Set<String> = ["source", "created_at", "updated_at", "changed_on"]

    /// The most rules one request may create or replace.
    public static let maxRulesPerDocument = 10_000

    /// Reads one rule object, or an array of them, for gateways in `gateways`. Errors name the
    /// key (`rules[3].window.calendar`) and say what is wrong. With `single`, the document must be
    /// one object, and its `id` may be left out (it is then `single`).
    public static func parse(_ text: String, gateways: Set<String>, single: String? = nil) throws(ConfigError) -> [LimitRule] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(key: "", line: nil, message: "not valid JSON: \(error)")
        }
        guard let root else { throw ConfigError(key: "", line: nil, message: "expected a rule object or an array of rules, got an empty body") }
        var reader = Reader(environment: [:])
        reader.expandsEnvironment = false
        let items: [(Node, String)]
        switch root {
        case .sequence where single != nil:
            throw ConfigError(key: "", line: root.mark?.line, message: "expected one rule object, not an array")
        case .sequence(let seq):
            guard seq.count <= maxRulesPerDocument else {
                throw ConfigError(key: "", line: nil, message: "at most \(maxRulesPerDocument) rules per request, got \(seq.count)")
            }
            items = seq.enumerated().map { ($1, "rules[\($0)]") }
        case .mapping:
            items = [(root, "rule")]
        default:
            throw ConfigError(key: "", line: root.mark?.line, message: "expected a rule object or an array of rules")
        }
        var out: [LimitRule] = []
        var seen: Set<String> = []
        for (node, key) in items {
            let m = try reader.mapping(node, key: key)
            guard let g = m.value("gateway") else {
                throw ConfigError(key: "\(key).gateway", line: node.mark?.line, message: "every rule needs the id of the gateway it belongs to")
            }
            let gateway = try reader.string(g, key: "\(key).gateway")
            guard gateways.contains(gateway) else {
                throw ConfigError(key: "\(key).gateway", line: g.mark?.line,
                                  message: "no gateway '\(gateway)' in the config; known: \(gateways.sorted().joined(separator: ", "))")
            }
            var budget = m.value("requests") == nil
            if let k = m.value("kind") {
                switch try reader.string(k, key: "\(key).kind") {
                case "budget": budget = true
                case "rate_limit": budget = false
                case let other:
                    throw ConfigError(key: "\(key).kind", line: k.mark?.line, message: "expected budget or rate_limit, got '\(other)'")
                }
            }
            let rule = try reader.readRule(node, key: key, gateway: gateway, budget: budget, extraKeys: echoed.union(["gateway", "kind"]), defaultID: single)
            guard seen.insert(rule.id).inserted else {
                throw ConfigError(key: "\(key).id", line: node.mark?.line, message: "rule id '\(rule.id)' appears twice in this request")
            }
            out.append(rule)
        }
        return out
    }

    /// `rule` as a document that `parse` reads back into the same rule.
    public static func json(_ rule: LimitRule) -> String {
        var out = "{\"id\":\(JSON.quoted(rule.id)),\"gateway\":\(JSON.quoted(rule.gateway)),\"kind\":\"\(rule.kind.rawValue)\","
        switch rule.measure {
        case .usd: out += "\"usd\":\(JSON.quoted(dollars(rule.limit)))"
        case .requests: out += "\"requests\":\(rule.limit)"
        case .inputTokens: out += "\"input_tokens\":\(rule.limit)"
        case .outputTokens: out += "\"output_tokens\":\(rule.limit)"
        case .totalTokens: out += "\"tokens\":\(rule.limit)"
        }
        let splits = rule.scope.compactMap { s -> String? in if case .split(let d) = s { return JSON.quoted(d.description) } else { return nil } }
        let only = rule.scope.compactMap { s -> String? in
            if case .only(let d, let v) = s { return "\(JSON.quoted(d.description)):\(JSON.quoted(v))" } else { return nil }
        }
        if !splits.isEmpty || !only.isEmpty {
            var parts: [String] = []
            if !splits.isEmpty { parts.append("\"split_by\":[\(splits.joined(separator: ","))]") }
            if !only.isEmpty { parts.append("\"only\":{\(only.joined(separator: ","))}") }
            out += ",\"scope\":{\(parts.joined(separator: ","))}"
        }
        out += ",\"window\":" + window(rule.window)
        switch rule.action {
        case .block: out += ",\"action\":\"block\""
        case .downgrade(let provider, let model):
            out += ",\"action\":{\"downgrade\":{\"model\":\(JSON.quoted(model))" + (provider.map { ",\"provider\":\(JSON.quoted($0))" } ?? "") + "}}"
        }
        if !rule.alertPermille.isEmpty {
            out += ",\"alerts\":[\(rule.alertPermille.map(fraction).joined(separator: ","))]"
        }
        out += ",\"enforcement\":\"\(rule.enforcement.rawValue)\""
        return out + "}"
    }

    static func window(_ w: Window) -> String {
        switch w {
        case .calendar(let p, let tz, let ws):
            let days = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
            return "{\"calendar\":\"\(p.rawValue)\",\"timezone\":\(JSON.quoted(tz))" + (p == .week ? ",\"week_start\":\"\(days[ws - 1])\"" : "") + "}"
        case .fixed(let l): return "{\"fixed\":\"\(duration(l))\"}"
        case .rolling(let l, let b): return "{\"rolling\":\"\(duration(l))\",\"bucket\":\"\(duration(b))\"}"
        case .sliding(let l, let b): return "{\"sliding\":\"\(duration(l))\",\"bucket\":\"\(duration(b))\"}"
        }
    }

    /// Milliseconds in the largest unit that states them exactly (`90m`, `1d`, `1500ms`).
    static func duration(_ ms: Int64) -> String {
        for (suffix, factor) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms % factor == 0 && ms > 0 {
            return "\(ms / factor)\(suffix)"
        }
        return "\(ms)ms"
    }

    /// Nano-dollars as the shortest exact decimal: 50 → "50", 0.25 → "0.25".
    static func dollars(_ nanos: Int64) -> String {
        var text = Money(nanos: nanos).dollars
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    /// Thousandths as a decimal fraction: 500 → 0.5, 1000 → 1, 825 → 0.825.
    static func fraction(_ permille: Int) -> String {
        let whole = permille / 1000, rest = permille % 1000
        guard rest != 0 else { return String(whole) }
        var digits = String(rest)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}
