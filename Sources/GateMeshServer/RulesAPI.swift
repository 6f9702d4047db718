import GateMeshConfig
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import Logging

/// The admin API for limit rules (`/api/rules`): list, read, create, replace and delete.
///
/// Rules from the config are listed (`"source":"config"`) but cannot be changed here: the config
/// file stays their one source of truth. Rules made here are validated by the same reader as the
/// config, written to SQLite (so they survive restarts) and then put in force at once. A rule that
/// keeps its id and window keeps its spend; a new window, or a delete, forgets it.
extension LimitsService {
    /// The largest rules document the admin API reads.
    static let maxDocumentBytes = 16 << 20

    /// Every rule in force (config first, then the API's in creation order), and stored rules that
    /// cannot be used (with the reason).
    func listRules(gateway: String?) -> String {
        let a = admin.withLockedValue { $0 }
        var docs: [String] = []
        for rule in configRules where gateway == nil || rule.gateway == gateway {
            docs.append(Self.document(rule, source: "config", stored: nil))
        }
        for (rule, stored) in a.rules where gateway == nil || rule.gateway == gateway {
            docs.append(Self.document(rule, source: "api", stored: stored))
        }
        let inactive = a.inactive.filter { gateway == nil || $0.stored.gateway == gateway }.map { item in
            "{\"id\":\(JSON.quoted(item.stored.id)),\"gateway\":\(JSON.quoted(item.stored.gateway)),\"reason\":\(JSON.quoted(item.reason)),"
                + "\"definition\":\(JSON.quoted(item.stored.definition))}"
        }
        return "{\"count\":\(docs.count),\"rules\":[\(docs.joined(separator: ","))],\"inactive\":[\(inactive.joined(separator: ","))]}"
    }

    func ruleDocument(id: String) throws(GatewayError) -> String {
        if let rule = configRules.first(where: { $0.id == id }) { return Self.document(rule, source: "config", stored: nil) }
        let a = admin.withLockedValue { $0 }
        if let (rule, stored) = a.rules.first(where: { $0.rule.id == id }) { return Self.document(rule, source: "api", stored: stored) }
        throw GatewayError.notFound("no rule with id '\(id)'")
    }

    /// Creates the rules in `text` (one object or an array), all or none. 409 when an id is taken.
    func createRules(_ text: String) throws(GatewayError) -> String {
        let rules = try parse(text)
        let now = Self.now()
        return try change { a throws(GatewayError) in
            for rule in rules {
                if configIDs.contains(rule.id) { throw Self.conflict("rule '\(rule.id)' is defined in the config file; choose another id") }
                if a.rules.contains(where: { $0.rule.id == rule.id }) {
                    throw Self.conflict("rule '\(rule.id)' exists; replace it with PUT /api/rules/\(rule.id) or choose another id")
                }
            }
            let stored = rules.map { NodeStore.StoredRule(id: $0.id, gateway: $0.gateway, definition: RuleDocument.json($0), createdTs: now, updatedTs: now) }
            // A rule made after one of the same id was deleted starts from nothing.
            try save(stored, delete: [], forgetSpend: Set(rules.map(\.id)))
            a.rules += zip(rules, stored).map { ($0, $1) }
            a.inactive.removeAll { item in rules.contains { $0.id == item.stored.id } }
            return "{\"created\":[\(zip(rules, stored).map { Self.document($0, source: "api", stored: $1) }.joined(separator: ","))]}"
        }
    }

