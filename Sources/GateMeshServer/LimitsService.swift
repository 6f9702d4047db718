import Foundation
import GateMeshAccounting
import GateMeshCluster
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import GateMeshConfig
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Synchronization

/// The node's budgets and rate limits: the pure `LimitsEngine` behind a lock, with the clock read
/// here, the rules from the config plus those made through the admin API (stored in SQLite), and
/// a service that expires overdue reservations and passed buckets every second.
///
/// Every decision is in memory; nothing here waits on the disk or the network. Rule changes
/// through the admin API are written to SQLite first and installed after, one change at a time.
final class LimitsService: Service, SpendSource, Sendable {
    let engine: NIOLockedValueBox<LimitsEngine>
    let node: String
    let nodeName: String
    let log: RequestLog
    let store: NodeStore
    let alerts: AlertDispatcher?
    let logger: Logger
    let reservationTimeoutMs: Int64
    /// What the config says: its rules (which the admin API lists but cannot change) and the
    /// gateways rules may belong to. A config reload replaces it (under the admin lock).
    struct Configured {
        var rules: [LimitRule]
        var ids: Set<String>
        var gateways: Set<String>
    }
    let configured: NIOLockedValueBox<Configured>
    var configRules: [LimitRule] { configured.withLockedValue { $0.rules } }
    var configIDs: Set<String> { configured.withLockedValue { $0.ids } }
    var gateways: Set<String> { configured.withLockedValue { $0.gateways } }
    /// True while some rule exists: the request path skips the engine's lock otherwise.
    let hasRules: Synchronization.Atomic<Bool>
    /// Rules made through the admin API, in creation order, and stored ones that cannot be used.
    let admin: NIOLockedValueBox<AdminRules>
    /// The counter version up to which this node's own spend is on disk.
    private let persistedVersion: NIOLockedValueBox<UInt64>
    /// Every reservation, from admission to its end, so a killed run's are charged at restart.
    let journal: ReservationJournal
    /// Reservations settled in memory without a log row (the log's queue was full) whose charge
    /// goes to disk with the next spend batch.
    private let settledOffLog = NIOLockedValueBox<[UInt64]>([])

    struct AdminRules {
        var rules: [(rule: LimitRule, stored: RuleRecord)] = []
        var inactive: [(stored: RuleRecord, reason: String)] = []
        /// Every rule's current version and the tombstones of deleted ones, as replicated; also
        /// the records of orgs, teams and virtual keys (ids `org:…`, `team:…`, `key:…`).
        var records = RuleRecords()
        /// The orgs, teams and keys those records hold.
        var directory = KeyDirectory()
    }
    /// The directory as of the last change, for the request path (read without the admin lock).
    let directory = NIOLockedValueBox(KeyDirectory())
    /// The cluster, once it has joined (`join`); nil on a node alone. Held weakly: the cluster
    /// holds the limits.
    private let peersRef = NIOLockedValueBox(PeersRef())
    private struct PeersRef { weak var peers: (any LimitsPeers)? }
    var peers: (any LimitsPeers)? { peersRef.withLockedValue { $0.peers } }
    func join(_ peers: any LimitsPeers) { peersRef.withLockedValue { $0.peers = peers } }
    /// One ask per counter every 100 ms from this node, however many requests wait on it.
    private let askThrottle = NIOLockedValueBox(AskThrottle())
    /// How long a request waits for rights before it is refused.
    let rightsWaitMs: Int64

