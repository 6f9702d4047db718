import GateMeshCore
/// Decides, locally and in memory, whether a request may go ahead under every limit that applies
/// to it, and keeps the books: reservations before forwarding, actual amounts after.
///
/// Contract: a request is admitted only if, for every matching rule, spent + reserved (by every
/// node, as far as this node has heard) + its own estimate stays within the limit. Admission
/// reserves the estimate in each rule's current bucket; `settle` turns the reservation into the
/// actual amount; `release` drops it (failed or cancelled request); a reservation neither settled
/// nor released by its deadline expires (`expire`). Reservations therefore never outlive their
/// request, and never turn into phantom refusals. Time is always passed in (Unix ms).
/// Cost: O(matching rules × active buckets) per decision; no I/O.
public struct LimitsEngine: Sendable {
    public struct Reservation: Sendable, Hashable {
        public var id: UInt64
        public var entries: [Held]
        public var expiresAt: Int64

        public struct Held: Sendable, Hashable {
            public var key: CounterMap.Key
            public var measure: LimitRule.Measure
            public var amount: Int64
            /// The amount was consumed from this node's rights (a `bounded` or `strict` rule).
            public var fromRights = false
        }
    }

    /// Why a request may not go ahead as asked.
    public struct Refusal: Sendable, Hashable {
        public var rule: LimitRule
        public var scopeValue: String
        public var used: Int64
        public var requested: Int64
        /// Milliseconds until enough of the window frees up for this request (at least 1 s).
        public var retryAfterMs: Int64
        /// When the window resets or rolls past its oldest bucket (Unix ms).
        public var resetsAt: Int64
    }

    /// Rights this node lacks to admit a request: ask `owner` (a node id) for `shortfall` of `key`.
    public struct RightsNeed: Sendable, Hashable {
        public var key: CounterMap.Key
        public var owner: String
        public var shortfall: Int64
        /// The request's estimate under the rule.
        public var need: Int64
        /// What this node took of the counter's rights over about the last second, this request
        /// included: its demand, by which the owner sizes the grant.
        public var rate: Int64 = 0
    }

    /// The members among which a counter's owner is picked (node ids, this node's included):
    /// `live` (alive or suspect) for `bounded` rules, `all` (every member not known to have
    /// left) for `strict` ones, so a strict owner never moves while it may be alive.
    public struct Ownership: Sendable, Hashable {
        public var live: [String]
        public var all: [String]
        /// Every live peer holds the same `all` (`MemberAgreement`): only then does this node hand
        /// out a `strict` counter's rights as its owner (two nodes that hold different sets can
        /// each take themselves for its owner).
        public var agreed: Bool
        public init(live: [String], all: [String], agreed: Bool = true) {
            self.live = live
            self.all = all
            self.agreed = agreed
        }
    }

    public enum Decision: Sendable, Hashable {
        case admit(Reservation)
        case block(Refusal)
        /// The request fits, but this node holds too few rights for it under some `bounded` or
        /// `strict` rule: ask the owners, then decide again (or refuse with the refusal).
        case short(Refusal, [RightsNeed])
        /// A downgrade rule is exhausted: ask again for the cheaper target, skipping that rule.
        case downgrade(Refusal, provider: String?, model: String)
    }

    public let node: String
    public private(set) var counters: CounterMap
    public private(set) var rules: [LimitRule]
    public private(set) var rulesByID: [String: LimitRule] = [:]
    /// True when some rule has alert thresholds (settling skips the alert check otherwise).
    public private(set) var hasAlerts = false
    /// True when some rule is `strict` (the cluster then keeps the members' agreement).
    public private(set) var hasStrict = false
    private var byGateway: [String: RuleIndex] = [:]
    private var reservations: [UInt64: Reservation] = [:]
    /// Reservations that expired unsettled, kept for one more timeout so a long request that ends
    /// late is still charged what it used.
    private var expired: [UInt64: Reservation] = [:]
    private var nextID: UInt64 = 1
    /// How long a reservation may stay open before it expires.
    public var reservationTimeoutMs: Int64
    /// Who owns which counter's rights (set by the cluster; alone, this node owns them all).
    public var ownership: Ownership
    /// Rights a node holds and has not used for this long go back to the pool when the counter is
    /// near its limit (what the node holds is an equal share of the room left, or more)...
    public var rightsIdleMs: Int64 = 1_000
    /// ...and after this long whatever the room left.
    public var rightsKeepMs: Int64 = 30_000
    /// Before this time (Unix ms) the node hands out no rights as an owner: a node that has just
    /// joined, or come back, first learns what the previous owner granted (the shell sets it).
    public var grantsFrom: Int64 = 0

