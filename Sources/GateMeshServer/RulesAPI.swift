import GateMeshCluster
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
            let stored = rules.map { rule in
                let ts = RuleRecord.nextVersion(now: now, after: a.records.byID[rule.id])
                return RuleRecord(id: rule.id, gateway: rule.gateway, definition: RuleDocument.json(rule), createdTs: ts, updatedTs: ts,
                                            origin: nodeName)
            }
            // A rule made after one of the same id was deleted starts from nothing.
            try save(stored, forgetSpend: Set(rules.map(\.id)), into: &a)
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
            let ts = RuleRecord.nextVersion(now: now, after: a.records.byID[id])
            let stored = RuleRecord(id: id, gateway: rule.gateway, definition: RuleDocument.json(rule),
                                              createdTs: existing.map { a.rules[$0].stored.createdTs } ?? ts, updatedTs: ts, origin: nodeName)
            let windowChanged = existing.map { a.rules[$0].rule.window != rule.window } ?? true
            try save([stored], forgetSpend: windowChanged ? [id] : [], into: &a)
            if let existing { a.rules[existing] = (rule, stored) } else { a.rules.append((rule, stored)) }
            a.inactive.removeAll { $0.stored.id == id }
            return (existing == nil, Self.document(rule, source: "api", stored: stored))
        }
    }

    /// Deletes the rule `id` (made through the API, or stored but inactive) and forgets its spend.
    /// A tombstone stays, so the delete reaches every node of a cluster.
    func deleteRule(id: String) throws(GatewayError) -> String {
        if configIDs.contains(id) { throw Self.conflict("rule '\(id)' is defined in the config file; remove it there") }
        let now = Self.now()
        return try change { a throws(GatewayError) in
            let active = a.rules.firstIndex { $0.rule.id == id }
            let inactive = a.inactive.firstIndex { $0.stored.id == id }
            guard active != nil || inactive != nil else { throw GatewayError.notFound("no rule with id '\(id)'") }
            let gateway = active.map { a.rules[$0].stored.gateway } ?? inactive.map { a.inactive[$0].stored.gateway } ?? ""
            let ts = RuleRecord.nextVersion(now: now, after: a.records.byID[id])
            let tombstone = RuleRecord(id: id, gateway: gateway, definition: "", createdTs: ts, updatedTs: ts, origin: nodeName,
                                                 deleted: true)
            try save([tombstone], forgetSpend: [id], into: &a)
            if let active { a.rules.remove(at: active) }
            if let inactive { a.inactive.remove(at: inactive) }
            return AdminJSON.encode(AdminAnswer.Deleted(deleted: id))
        }
    }

    /// Rule records from a peer: those newer than this node's are stored and put in force (or
    /// listed as inactive, with the reason, when this node cannot use them). Blocking (SQLite).
    func mergeRules(_ incoming: [RuleRecord]) {
        do {
            let taken: [RuleRecord] = try change(broadcast: false) { a throws(GatewayError) in
                var records = a.records
                var fresh: [String: RuleRecord] = [:]
                for r in records.merge(incoming) { fresh[r.id] = r }
                guard !fresh.isEmpty else { return [] }
                // Orgs, teams and keys: stored, then put in the directory.
                let entities = fresh.values.filter { AdminRecordID.parse($0.id) != nil }
                if !entities.isEmpty {
                    try save(entities, forgetSpend: [], into: &a)
                    for r in entities {
                        Self.install(r, into: &a.directory, logger: logger)
                        fresh[r.id] = nil
                    }
                    if fresh.isEmpty { return entities }
                }
                var forget: Set<String> = []
                var decided: [String: Result<LimitRule, Inactive>] = [:]
                for r in fresh.values {
                    let current = a.rules.first { $0.rule.id == r.id }?.rule
                    if r.deleted { forget.insert(r.id); continue }
                    let result = Self.classify(r, gateways: gateways, configIDs: configIDs, alerts: alerts != nil)
                    decided[r.id] = result
                    // Like an edit here: a new rule or a new window starts from nothing.
                    if case .success(let rule) = result, current?.window == rule.window {} else { forget.insert(r.id) }
                }
                try save(Array(fresh.values), forgetSpend: forget, into: &a)
                for r in fresh.values {
                    let stored = r
                    let active = a.rules.firstIndex { $0.rule.id == r.id }
                    a.inactive.removeAll { $0.stored.id == r.id }
                    switch decided[r.id] {
                    case .success(let rule):
                        if let active { a.rules[active] = (rule, stored) } else { a.rules.append((rule, stored)) }
                    case .failure(let reason):
                        if let active { a.rules.remove(at: active) }
                        a.inactive.append((stored, reason.message))
                        logger.warning("a rule from a peer is not in force", metadata: ["rule": "\(r.id)", "reason": "\(reason.message)"])
                    case nil:
                        if let active { a.rules.remove(at: active) }
                    }
                }
                return Array(fresh.values) + entities
            }
            for r in taken {
                logger.info(r.deleted ? "rule deleted by a peer" : "rule changed by a peer", metadata: ["rule": "\(r.id)", "origin": "\(r.origin)"])
            }
        } catch {
            logger.error("cannot take rule changes from a peer", metadata: ["error": "\(error)"])
        }
    }

    /// Puts a reloaded config's rules and gateways in force. Rules made through the admin API are
    /// looked at again: one on a gateway the config no longer has goes out of force (listed as
    /// inactive, with the reason), one that could not be used before may now be. Refused with a 409,
    /// changing nothing, when a config rule takes the id of a rule made through the admin API.
    func reloadConfig(rules: [LimitRule], gateways: Set<String>) throws(GatewayError) {
        let ids = Set(rules.map(\.id))
        try change(broadcast: false) { a throws(GatewayError) in
            if let clash = a.rules.first(where: { ids.contains($0.rule.id) }) {
                throw Self.conflict("rule '\(clash.rule.id)' in the config is also a rule made through the admin API: "
                                    + "delete that one (DELETE /api/rules/\(clash.rule.id)) or rename the config's, then reload")
            }
            configured.withLockedValue { $0 = Configured(rules: rules, ids: ids, gateways: gateways) }
            var active: [(rule: LimitRule, stored: RuleRecord)] = []
            var inactive: [(stored: RuleRecord, reason: String)] = []
            // In the order they were in force, then those that were not.
            for stored in a.rules.map(\.stored) + a.inactive.map(\.stored) {
                switch Self.classify(stored, gateways: gateways, configIDs: ids, alerts: alerts != nil) {
                case .success(let rule): active.append((rule, stored))
                case .failure(let reason): inactive.append((stored, reason.message))
                }
            }
            for (stored, reason) in inactive where !a.inactive.contains(where: { $0.stored.id == stored.id }) {
                logger.warning("a rule made through the admin API went out of force with the config reload",
                               metadata: ["rule": "\(stored.id)", "reason": "\(reason)"])
            }
            a.rules = active
            a.inactive = inactive
        }
    }

    /// Every rule record and tombstone, and their digest (for the cluster's anti-entropy).
    var ruleRecords: (records: [RuleRecord], digest: UInt64) {
        admin.withLockedValue { a in (Array(a.records.byID.values), a.records.digest()) }
    }

    // MARK: -

    /// Runs one change under the admin lock, then installs the resulting rule set and (for changes
    /// made here) tells the cluster.
    func change<T>(broadcast: Bool = true, _ body: (inout AdminRules) throws(GatewayError) -> T) throws(GatewayError) -> T {
        let result: Result<(T, [RuleRecord]), GatewayError> = admin.withLockedValue { a in
            let before = a
            do throws(GatewayError) {
                let value = try body(&a)
                let rules = configRules + a.rules.map(\.rule) + a.directory.rules
                engine.withLockedValue { _ = $0.replaceRules(rules) }
                directory.withLockedValue { [a] in $0 = a.directory }
                hasRules.store(!rules.isEmpty, ordering: .relaxed)
                let changed = a.records.byID.values.filter { r in before.records.byID[r.id] != r }
                return .success((value, changed))
            } catch {
                a = before
                return .failure(error)
            }
        }
        let (value, changed) = try result.get()
        if broadcast, !changed.isEmpty, let peers { peers.broadcastRules(changed) }
        return value
    }

    /// Writes `rules` (records and tombstones) to SQLite, then to the replicated records.
    func save(_ rules: [RuleRecord], forgetSpend: Set<String>, into a: inout AdminRules) throws(GatewayError) {
        do {
            try store.changeRules(save: rules, forgetSpend: forgetSpend)
        } catch {
            logger.error("cannot store a rule change", metadata: ["error": "\(error)"])
            throw GatewayError.unavailable("the rule change could not be stored, so nothing changed: \(error)")
        }
        for r in rules { _ = a.records.apply(r) }
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
    static func document(_ rule: LimitRule, source: String, stored: RuleRecord?) -> String {
        var head = "{\"source\":\"\(source)\","
        if let stored {
            head += "\"created_at\":\(LogAPI.iso(stored.createdTs)),\"updated_at\":\(LogAPI.iso(stored.updatedTs)),"
            if !stored.origin.isEmpty { head += "\"changed_on\":\(JSON.quoted(stored.origin)),"}
        }
        return head + RuleDocument.json(rule).dropFirst()
    }
}
