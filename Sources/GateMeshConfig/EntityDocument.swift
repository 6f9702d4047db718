import GateMeshCore
import Yams

/// Orgs, teams and virtual keys as JSON documents: what the admin API accepts (`POST /api/orgs`,
/// `/api/teams`, `/api/keys`, and `PUT` on each) and how they are stored and replicated. Budgets
/// and rate limits are read by the config's rule reader (a rule without `gateway`: it holds on
/// every gateway). A stored key document also carries its secrets' hashes, its hint, when it was
/// made and when it was revoked; the API's answers leave the hashes out.
public enum EntityDocument {
    /// Keys the admin API adds to what it returns; accepted and ignored, so a document read with
    /// GET can be edited and sent back.
    static let echoed: Set<String> = ["kind", "created_at", "updated_at", "changed_on", "hint", "revoked_at", "status", "previous_secret_valid_until"]
    static let stored: Set<String> = ["secrets", "created_ms", "revoked_ms"]
    static let common: Set<String> = ["budgets", "rate_limits", "models", "gateways", "expires_at", "disabled", "metadata"]
    public static let maxMetadataEntries = 32
    public static let maxPatterns = 256

    /// The parts of a document; what a kind does not have is nil.
    public struct Parsed: Sendable {
        public var id: String?
        public var org: String?
        public var team: String?
        public var name: String?
        public var policy = EntityPolicy()
        public var secrets: [VirtualKey.Secret] = []
        public var createdMs: Int64?
        public var revokedMs: Int64?
        public var hint: String?
    }