    public init(node: String, rules: [LimitRule], counters: CounterMap? = nil, reservationTimeoutMs: Int64 = 3_600_000) {
        self.node = node
        self.counters = counters ?? CounterMap(node: node)
        self.rules = []
        self.reservationTimeoutMs = reservationTimeoutMs
        self.ownership = Ownership(live: [node], all: [node])
        replaceRules(rules)
    }

    /// Installs a new rule set. A rule that keeps its id keeps its counters, unless its window
    /// changed (its buckets would mean something else): then its counters and fired alerts are
    /// dropped, as are those of rules that are gone. Open reservations stay valid either way.
    /// Returns the ids whose counters were dropped.
    @discardableResult
    public mutating func replaceRules(_ rules: [LimitRule]) -> Set<String> {
        let before = rulesByID
        self.rules = rules
        rulesByID = Dictionary(rules.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        byGateway = Dictionary(grouping: rules, by: \.gateway).mapValues(RuleIndex.init)
        hasAlerts = rules.contains { !$0.alertPermille.isEmpty }
        hasStrict = rules.contains { $0.enforcement == .strict }
        var dropped: Set<String> = []
        for (id, old) in before where rulesByID[id]?.window != old.window { dropped.insert(id) }
        if !dropped.isEmpty {
            counters.removeBuckets { rule, _ in dropped.contains(rule) }
            firedAlerts = firedAlerts.filter { !dropped.contains($0.rule) }
        }
        return dropped
    }

    public var openReservations: Int { reservations.count }

    /// Decides on a request with the given estimate at `now`.
    ///
    /// Only the rules that can match are looked at: those of the request's gateway without a
    /// filter, and those whose first filter (`only`) equals the request's value, found by hash
    /// lookup; so 1,000 per-team rules cost one rule per request, not a thousand.
    public mutating func admit(_ request: LimitRequest, estimate: LimitAmounts, now: Int64, skipping: Set<String> = []) -> Decision {
        var held: [Reservation.Held] = []
        var shortOf: Refusal?
        var needs: [RightsNeed] = []
        // The request's gateway's rules, then those of every gateway (orgs', teams' and keys').
        for pass in 0..<2 {
            guard let index = pass == 0 ? byGateway[request.gateway]
                    : request.gateway != LimitRule.anyGateway ? byGateway[LimitRule.anyGateway] : nil else { continue }
            var scopes = [String?](repeating: nil, count: index.signatures.count)
            // Each distinct window's buckets once per decision (a calendar period is a lookup).
            var spans = [ClosedRange<Int64>?](repeating: nil, count: index.windows.count)
            let candidates = index.candidates(for: request)
            held.reserveCapacity(candidates.count)
            for position in candidates {
                let compiled = index.rules[position]
                guard skipping.isEmpty || !skipping.contains(compiled.rule.id), compiled.matchesFilters(request) else { continue }
                let scope: String
                if let known = scopes[compiled.signature] {
                    scope = known
                } else {
                    guard let value = index.scopeValue(signature: compiled.signature, request) else { continue }
                    scopes[compiled.signature] = value
                    scope = value
                }
                let active: ClosedRange<Int64>
                if let known = spans[compiled.window] {
                    active = known
                } else {
                    active = compiled.rule.window.activeBuckets(at: now)
                    spans[compiled.window] = active
                }
                let need = estimate.value(compiled.rule.measure)
                // The newest active bucket is the one `now` falls in.
                let key = CounterMap.Key(rule: compiled.rule.id, scope: scope, bucket: active.upperBound)
                var used: Int64 = 0
                for bucket in active { used += counters.total(key.inBucket(bucket), now: now) }
                let rights = compiled.rule.enforcement != .soft
                if used + need > compiled.rule.limit {
                    let rule = compiled.rule
                    let refusal = Refusal(rule: rule, scopeValue: scope, used: used, requested: need,
                                          retryAfterMs: retryAfter(rule: rule, scope: scope, need: need, now: now),
                                          resetsAt: rule.window.bucketLeavesAt(active.lowerBound))
                    switch rule.action {
                    case .block: return .block(refusal)
                    case .downgrade(let provider, let model): return .downgrade(refusal, provider: provider, model: model)
                    }
                }
                if rights && need > 0, let lack = lacking(key, rule: compiled.rule, need: need, now: now) {
                    if shortOf == nil {
                        shortOf = Refusal(rule: compiled.rule, scopeValue: scope, used: used, requested: need, retryAfterMs: 1000,
                                          resetsAt: compiled.rule.window.bucketLeavesAt(active.lowerBound))
                    }
                    needs.append(lack)
                }
                held.append(.init(key: key, measure: compiled.rule.measure, amount: need, fromRights: rights && need > 0))
            }
        }
        if let shortOf { return .short(shortOf, needs) }
        let reservation = Reservation(id: nextID, entries: held, expiresAt: now + reservationTimeoutMs)
        nextID += 1
        for h in held where h.amount > 0 {
            // `lacking` found these held, under the same lock: take them without counting again.
            counters.reserve(h.key, h.amount, takingRights: h.fromRights, now: now)
        }
        reservations[reservation.id] = reservation
        return .admit(reservation)
    }

    /// What the journal records of an admitted reservation: each amount held, with, for amounts
    /// taken from rights, what this run has used, got back and given back of that counter's rights
    /// (this admission included).
    public func journalHeld(_ reservation: Reservation) -> [JournalRecord.Held] {
        var held: [JournalRecord.Held] = []
        held.reserveCapacity(reservation.entries.count)
        for e in reservation.entries where e.amount > 0 {
            var h = JournalRecord.Held(key: e.key, amount: e.amount)
            if e.fromRights {
                let own = counters.ownRights(e.key)
                h.own = .init(used: own.used, refunded: own.refunded, returned: own.returned)
            }
            held.append(h)
        }
        return held
    }

    /// Replaces a reservation with what the request actually used. Unknown ids (already settled,
    /// released or expired) are ignored, so a late settle cannot count twice.
    /// Returns what was charged to which counter (to be persisted with the request's log row).
    @discardableResult
    public mutating func settle(_ id: UInt64, actual: LimitAmounts) -> [(key: CounterMap.Key, amount: Int64)] {
        let late = expired.removeValue(forKey: id)
        guard let reservation = reservations.removeValue(forKey: id) ?? late else { return [] }
        var charged: [(key: CounterMap.Key, amount: Int64)] = []
        charged.reserveCapacity(reservation.entries.count)
        for h in reservation.entries {
            let amount = actual.value(h.measure)
            if amount > 0 { charged.append((h.key, amount)) }
            // A late settlement's reservation was already dropped: nothing is held any more.
            let held = late == nil ? h.amount : 0
            if h.fromRights {
                // The request used less than it took (the rest comes back), or more (spent either way).
                counters.settleWithRights(h.key, unreserve: held, spend: amount, takenAt: reservation.expiresAt - reservationTimeoutMs)
            } else {
                counters.settle(h.key, unreserve: held, spend: amount)
            }
        }
        return charged
    }

    /// What `settle(id, actual:)` would charge to which counter, without changing anything (the
    /// log writer prices a batch's settlements before it writes them).
    public func pendingCharges(_ id: UInt64, actual: LimitAmounts) -> [(key: CounterMap.Key, amount: Int64)] {
        guard let reservation = reservations[id] ?? expired[id] else { return [] }
        var charges: [(key: CounterMap.Key, amount: Int64)] = []
        charges.reserveCapacity(reservation.entries.count)
        for h in reservation.entries {
            let amount = actual.value(h.measure)
            if amount > 0 { charges.append((h.key, amount)) }
        }
        return charges
    }

    /// A rule's scope crossed one of its alert thresholds.
    public struct Alert: Sendable, Hashable {
        public var rule: LimitRule
        public var scope: String
        /// The threshold in thousandths of the limit.
        public var permille: Int
        public var spent: Int64
        /// Identifies the window the alert fired in: alerts fire once per threshold per window.
        public var window: Int64
        public var windowStart: Int64
        public var windowEnd: Int64

        public var key: AlertKey { AlertKey(rule: rule.id, scope: scope, window: window, permille: permille) }
    }

    public struct AlertKey: Sendable, Hashable {
        public var rule: String
        public var scope: String
        public var window: Int64
        public var permille: Int
        /// The text nodes hash to agree on which of them sends this alert.
        public var ownerKey: String { "\(rule)\u{1F}\(scope)\u{1F}\(window)\u{1F}\(permille)" }
        public init(rule: String, scope: String, window: Int64, permille: Int) {
            self.rule = rule
            self.scope = scope
            self.window = window
            self.permille = permille
        }
    }

    private var firedAlerts: Set<AlertKey> = []

    /// Marks alerts as already sent (restored after a restart, or learned from peers).
    public mutating func markFired(_ keys: some Sequence<AlertKey>) { firedAlerts.formUnion(keys) }

    /// The alerts whose thresholds the spending on `keys` has now reached and that have not fired
    /// in this window yet; they are marked as fired. Spending, not reservations, is compared.
    /// In a cluster only the alert's owner fires it (`owns`); others leave it unmarked, so that
    /// whichever node owns it when the crossing is seen fires it.
    public mutating func dueAlerts(for keys: some Sequence<CounterMap.Key>, now: Int64,
                                   owns: (AlertKey) -> Bool = { _ in true }) -> [Alert] {
        guard hasAlerts else { return [] }
        var out: [Alert] = []
        var seen: Set<CounterMap.Key> = []
        for key in keys {
            guard let rule = rulesByID[key.rule], !rule.alertPermille.isEmpty else { continue }
            guard seen.insert(.init(rule: key.rule, scope: key.scope, bucket: 0)).inserted else { continue }
            let spent = figures(rule: rule, scope: key.scope, now: now).spent
            let span = rule.window.span(at: now)
            let window = Self.alertWindow(rule.window, now: now)
            for permille in rule.alertPermille where spent * 1000 >= rule.limit * Int64(permille) {
                let alert = Alert(rule: rule, scope: key.scope, permille: permille, spent: spent, window: window,
                                  windowStart: span.start, windowEnd: span.end)
                if !firedAlerts.contains(alert.key) && owns(alert.key) {
                    firedAlerts.insert(alert.key)
                    out.append(alert)
                }
            }
        }
        return out
    }

    /// The window an alert belongs to: the calendar or fixed period, or for rolling windows the
    /// window-length period of the epoch (so a threshold fires at most once per window length).
    public static func alertWindow(_ window: Window, now: Int64) -> Int64 {
        switch window {
        case .calendar, .fixed: return window.bucket(at: now)
        case .rolling(let l, _), .sliding(let l, _): return Window.floorDiv(now, l)
        }
    }

    /// Drops a reservation without counting anything (the request failed before any cost).
    public mutating func release(_ id: UInt64) {
        guard let reservation = reservations.removeValue(forKey: id) else { return }
        for h in reservation.entries { unreserve(h) }
    }

    /// Releases reservations past their deadline, drops buckets whose window has passed and
    /// renews the leases of this node's reservation figures. Call every second or so.
    /// Returns how many reservations expired, and the ids of expired ones forgotten for good
    /// (no late settle can charge them any more).
    @discardableResult
    public mutating func expire(now: Int64) -> (expired: Int, forgotten: [UInt64]) {
        counters.renewLeases(now: now)
        returnIdleRights(now: now)
        counters.returnEarlierRuns()
        if now >= grantsFrom {
            let live = Set(ownership.live), rules = rulesByID, ownership = self.ownership, node = self.node
            counters.renewRightsLeases(now: now, live: live) { key in
                guard let rule = rules[key.rule], rule.enforcement != .soft else { return false }
                return Self.owner(of: key, rule: rule, ownership: ownership, node: node) == node
            }
        }
        let overdue = reservations.values.filter { $0.expiresAt <= now }
        for r in overdue {
            release(r.id)
            expired[r.id] = r
        }
        var forgotten: [UInt64] = []
        expired = expired.filter {
            if $0.value.expiresAt + reservationTimeoutMs > now { return true }
            forgotten.append($0.key)
            return false
        }
        counters.removeBuckets { id, bucket in
            guard let rule = rulesByID[id] else { return true }
            return rule.window.isExpired(bucket: bucket, at: now)
        }
        firedAlerts = firedAlerts.filter { key in
            guard let rule = rulesByID[key.rule] else { return false }
            return key.window >= Self.alertWindow(rule.window, now: now)
        }
        return (overdue.count, forgotten)
    }

    /// Applies a peer's counters.
    /// Merges a peer's counters; returns the keys whose spending changed (the only ones whose
    /// alerts can have become due).
    @discardableResult
    public mutating func merge(_ delta: [CounterMap.Key: CounterMap.Entry]) -> [CounterMap.Key] {
        counters.merge(delta)
    }

    /// Spent plus reserved, cluster-wide as far as known, for `rule` and `scope` at `now`.
    public func usage(rule: LimitRule, scope: String, now: Int64) -> Int64 {
        var total: Int64 = 0
        for bucket in rule.window.activeBuckets(at: now) { total += counters.total(.init(rule: rule.id, scope: scope, bucket: bucket), now: now) }
        return total
    }

    /// Spent and reserved separately (for the budgets API).
    public func figures(rule: LimitRule, scope: String, now: Int64) -> (spent: Int64, reserved: Int64) {
        var spent: Int64 = 0
        var reserved: Int64 = 0
        for bucket in rule.window.activeBuckets(at: now) {
            let key = CounterMap.Key(rule: rule.id, scope: scope, bucket: bucket)
            if let entry = counters.entry(key) {
                spent += entry.spent.value
                reserved += counters.reserved(key, now: now)
            }
        }
        return (spent, reserved)
    }

    /// Runs `body` with the counters, which it may change (the replicator keeps its digests there).
    public mutating func withCounters<T>(_ body: (inout CounterMap) -> T) -> T { body(&counters) }

    /// Every rule's scope values in its current window, in one pass over the counters.
    public func scopesByRule(now: Int64) -> [String: [String]] {
        var found: [String: Set<String>] = [:]
        for key in counters.keys {
            guard let rule = rulesByID[key.rule], rule.window.activeBuckets(at: now).contains(key.bucket) else { continue }
            found[key.rule, default: []].insert(key.scope)
        }
        return found.mapValues { $0.sorted() }
    }

    /// Restores a persisted slot (this node's, or a peer's when `slotNode` names another node)
    /// only if its bucket can belong to `rule`'s window at `now` (a rule whose window changed
    /// between runs must not read old buckets as new ones).
    public mutating func restoreIfCurrent(_ key: CounterMap.Key, slotNode: String? = nil, spent amount: Int64, now: Int64) -> Bool {
        guard let rule = rulesByID[key.rule], rule.window.activeBuckets(at: now).contains(key.bucket) else { return false }
        if let slotNode, slotNode != node {
            counters.merge([key: CounterMap.Entry(spent: GCounter(slots: [slotNode: amount]))])
        } else {
            counters.spend(key, amount)
        }
        return true
    }

    private mutating func unreserve(_ h: Reservation.Held) {
        guard h.amount > 0 else { return }
        counters.addReserved(h.key, -h.amount)
        if h.fromRights { counters.refundRights(h.key, h.amount) }
    }

    // MARK: Rights

    /// The name a counter's owner is picked by.
    public static func ownerKey(_ key: CounterMap.Key) -> String { "\(key.rule)\u{1F}\(key.scope)\u{1F}\(key.bucket)" }

    /// The node (id) that owns `key`'s rights under `rule`.
    public func owner(of key: CounterMap.Key, rule: LimitRule) -> String {
        Self.owner(of: key, rule: rule, ownership: ownership, node: node)
    }

    static func owner(of key: CounterMap.Key, rule: LimitRule, ownership: Ownership, node: String) -> String {
        Rendezvous.owner(of: ownerKey(key), among: rule.enforcement == .strict ? ownership.all : ownership.live) ?? node
    }

    /// How much the owner hands out for a shortfall: the shortfall, or a share of what the pool
    /// holds when that is more, so that far from the limit a node asks rarely and near it the last
    /// rights go where the requests are. The share is an equal one (half the pool over the live
    /// members), or, for a node whose demand (`rate`: what it took over the last second) is more,
    /// a second of that demand, up to half the pool: busy nodes ask less often than idle ones.
    func grantSize(pool: Int64, shortfall: Int64, rate: Int64) -> Int64 {
        max(shortfall, pool / Int64(2 * max(1, ownership.live.count)), min(pool / 2, rate))
    }

    /// nil when this node holds `need` of `key`'s rights (drawing them from the pool first when it
    /// owns the key); otherwise what to ask for.
    private mutating func lacking(_ key: CounterMap.Key, rule: LimitRule, need: Int64, now: Int64) -> RightsNeed? {
        var held = counters.rightsInLease(key, now: now)
        if held >= need { return nil }
        counters.touchRights(key, now: now)
        let owner = self.owner(of: key, rule: rule), rate = counters.rightsRate(key, now: now) + need
        if owner == node {
            _ = draw(key, rule: rule, for: counters.holder, shortfall: need - held, rate: rate, now: now)
            held = counters.rightsInLease(key, now: now)
            if held >= need { return nil }
        }
        return RightsNeed(key: key, owner: owner, shortfall: need - held, need: need, rate: rate)
    }

    /// The owner draws rights from `key`'s pool for `holder`: at least `shortfall`, or nothing
    /// when the pool has less (or this node may not grant yet: see `grantsFrom`, and for `strict`
    /// `Ownership.agreed`).
    private mutating func draw(_ key: CounterMap.Key, rule: LimitRule, for holder: String, shortfall: Int64, rate: Int64, now: Int64) -> Int64 {
        let pool = self.pool(key, rule: rule, now: now)
        guard pool >= shortfall, now >= grantsFrom, rule.enforcement != .strict || ownership.agreed else { return 0 }
        // At most `pool` (the shortfall fits, and a share is half the pool at most).
        return counters.grantRights(key, grantSize(pool: pool, shortfall: shortfall, rate: rate), to: holder, limit: rule.limit, now: now)
    }

    /// What the owner of `key` can still hand out: the limit less what is granted and not given
    /// back, or less what is known spent and reserved when that is more (rights of an earlier
    /// run that nobody remembers: a restarted cluster, a bucket spent before its rule had rights).
    public func pool(_ key: CounterMap.Key, rule: LimitRule, now: Int64) -> Int64 {
        let rights = counters.rights(key)
        let out = rights.grantedTotal - rights.returnedTotal - stranded(rights, rule: rule, now: now)
        return rule.limit - max(out, counters.total(key, now: now))
    }

    /// Rights held by node runs that can no longer use them, which the owner hands out again:
    /// - `bounded`: those whose lease (the latest any owner gave them) and the allowed clock drift
    ///   have passed (the holder stopped using them a drift before its lease ran out, by its own
    ///   clock), and those of earlier runs of this node. What such a holder used before its lease
    ///   ran out and this node has not heard of yet is the overshoot `bounded` allows when a node
    ///   dies or is cut off; its spend, and its reservations until their lease runs out, are in the
    ///   counter's total, and its journal charges its requests in flight when it comes back.
    /// - `strict`: only those of nodes that left (gracefully, or marked gone by an operator) and
    ///   whose lease has passed: a node that may be alive behind a partition keeps what it holds
    ///   until it gives it back.
    func stranded(_ rights: RightsEntry, rule: LimitRule, now: Int64) -> Int64 {
        var total: Int64 = 0
        let drift = counters.driftMs
        let strict = rule.enforcement == .strict
        var members: Set<String> = []
        if strict { members = Set(ownership.all) }
        for (h, held) in rights.holders where held > 0 && h != counters.holder {
            let lapsed = rights.lease(of: h) &+ drift < now
            let node = RightsEntry.split(holder: h).node
            if strict {
                if lapsed && !members.contains(String(node)) { total += held }
            } else if lapsed || node == self.node {
                total += held
            }
        }
        return total
    }

    /// A peer (`holder`, a node in one run) asks this node, as `key`'s owner, for rights. Returns
    /// whether any were granted (false also when this node does not own `key` or its bucket is
    /// not current).
    public mutating func grant(_ key: CounterMap.Key, to holder: String, shortfall: Int64, need: Int64, rate: Int64 = 0, now: Int64) -> Bool {
        guard shortfall > 0, let rule = rulesByID[key.rule], rule.enforcement != .soft,
              rule.window.activeBuckets(at: now).upperBound == key.bucket, owner(of: key, rule: rule) == node else { return false }
        return draw(key, rule: rule, for: holder, shortfall: shortfall, rate: rate, now: now) > 0
    }

    /// Gives back to the pool the rights this node holds and has not touched for `rightsIdleMs`,
    /// if the counter is near its limit (what this node holds is at least an equal share, over the
    /// live members, of the room left: limit less spent and reserved), or for `rightsKeepMs`. Far
    /// from the limit idle rights cost the others nothing, and keeping them spares a node with
    /// sparse traffic a round trip to the owner on each request. Returns the keys whose rights
    /// changed. (`now: .max` gives back everything: a node that leaves.)
    @discardableResult
    public mutating func returnIdleRights(now: Int64) -> [CounterMap.Key] {
        let n = Int64(max(1, ownership.live.count))
        let due = counters.idleRights(now: now, idleMs: rightsIdleMs).filter { idle in
            guard idle.idleMs < rightsKeepMs, let rule = rulesByID[idle.key.rule] else { return true }
            let room = rule.limit - counters.total(idle.key, now: now)
            return idle.held * 2 * n >= room
        }
        return counters.giveBackRights(due.map(\.key))
    }

    /// Time until the oldest buckets leave the window and free at least `need` (rolling), or
    /// until the period resets (calendar, fixed). Never less than one second.
    private func retryAfter(rule: LimitRule, scope: String, need: Int64, now: Int64) -> Int64 {
        let active = rule.window.activeBuckets(at: now)
        var used = usage(rule: rule, scope: scope, now: now)
        var at = rule.window.bucketLeavesAt(active.lowerBound)
        if need <= rule.limit {
            for bucket in active {
                at = rule.window.bucketLeavesAt(bucket)
                used -= counters.total(.init(rule: rule.id, scope: scope, bucket: bucket), now: now)
                if used + need <= rule.limit { break }
            }
        }
        return max(1000, at - now)
    }
}

/// A gateway's rules, indexed for admission: the rules without a filter, the rules by their first
/// filter's dimension and value, and the distinct lists of split dimensions (rules that split the
/// same way share one scope value per request).
struct RuleIndex: Sendable {
    /// A class, so the admission loop reads a rule through one reference instead of copying it.
    final class Compiled: Sendable {
        let rule: LimitRule
        let filters: [(LimitRule.Dimension, String)]
        /// Index into `signatures`.
        let signature: Int
        /// Index into `windows`.
        let window: Int