    /// Loads the stored rules and restores this node's own counters from the spend persisted with
    /// its log rows, so a node killed and restarted comes back with the spend its log shows and
    /// never rewinds its slot.
    init(node: String, nodeName: String, configRules: [LimitRule], gateways: Set<String>, store: NodeStore,
         journal: ReservationJournal, reservationTimeoutMs: Int, rightsWaitMs: Int = 2_000, log: RequestLog, alerts: AlertDispatcher?,
         logger: Logger) throws {
        self.node = node
        self.rightsWaitMs = Int64(rightsWaitMs)
        self.journal = journal
        self.nodeName = nodeName
        self.log = log
        self.store = store
        self.alerts = alerts
        self.logger = logger
        let configIDs = Set(configRules.map(\.id))
        self.configured = NIOLockedValueBox(Configured(rules: configRules, ids: configIDs, gateways: gateways))
        self.reservationTimeoutMs = Int64(reservationTimeoutMs)

        var admin = AdminRules()
        for stored in try store.storedRules() {
            _ = admin.records.apply(stored)
            if AdminRecordID.parse(stored.id) != nil {
                Self.install(stored, into: &admin.directory, logger: logger)
                continue
            }
            if stored.deleted { continue }
            switch Self.classify(stored, gateways: gateways, configIDs: configIDs, alerts: alerts != nil) {
            case .success(let rule): admin.rules.append((rule, stored))
            case .failure(let reason): admin.inactive.append((stored, reason.message))
            }
        }
        for (stored, reason) in admin.inactive {
            logger.warning("a rule made through the admin API is not in force", metadata: ["rule": "\(stored.id)", "reason": "\(reason)"])
        }
        let rules = configRules + admin.rules.map(\.rule) + admin.directory.rules
        let now = Self.now()
        // Versions must exceed any this node used before a restart: each run has its own range.
        var engine = LimitsEngine(node: node, rules: rules, counters: CounterMap(node: node, startVersion: CounterMap.startVersion(epoch: journal.epoch), epoch: journal.epoch),
                                  reservationTimeoutMs: Int64(reservationTimeoutMs))
        if !rules.isEmpty {
            // One row per counter: cheap to read whole; buckets outside their rule's window are skipped.
            for c in try log.limitSpend(sinceTs: 0) {
                _ = engine.restoreIfCurrent(.init(rule: c.rule, scope: c.scope, bucket: c.bucket), slotNode: c.node, spent: c.amount, now: now)
            }
            let lookback = (rules.map(\.window.maxLengthMs).max() ?? 0) + Int64(reservationTimeoutMs)
            engine.markFired(try log.alerts.fired(sinceTs: now - lookback).map {
                LimitsEngine.AlertKey(rule: $0.rule, scope: $0.scope, window: $0.window, permille: $0.permille)
            })
        }
        // Also starts the leases of this node's reservation figures.
        engine.expire(now: now)
        try Self.recover(journal: journal, engine: &engine, node: node, log: log, now: now, logger: logger)
        // What was just restored is on disk already.
        self.persistedVersion = NIOLockedValueBox(engine.counters.version)
        self.engine = NIOLockedValueBox(engine)
        self.hasRules = Atomic(!rules.isEmpty)
        self.directory.withLockedValue { [admin] in $0 = admin.directory }
        self.admin = NIOLockedValueBox(admin)
        log.persistSpend(from: self)
    }

    static func now() -> Int64 { WallClock.nowMs() }

    /// Charges, at their estimate, the reservations an earlier run left open in the journal (it
    /// was killed with those requests in flight: what they cost is unknown, that they were sent
    /// is not), writes the charges and the recovery mark in one transaction, then clears the
    /// journal. Runs before the node admits anything.
    static func recover(journal: ReservationJournal, engine: inout LimitsEngine, node: String, log: RequestLog, now: Int64,
                        logger: Logger) throws {
        let marks = try log.journalMarks()
        let unsettled = journal.previous.unsettled(committed: marks.committed, recoveredThrough: marks.recoveredThrough)
        var costNanos: Int64 = 0
        var touched: Set<CounterMap.Key> = []
        for (_, held) in unsettled {
            for h in held where h.amount > 0 {
                // A bucket whose window has passed, or a rule that is gone, limits nothing any more.
                guard engine.restoreIfCurrent(h.key, spent: h.amount, now: now), let rule = engine.rulesByID[h.key.rule] else { continue }
                touched.insert(h.key)
                if rule.measure == .usd { costNanos += h.amount }
            }
        }
        // What earlier runs granted, used and gave back: their unused rights go back to the pool
        // (`returnEarlierRuns`), and this run's journal carries the figures on.
        var restoredRights = 0
        for (key, rights) in journal.previous.rights(node: node) {
            guard let rule = engine.rulesByID[key.rule], rule.enforcement != .soft,
                  rule.window.activeBuckets(at: now).contains(key.bucket) else { continue }
            engine.withCounters { $0.restoreRights(key, rights) }
            restoredRights += 1
        }
        if restoredRights > 0 {
            engine.withCounters { $0.returnEarlierRuns() }
            journal.rights(engine.withCounters { $0.takeRightsChanges() })
            logger.info("restored the rights earlier runs granted and used, and gave back what they held",
                        metadata: ["counters": "\(restoredRights)"])
        }
        if journal.previous.records > 0 {
            let slots = touched.map { key in
                LimitCharge(node: node, rule: key.rule, scope: key.scope, bucket: key.bucket,
                            amount: engine.counters.entry(key)?.spent.slot(node) ?? 0)
            }
            try log.persistRecovery(slots, recoveredThrough: journal.epoch - 1)
        }
        journal.forgetPrevious()
        if !unsettled.isEmpty {
            logger.warning("charged the requests a previous run left in flight at their estimate", metadata: [
                "reservations": "\(unsettled.count)", "usd": "\(Money(nanos: costNanos).dollars)",
            ])
        }
        if journal.tornBytes > 0 {
            logger.info("the reservation journal ended in a torn record (the previous run was killed mid-write)",
                        metadata: ["bytes": "\(journal.tornBytes)"])
        }
    }