    /// Creates or replaces the rule `id` with the one object in `text` (its `id`, when present,
    /// must be `id`). Returns whether it was created, and the rule.
    func putRule(id: String, _ text: String) throws(GatewayError) -> (created: Bool, body: String) {
        // The id may be left out of the body: it is in the path.
        let rules = try parse(text, single: id)
        guard rules.count == 1, let rule = rules.first else {
            throw GatewayError.badRequest("PUT /api/rules/\(id) takes one rule object", code: "invalid_rule")
        }
        guard rule.id == id else {
            throw GatewayError.badRequest("the rule's id '\(rule.id)' differs from the id in the path '\(id)'", code: "invalid_rule")
        }
        if configIDs.contains(id) { throw Self.conflict("rule '\(id)' is defined in the config file; change it there") }
        let now = Self.now()
        return try change { a throws(GatewayError) in
            let existing = a.rules.firstIndex { $0.rule.id == id }
            let stored = NodeStore.StoredRule(id: id, gateway: rule.gateway, definition: RuleDocument.json(rule),
                                              createdTs: existing.map { a.rules[$0].stored.createdTs } ?? now, updatedTs: now)
            let windowChanged = existing.map { a.rules[$0].rule.window != rule.window } ?? true
            try save([stored], delete: [], forgetSpend: windowChanged ? [id] : [])
            if let existing { a.rules[existing] = (rule, stored) } else { a.rules.append((rule, stored)) }
            a.inactive.removeAll { $0.stored.id == id }
            return (existing == nil, Self.document(rule, source: "api", stored: stored))
        }
    }

    /// Deletes the rule `id` (made through the API, or stored but inactive) and forgets its spend.
    func deleteRule(id: String) throws(GatewayError) -> String {
        if configIDs.contains(id) { throw Self.conflict("rule '\(id)' is defined in the config file; remove it there") }
        return try change { a throws(GatewayError) in
            let active = a.rules.firstIndex { $0.rule.id == id }
            let inactive = a.inactive.firstIndex { $0.stored.id == id }
            guard active != nil || inactive != nil else { throw GatewayError.notFound("no rule with id '\(id)'") }
            try save([], delete: [id], forgetSpend: [id])
            if let active { a.rules.remove(at: active) }
            if let inactive { a.inactive.remove(at: inactive) }
            return "{\"deleted\":\(JSON.quoted(id))}"
        }
    }

    // MARK: -

    /// Runs one change under the admin lock, then installs the resulting rule set.
    private func change<T>(_ body: (inout AdminRules) throws(GatewayError) -> T) throws(GatewayError) -> T {
        let result: Result<T, GatewayError> = admin.withLockedValue { a in
            let before = a
            do throws(GatewayError) {
                let value = try body(&a)
                let rules = configRules + a.rules.map(\.rule)
                engine.withLockedValue { _ = $0.replaceRules(rules) }
                hasRules.store(!rules.isEmpty, ordering: .relaxed)
                return .success(value)
            } catch {
                a = before
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func save(_ rules: [NodeStore.StoredRule], delete: [String], forgetSpend: Set<String>) throws(GatewayError) {
        do {
            try store.changeRules(save: rules, delete: delete, forgetSpend: forgetSpend)
        } catch {
            logger.error("cannot store a rule change", metadata: ["error": "\(error)"])
            throw GatewayError.unavailable("the rule change could not be stored, so nothing changed: \(error)")
        }
    }

    private func parse(_ text: String, single: String? = nil) throws(GatewayError) -> [LimitRule] {
        let rules: [LimitRule]
        do {
            rules = try RuleDocument.parse(text, gateways: gateways, single: single)
        } catch {
            var e = GatewayError.badRequest(error.key.isEmpty ? error.message : "'\(error.key)': \(error.message)", code: "invalid_rule")
            if !error.key.isEmpty { e.details = [("key", JSON.quoted(error.key))] }
            throw e
        }
        if alerts == nil, let r = rules.first(where: { !$0.alertPermille.isEmpty }) {
            throw GatewayError.badRequest("rule '\(r.id)' has alerts, but no alerts.webhook is configured to send them to", code: "invalid_rule")
        }
        return rules
    }

    static func conflict(_ message: String) -> GatewayError {
        GatewayError(status: 409, type: "invalid_request_error", code: "rule_conflict", message: message)
    }

    /// A rule's document with where it comes from (and, for API rules, when it was made and changed).
    static func document(_ rule: LimitRule, source: String, stored: NodeStore.StoredRule?) -> String {
        var head = "{\"source\":\"\(source)\","
        if let stored { head += "\"created_at\":\(LogAPI.iso(stored.createdTs)),\"updated_at\":\(LogAPI.iso(stored.updatedTs))," }
        return head + RuleDocument.json(rule).dropFirst()
    }
}