        init(rule: LimitRule, filters: [(LimitRule.Dimension, String)], signature: Int, window: Int) {
            self.rule = rule
            self.filters = filters
            self.signature = signature
            self.window = window
        }

        func matchesFilters(_ request: LimitRequest) -> Bool {
            for (dimension, value) in filters where request.value(dimension) != value { return false }
            return true
        }
    }

    var rules: [Compiled] = []
    var unfiltered: [Int] = []
    var filtered: [LimitRule.Dimension: [String: [Int]]] = [:]
    var signatures: [[LimitRule.Dimension]] = []
    var windows: [Window] = []

    init(_ rules: [LimitRule]) {
        var signatureIDs: [[LimitRule.Dimension]: Int] = [:]
        var windowIDs: [Window: Int] = [:]
        for (position, rule) in rules.enumerated() {
            var filters: [(LimitRule.Dimension, String)] = []
            var splits: [LimitRule.Dimension] = []
            for s in rule.scope {
                switch s {
                case .only(let d, let v): filters.append((d, v))
                case .split(let d): splits.append(d)
                }
            }
            let signature: Int
            if let known = signatureIDs[splits] {
                signature = known
            } else {
                signature = signatures.count
                signatures.append(splits)
                signatureIDs[splits] = signature
            }
            let window: Int
            if let known = windowIDs[rule.window] {
                window = known
            } else {
                window = windows.count
                windows.append(rule.window)
                windowIDs[rule.window] = window
            }
            self.rules.append(Compiled(rule: rule, filters: filters, signature: signature, window: window))
            if let (d, v) = filters.first {
                filtered[d, default: [:]][v, default: []].append(position)
            } else {
                unfiltered.append(position)
            }
        }
    }

    /// Positions of the rules that may apply to `request`, in rule order.
    func candidates(for request: LimitRequest) -> [Int] {
        guard !filtered.isEmpty else { return unfiltered }
        var out = unfiltered
        var extra = false
        for (dimension, byValue) in filtered {
            if let value = request.value(dimension), let positions = byValue[value] {
                out.append(contentsOf: positions)
                extra = true
            }
        }
        if extra && !unfiltered.isEmpty || filtered.count > 1 { out.sort() }
        return out
    }

    /// The scope value for a list of split dimensions: `""` for none, nil when the request lacks one.
    func scopeValue(signature: Int, _ request: LimitRequest) -> String? {
        let dims = signatures[signature]
        if dims.isEmpty { return "" }
        var out = ""
        for (i, d) in dims.enumerated() {
            guard let value = request.value(d) else { return nil }
            if i > 0 { out += "," }
            out += "\(d)=\(value)"
        }
        return out
    }
}