    struct Inactive: Error {
        var message: String
    }

    /// A stored rule as this node can use it, or why it cannot.
    static func classify(_ stored: RuleRecord, gateways: Set<String>, configIDs: Set<String>,
                         alerts: Bool) -> Result<LimitRule, Inactive> {
        do {
            guard let rule = try RuleDocument.parse(stored.definition, gateways: gateways).first else {
                return .failure(Inactive(message: "the stored definition holds no rule"))
            }
            if configIDs.contains(rule.id) {
                return .failure(Inactive(message: "the config now defines a rule with this id; the config's rule applies"))
            }
            if !rule.alertPermille.isEmpty && !alerts {
                return .failure(Inactive(message: "the rule has alerts, but no alerts.webhook is configured"))
            }
            return .success(rule)
        } catch {
            return .failure(Inactive(message: error.description))
        }
    }

    var isEmpty: Bool { !hasRules.load(ordering: .relaxed) }

    /// Decides on a request; an admitted reservation is in the journal when this returns. Never
    /// `.short`: a request that needs rights from a counter's owner (a `bounded` or `strict` rule
    /// near its limit) asks for them and waits up to `rightsWaitMs`, then is refused (or
    /// downgraded, by a downgrade rule).
    func admit(_ request: LimitRequest, estimate: LimitAmounts, skipping: Set<String> = []) async -> LimitsEngine.Decision {
        if !catchUp.withLockedValue({ $0.done }) { await waitForCatchUp() }
        var deadline: Int64?
        var askedAt: Int64?
        while true {
            let now = Self.now()
            let (decision, alone, rights, held) = engine.withLockedValue { engine -> (LimitsEngine.Decision, Bool, [(key: CounterMap.Key, rights: RightsEntry)], [JournalRecord.Held]) in
                let decision = engine.admit(request, estimate: estimate, now: now, skipping: skipping)
                var held: [JournalRecord.Held] = []
                if case .admit(let reservation) = decision { held = engine.journalHeld(reservation) }
                // Grants drawn and rights given back while deciding (rare).
                return (decision, engine.ownership.live.count <= 1 && now >= engine.grantsFrom,
                        engine.withCounters { $0.takeRightsChanges() }, held)
            }
            guard case .short(let refusal, let needs) = decision else {
                if case .admit(let reservation) = decision, !held.isEmpty {
                    // The rights it took are in the journal before the request is sent.
                    journal.open(id: reservation.id, held: held, rights: rights)
                } else {
                    journal.rights(rights)
                }
                return decision
            }
            journal.rights(rights)
            let end = deadline ?? now + rightsWaitMs
            deadline = end
            // Alone, no one can hand back rights: the pool is what there is.
            if alone || now >= end || Task.isCancelled {
                if case .downgrade(let provider, let model) = refusal.rule.action { return .downgrade(refusal, provider: provider, model: model) }
                return .block(refusal)
            }
            // Ask again every 100 ms while waiting (an answer may be lost, or the owner may change).
            if now - (askedAt ?? 0) >= 100, let peers {
                askedAt = now
                // One ask per counter every 100 ms from this node, however many requests wait.
                let due = askThrottle.withLockedValue { $0.due(needs.filter { $0.owner != node }, now: now) }
                if !due.isEmpty { peers.askForRights(due, holder: holder) }
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Whether this node has caught up with what its peers hold (of its own slots, among the
    /// rest) since it started. Alone, it has from the start.
    struct CatchUp {
        var done = true
        var startedAt: Int64 = 0
        var deadline: Int64 = 0
    }
    let catchUp = NIOLockedValueBox(CatchUp())

    /// A node starting in a cluster admits nothing under a rule until it has merged a peer's
    /// counters (a restarted node whose disk lost its last writes gets its own slots back first,
    /// so it never counts on from a lower figure), or until `deadline` (Unix ms); it hands out
    /// no rights as an owner until then either.
    func expectCatchUp(until deadline: Int64) {
        let now = Self.now()
        catchUp.withLockedValue { $0 = CatchUp(done: false, startedAt: now, deadline: deadline) }
        engine.withLockedValue { $0.grantsFrom = deadline }
    }

    /// The node has caught up (`why` says how, for the log).
    func caughtUp(_ why: String) {
        let now = Self.now()
        guard let startedAt = catchUp.withLockedValue({ c -> Int64? in
            guard !c.done else { return nil }
            c.done = true
            return c.startedAt
        }) else { return }
        engine.withLockedValue { $0.grantsFrom = min($0.grantsFrom, now) }
        logger.info("caught up with the peers' counters", metadata: ["after_ms": "\(now - startedAt)", "how": "\(why)"])
    }

    private func waitForCatchUp() async {
        while true {
            let (done, deadline) = catchUp.withLockedValue { ($0.done, $0.deadline) }
            if done { return }
            if Self.now() >= deadline {
                let first = catchUp.withLockedValue { c -> Bool in
                    defer { c.done = true }
                    return !c.done
                }
                if first {
                    logger.warning("admitting without having heard from a peer: no peer's counters arrived within the catch-up wait",
                                   metadata: ["wait_ms": "\(deadline - catchUp.withLockedValue { $0.startedAt })"])
                }
                return
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Gives back to their pools every right this node holds (it is leaving); returns how many
    /// counters that changed.
    func returnAllRights() -> Int {
        let (count, rights) = engine.withLockedValue { ($0.returnIdleRights(now: .max).count, $0.withCounters { $0.takeRightsChanges() }) }
        journal.rights(rights)
        return count
    }

    /// This node in this run, as a holder of rights.
    var holder: String { engine.withLockedValue { $0.counters.holder } }

    /// Installs who owns which counter's rights (the cluster calls it when membership changes).
    /// Returns whether some rule is `strict` (the cluster then keeps the members' agreement).
    @discardableResult
    func setOwnership(_ ownership: LimitsEngine.Ownership) -> Bool {
        engine.withLockedValue { e in
            if e.ownership != ownership { e.ownership = ownership }
            return e.hasStrict
        }
    }

    /// A peer asks this node, as `key`'s owner, for rights: what to send back (this node's figures
    /// with its grant and lease to the asker, granted this time or not), or nil when the key is
    /// unknown or holds none of this node's figures.
    func grant(_ key: CounterMap.Key, to holder: String, shortfall: Int64, need: Int64, rate: Int64) -> CounterMap.Entry? {
        let now = Self.now()
        return engine.withLockedValue { engine in
            _ = engine.grant(key, to: holder, shortfall: shortfall, need: need, rate: rate, now: now)
            // In the journal before any frame can carry the grant (under the lock the replicator
            // takes to read the counters), so a restarted owner knows what it handed out.
            journal.rights(engine.withCounters { $0.takeRightsChanges() })
            // The asker takes only this node's figures from it (`FigureAuthority`), and of the
            // grants and leases (one per holder) needs its own; the rest travel in deltas.
            return engine.counters.ownEntries([key], pairsTo: holder)[key]
        }
    }

    /// Settles a reservation at what the request actually used, without a log row (the log's
    /// queue was full), and fires the alerts it crossed. The spend reaches SQLite with the
    /// request log's next batch, which closes the reservation in the journal.
    func settle(_ id: UInt64, actual: LimitAmounts) {
        settledOffLog.withLockedValue { $0.append(id) }
        apply(id, actual: actual)
    }

    private func apply(_ id: UInt64, actual: LimitAmounts) {
        let now = Self.now()
        let peers = self.peers
        // What settling changes of the rights (a refund, or more used) reaches the journal once
        // for the whole batch (`commit`), or with the next admission or tick: a refund lost in a
        // kill only leaves rights unused, and what a request used beyond its reservation is in
        // its spend (and its journal charge).
        let due = engine.withLockedValue { engine in
            let charged = engine.settle(id, actual: actual)
            guard engine.hasAlerts && !charged.isEmpty else { return [LimitsEngine.Alert]() }
            return engine.dueAlerts(for: charged.lazy.map(\.key), now: now, owns: { peers?.ownsAlert($0) ?? true })
        }
        fire(due, now: now)
    }

    private func fire(_ due: [LimitsEngine.Alert], now: Int64) {
        guard !due.isEmpty, let alerts else { return }
        for alert in due { alerts.fire(alert, node: nodeName, now: now) }
        peers?.alertsFired(due.map(\.key))
    }

    /// Alerts a peer fired: not to be sent again from here, even after a restart (recorded as
    /// delivered, so they are never sent from here).
    func markFired(_ keys: [LimitsEngine.AlertKey]) {
        engine.withLockedValue { $0.markFired(keys) }
        let log = self.log, now = Self.now()
        Task {
            for k in keys {
                try? await log.alerts.record(rule: k.rule, scope: k.scope, window: k.window, permille: k.permille, ts: now, body: "",
                                           deliveredTs: now)
            }
        }
    }

    // MARK: SpendSource

    struct SlotID: Hashable {
        var node: String
        var key: CounterMap.Key
    }

    func prepare(_ settlements: [PendingSettlement]) -> (slots: [LimitCharge], version: UInt64, mark: SpendBatchMark?) {
        let since = persistedVersion.withLockedValue { $0 }
        var ids = settledOffLog.withLockedValue { taken in
            defer { taken = [] }
            return taken
        }
        ids += settlements.map(\.reservation)
        // In the journal before the batch's transaction: if the process dies after the commit,
        // the committed mark says these reservations' charges are on disk.
        let mark = ids.isEmpty ? nil : journal.settling(ids: ids)
        let (slots, version) = engine.withLockedValue { engine in
            let (changed, version) = engine.counters.spentSlots(since: since)
            var values: [SlotID: Int64] = [:]
            for c in changed { values[SlotID(node: c.node, key: c.key)] = c.spent }
            var pending: [CounterMap.Key: Int64] = [:]
            for s in settlements {
                for (key, amount) in engine.pendingCharges(s.reservation, actual: s.actual) { pending[key, default: 0] += amount }
            }
            for (key, amount) in pending {
                values[SlotID(node: node, key: key)] = (engine.counters.entry(key)?.spent.slot(node) ?? 0) + amount
            }
            return (values.map { LimitCharge(node: $0.key.node, rule: $0.key.key.rule, scope: $0.key.key.scope, bucket: $0.key.key.bucket,
                                             amount: $0.value) }, version)
        }
        return (slots, version, mark)
    }

    func commit(_ settlements: [PendingSettlement], version: UInt64?, mark: SpendBatchMark?) {
        for s in settlements { apply(s.reservation, actual: s.actual) }
        // The rights the batch's requests gave back, in one write for the batch.
        journal.rights(engine.withLockedValue { $0.withCounters { $0.takeRightsChanges() } })
        if let version { persistedVersion.withLockedValue { $0 = max($0, version) } }
        // A failed batch leaves its reservations settling in the journal: a later committed
        // batch (which writes the same slots, from `persistedVersion` on) closes them.
        if version != nil, let mark { journal.committed(mark) }
    }

    /// Every rule's scope values in their current window, with each node's spent and reserved.
    /// For `bounded` and `strict` rules, `rights` is what each node (id) holds and `pool` what the
    /// owner can still hand out, in the current bucket.
    func contributions() -> [(rule: LimitRule, scope: String, byNode: [String: (spent: Int64, reserved: Int64, rights: Int64)], pool: Int64?)] {
        let now = Self.now()
        return engine.withLockedValue { engine in
            let scopes = engine.scopesByRule(now: now)
            var out: [(rule: LimitRule, scope: String, byNode: [String: (spent: Int64, reserved: Int64, rights: Int64)], pool: Int64?)] = []
            for rule in engine.rules {
                for scope in scopes[rule.id] ?? [] {
                    var byNode: [String: (spent: Int64, reserved: Int64, rights: Int64)] = [:]
                    var pool: Int64?
                    if rule.enforcement != .soft {
                        let rights = engine.counters.rights(.init(rule: rule.id, scope: scope, bucket: rule.window.activeBuckets(at: now).upperBound))
                        pool = engine.pool(.init(rule: rule.id, scope: scope, bucket: rule.window.activeBuckets(at: now).upperBound), rule: rule, now: now)
                        for (holder, held) in rights.holders where held != 0 {
                            byNode[Self.nodeID(ofHolder: holder), default: (0, 0, 0)].rights += held
                        }
                    }
                    for bucket in rule.window.activeBuckets(at: now) {
                        guard let e = engine.counters.entry(.init(rule: rule.id, scope: scope, bucket: bucket)) else { continue }
                        for (node, v) in e.spent.slots { byNode[node, default: (0, 0, 0)].spent += v }
                        let drift = engine.counters.driftMs
                        // Figures whose lease ran out (their node died) no longer hold budget.
                        for (node, slot) in e.reserved.slots where node == self.node || slot.holds(at: now, driftMs: drift) {
                            byNode[node, default: (0, 0, 0)].reserved += slot.value
                        }
                    }
                    out.append((rule, scope, byNode, pool))
                }
            }
            return out
        }
    }

    /// Runs `body` with the replicated counters (for the replicator: deltas, digests, which it
    /// keeps up to date in the counters). Under the lock admission takes: `body` must cost what
    /// changed, or one frame's worth of entries, not what the counters hold.
    func withCounters<T>(_ body: (inout CounterMap) -> T) -> T {
        engine.withLockedValue { $0.withCounters(body) }
    }

    /// Applies counters from a peer (a delta or an anti-entropy answer); idempotent.
    /// Merges counters from a peer. The cluster-wide spend may cross an alert's threshold here,
    /// without a request of this node's: the alert's owner sends it.
    func merge(_ delta: [CounterMap.Key: CounterMap.Entry]) {
        guard !delta.isEmpty else { return }
        defer { if !catchUp.withLockedValue({ $0.done }) { caughtUp("merged a peer's counters") } }
        let now = Self.now()
        let peers = self.peers
        let due = engine.withLockedValue { engine in
            let changed = engine.merge(delta)
            return engine.hasAlerts && !changed.isEmpty ? engine.dueAlerts(for: changed, now: now, owns: { peers?.ownsAlert($0) ?? true }) : []
        }
        fire(due, now: now)
    }

    func release(_ id: UInt64) {
        // The refund reaches the journal with the next admission or tick (see `apply`).
        engine.withLockedValue { $0.release(id) }
        journal.close(id: id)
    }

    func run() async throws {
        var ticks = 0
        for await _ in AsyncTimerSequence.seconds(1).cancelOnGracefulShutdown() {
            let now = Self.now()
            let (lookback, forgotten, rights) = engine.withLockedValue { engine in
                // The figures of the keys in use first: refunds since their last admission.
                let inUse = engine.counters.writtenRights(engine.counters.rightsInUse)
                let forgotten = engine.expire(now: now).forgotten
                return (engine.rules.map(\.window.maxLengthMs).max() ?? 0, forgotten, inUse + engine.withCounters { $0.takeRightsChanges() })
            }
            journal.rights(rights)
            for id in forgotten { journal.close(id: id) }
            ticks += 1
            if ticks % 60 == 0 {
                // Only the journal's keys are looked up (a few), not every counter copied.
                let carried = journal.rightsKeys
                let gone = Set(engine.withLockedValue { engine in carried.filter { engine.counters.entry($0) == nil } })
                if !gone.isEmpty { journal.pruneRights { gone.contains($0) } }
            }
            if ticks % 60 == 0 {
                // Each rule's rows go once its own window has passed them; rows of rules no longer
                // in force, once the longest window has (the same id in two gateways: the longer).
                // Every minute, so that each delete is a minute of rows: one transaction, which the
                // WAL must hold whole (ten minutes of a per-second rate limit's rows grew it by 20 MiB).
                let cutoffs = engine.withLockedValue { engine in
                    Dictionary(engine.rules.map { ($0.id, now - $0.window.maxLengthMs - reservationTimeoutMs) }, uniquingKeysWith: min)
                }
                await log.deleteLimitCharges(before: now - lookback - reservationTimeoutMs, rules: cutoffs)
            }
        }
    }

    /// The node id in a holder name (`node/epoch`).
    static func nodeID(ofHolder holder: String) -> String { String(RightsEntry.split(holder: holder).node) }

    /// Every rule and scope value with its figures, for `/api/budgets`.
    /// With `only`, just the rules it accepts (a `team_admin`'s team and its keys). The engine's
    /// lock, which admission takes, is held only to copy the figures: the answer is written after.
    func report(only: ((LimitRule) -> Bool)? = nil) -> BudgetReport {
        let now = Self.now()
        typealias Rights = (owner: String, pool: Int64, holders: [(String, Int64)])
        let taken = engine.withLockedValue { engine in
            let seen = engine.scopesByRule(now: now)
            return engine.rules.filter { only?($0) ?? true }.map { rule in
                var scopes = seen[rule.id] ?? []
                if scopes.isEmpty && !rule.scope.contains(where: { if case .split = $0 { return true } else { return false } }) { scopes = [""] }
                return (rule, scopes.map { scope -> (String, (spent: Int64, reserved: Int64), Rights?) in
                    let figures = engine.figures(rule: rule, scope: scope, now: now)
                    guard rule.enforcement != .soft else { return (scope, figures, nil) }
                    // The rights of the current period: what the owner can still hand out, and who holds what.
                    let key = CounterMap.Key(rule: rule.id, scope: scope, bucket: rule.window.activeBuckets(at: now).upperBound)
                    let holders = engine.counters.rights(key).holders.filter { $0.value != 0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
                    return (scope, figures, (engine.owner(of: key, rule: rule), engine.pool(key, rule: rule, now: now), holders))
                })
            }
        }
        return BudgetReport(time: Timestamps.iso(now), rules: taken.map { rule, scopes in
            let span = rule.window.span(at: now)
            let measure = rule.measure
            return BudgetReport.Rule(
                id: rule.id, source: configIDs.contains(rule.id) ? "config" : "api", gateway: rule.gateway, measure: measure.rawValue,
                limit: Amount(rule.limit, measure), window: rule.window.description, windowStart: Timestamps.iso(span.start),
                windowEnd: Timestamps.iso(span.end),
                resetsAt: Timestamps.iso(rule.window.bucketLeavesAt(rule.window.activeBuckets(at: now).lowerBound)),
                action: BudgetReport.Action(rule.action), enforcement: rule.enforcement.rawValue, leased: rule.enforcement != .soft,
                scopes: scopes.map { scope, f, rights in
                    let used = f.spent + f.reserved
                    return BudgetReport.Scope(
                        scope: scope, spent: Amount(f.spent, measure), reserved: Amount(f.reserved, measure),
                        remaining: Amount(max(0, rule.limit - used), measure),
                        state: used >= rule.limit ? "exhausted" : used * 1000 >= rule.limit * 800 ? "warning" : "ok",
                        rights: rights.map { r in
                            BudgetReport.Rights(owner: r.owner, pool: Amount(r.pool, measure), holders: r.holders.map { holder, held in
                                .init(holder: holder, nodeID: Self.nodeID(ofHolder: holder), rights: Amount(held, measure))
                            })
                        })
                })
        })
    }

    /// An amount as JSON: dollars as a decimal string for money, a number otherwise.
    static func amount(_ v: Int64, _ measure: LimitRule.Measure) -> String {
        measure == .usd ? JSON.quoted(Money(nanos: v).dollars) : String(v)
    }
}

/// What the limits ask of the cluster (`ClusterService`, which `join`s them once built).
protocol LimitsPeers: AnyObject, Sendable {
    /// Whether this node is the one to send the alert: the key's owner by rendezvous hashing, as
    /// for cache keys. Called with the engine's lock held.
    func ownsAlert(_ key: LimitsEngine.AlertKey) -> Bool
    /// Tells the peers of the alerts this node fired, so that none sends them again.
    func alertsFired(_ keys: [LimitsEngine.AlertKey])
    /// Asks the counters' owners for rights, as `holder` (this run of this node).
    func askForRights(_ needs: [LimitsEngine.RightsNeed], holder: String)
    /// Sends the rule changes this node made to the peers.
    func broadcastRules(_ records: [RuleRecord])
}