    /// Reads one document of `kind`. `stored` also takes the fields only the node writes.
    public static func parse(_ text: String, kind: EntityKind, stored storedForm: Bool = false) throws(ConfigError) -> Parsed {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ConfigError(key: "", line: nil, message: "not valid JSON: \(error)")
        }
        guard let root, case .mapping = root else {
            throw ConfigError(key: "", line: nil, message: "expected one \(kind.rawValue) object")
        }
        var reader = Reader(environment: [:])
        reader.expandsEnvironment = false
        let m = try reader.mapping(root, key: "")
        var allowed = common.union(echoed).union(["id"])
        switch kind {
        case .org: break
        case .team: allowed.insert("org")
        case .key: allowed.formUnion(["team", "name", "allow_custom_cost"])
        }
        if storedForm { allowed.formUnion(stored) }
        try reader.checkKeys(m, key: "", allowed: allowed)
        var out = Parsed()
        func name(_ field: String) throws(ConfigError) -> String? {
            guard let v = m.value(field) else { return nil }
            let text = try reader.string(v, key: field)
            guard Names.isValidName(text) else { throw ConfigError(key: field, line: v.mark?.line, message: Names.rule) }
            return text
        }
        out.id = try name("id")
        out.org = try name("org")
        out.team = try name("team")
        if let v = m.value("name") {
            let text = try reader.string(v, key: "name", allowEmpty: true)
            guard text.utf8.count <= 128 else { throw ConfigError(key: "name", line: v.mark?.line, message: "at most 128 bytes") }
            out.name = text
        }
        var seen: Set<String> = []
        for section in ["budgets", "rate_limits"] {
            guard let list = m.value(section) else { continue }
            for (j, item) in try reader.sequence(list, key: section).enumerated() {
                let rule = try reader.readRule(item, key: "\(section)[\(j)]", gateway: LimitRule.anyGateway, budget: section == "budgets",
                                               extraKeys: ["kind"])
                guard seen.insert(rule.id).inserted else {
                    throw ConfigError(key: "\(section)[\(j)].id", line: item.mark?.line, message: "rule id '\(rule.id)' appears twice")
                }
                out.policy.rules.append(rule)
            }
        }
        for field in ["models", "gateways"] {
            guard let list = m.value(field) else { continue }
            let items = try reader.sequence(list, key: field)
            guard items.count <= maxPatterns else {
                throw ConfigError(key: field, line: list.mark?.line, message: "at most \(maxPatterns) entries")
            }
            var values: [String] = []
            for (j, item) in items.enumerated() {
                let text = try reader.string(item, key: "\(field)[\(j)]")
                guard text.utf8.count <= 256 else { throw ConfigError(key: "\(field)[\(j)]", line: item.mark?.line, message: "at most 256 bytes") }
                values.append(text)
            }
            if field == "models" { out.policy.models = values } else { out.policy.gateways = values }
        }
        if let v = m.value("expires_at"), !v.isNullScalar {
            let text = try reader.string(v, key: "expires_at")
            guard let ms = Timestamps.unixMs(text) else {
                throw ConfigError(key: "expires_at", line: v.mark?.line,
                                  message: "expected a time such as 2027-01-31T00:00:00Z (RFC 3339, UTC or with an offset), got '\(text)'")
            }
            out.policy.expiresAtMs = ms
        }
        if let v = m.value("disabled") { out.policy.disabled = try reader.bool(v, key: "disabled") }
        if let v = m.value("allow_custom_cost") { out.policy.allowCustomCost = try reader.bool(v, key: "allow_custom_cost") }
        if let v = m.value("metadata") {
            let mm = try reader.mapping(v, key: "metadata")
            guard mm.count <= maxMetadataEntries else {
                throw ConfigError(key: "metadata", line: v.mark?.line, message: "at most \(maxMetadataEntries) entries")
            }
            for (k, value) in mm {
                guard let key = k.string, !key.isEmpty, key.utf8.count <= 64 else {
                    throw ConfigError(key: "metadata", line: k.mark?.line, message: "keys are 1 to 64 bytes of text")
                }
                let text = try reader.string(value, key: "metadata.\(key)", allowEmpty: true)
                guard text.utf8.count <= 1024 else {
                    throw ConfigError(key: "metadata.\(key)", line: value.mark?.line, message: "values are at most 1,024 bytes")
                }
                out.policy.metadata.append((key, text))
            }
        }
        if storedForm {
            if let list = m.value("secrets") {
                for (j, item) in try reader.sequence(list, key: "secrets").enumerated() {
                    let sm = try reader.mapping(item, key: "secrets[\(j)]")
                    guard let h = sm.value("hash") else { throw ConfigError(key: "secrets[\(j)].hash", line: nil, message: "required") }
                    let until = try sm.value("valid_until_ms").map { v throws(ConfigError) in Int64(try reader.int(v, key: "valid_until_ms", range: 0...Int.max)) }
                    out.secrets.append(.init(hash: try reader.string(h, key: "secrets[\(j)].hash"), validUntilMs: until))
                }
            }
            out.hint = try m.value("hint").map { v throws(ConfigError) in try reader.string(v, key: "hint") }
            out.createdMs = try m.value("created_ms").map { v throws(ConfigError) in Int64(try reader.int(v, key: "created_ms", range: 0...Int.max)) }
            out.revokedMs = try m.value("revoked_ms").map { v throws(ConfigError) in Int64(try reader.int(v, key: "revoked_ms", range: 0...Int.max)) }
        }
        return out
    }

    /// The fields every kind has, as JSON members (no braces), for the stored form and the API.
    static func policyJSON(_ p: EntityPolicy) -> String {
        let budgets = p.rules.filter { $0.kind == .budget }.map(ruleJSON)
        let rates = p.rules.filter { $0.kind == .rateLimit }.map(ruleJSON)
        var out = "\"budgets\":[\(budgets.joined(separator: ","))],\"rate_limits\":[\(rates.joined(separator: ","))]"
        out += ",\"models\":[\(p.models.map(JSON.quoted).joined(separator: ","))],\"gateways\":[\(p.gateways.map(JSON.quoted).joined(separator: ","))]"
        out += ",\"expires_at\":" + (p.expiresAtMs.map { JSON.quoted(Timestamps.iso($0)) } ?? "null")
        out += ",\"disabled\":\(p.disabled),\"metadata\":{\(p.metadata.map { "\(JSON.quoted($0.0)):\(JSON.quoted($0.1))" }.joined(separator: ","))}"
        return out
    }

    /// A rule of an entity as its document (no gateway: it holds on every one).
    static func ruleJSON(_ rule: LimitRule) -> String {
        var text = RuleDocument.json(rule)
        text = text.replacingOccurrences(of: "\"gateway\":\(JSON.quoted(rule.gateway)),", with: "")
        return text
    }

    public static func json(_ org: Org) -> String {
        "{\"id\":\(JSON.quoted(org.id)),\(policyJSON(org.policy))}"
    }

    public static func json(_ team: Team) -> String {
        "{\"id\":\(JSON.quoted(team.id)),\"org\":\(JSON.quoted(team.org)),\(policyJSON(team.policy))}"
    }

    /// A key as stored (with its secrets' hashes), or as the API shows it (`stored: false`).
    public static func json(_ key: VirtualKey, stored storedForm: Bool) -> String {
        var out = "{\"id\":\(JSON.quoted(key.id)),\"team\":\(JSON.quoted(key.team)),\"name\":\(JSON.quoted(key.name)),\(policyJSON(key.policy))"
        out += ",\"allow_custom_cost\":\(key.policy.allowCustomCost)"
        if storedForm {
            out += ",\"secrets\":[" + key.secrets.map { s in
                "{\"hash\":\(JSON.quoted(s.hash))" + (s.validUntilMs.map { ",\"valid_until_ms\":\($0)" } ?? "") + "}"
            }.joined(separator: ",") + "]"
            out += ",\"hint\":\(JSON.quoted(key.hint)),\"created_ms\":\(key.createdAtMs)"
            if let r = key.revokedAtMs { out += ",\"revoked_ms\":\(r)" }
        } else {
            out += ",\"hint\":\(JSON.quoted(key.hint)),\"created_at\":\(JSON.quoted(Timestamps.iso(key.createdAtMs)))"
            out += ",\"revoked_at\":" + (key.revokedAtMs.map { JSON.quoted(Timestamps.iso($0)) } ?? "null")
            let previous = key.secrets.compactMap(\.validUntilMs).max()
            out += ",\"previous_secret_valid_until\":" + (previous.map { JSON.quoted(Timestamps.iso($0)) } ?? "null")
        }
        return out + "}"
    }
}

extension Node {
    var isNullScalar: Bool {
        if case .scalar(let s) = self { return s.string == "null" || s.string == "~" || s.string.isEmpty }
        return false
    }
}
