/// The replicated state of every limit: for each (rule, scope value, bucket), a G-counter of what
/// was spent, the per-node reservations in flight and, for `bounded` and `strict` rules, the rights
/// to spend. State-based with deltas: every local change bumps a version, `delta(since:)` returns
/// the entries changed after it (each a complete entry, so applying one twice, late or out of
/// order is harmless), and `merge` applies a peer's delta.
///
/// Replication's periodic work costs what changed, not what is held: every change is appended to a
/// log of (version, key), so `delta(since:)` and `spentSlots(since:)` read the keys changed since a
/// version without scanning the table, and the per-rule digests are kept up to date from the same
/// log (each entry's hash is subtracted and added again when it changes). So a rule with 200,000
/// scope values costs nothing to replicate while it is quiet.
public struct CounterMap: Sendable {
    /// A counter: a rule's scope value in one bucket. The hash of its two strings is taken once,
    /// when the key is made, and a request's keys for other buckets of the same scope reuse it
    /// (`inBucket`): a decision looks its counters up many times, and hashing the strings each
    /// time was most of what a lookup cost.
    public struct Key: Sendable, Hashable, CustomStringConvertible {
        public let rule: String
        public let scope: String
        public let bucket: Int64
        /// `rule` and `scope` hashed (this process's seed; never persisted or sent).
        private let stringsHash: Int

        public init(rule: String, scope: String, bucket: Int64) {
            self.rule = rule
            self.scope = scope
            self.bucket = bucket
            var hasher = Hasher()
            hasher.combine(rule)
            hasher.combine(scope)
            stringsHash = hasher.finalize()
        }

        private init(rule: String, scope: String, bucket: Int64, stringsHash: Int) {
            self.rule = rule
            self.scope = scope
            self.bucket = bucket
            self.stringsHash = stringsHash
        }

        /// The same rule and scope value in `bucket`, without hashing the strings again.
        public func inBucket(_ bucket: Int64) -> Key { Key(rule: rule, scope: scope, bucket: bucket, stringsHash: stringsHash) }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(stringsHash)
            hasher.combine(bucket)
        }

        public static func == (a: Key, b: Key) -> Bool {
            a.bucket == b.bucket && a.stringsHash == b.stringsHash && a.rule == b.rule && a.scope == b.scope
        }

        public var description: String { "\(rule)[\(scope)]@\(bucket)" }
    }

    public struct Entry: Sendable, Hashable {
        public var spent = GCounter()
        public var reserved = VersionedSlots()
        /// The rights to spend, for rules enforced `bounded` or `strict` (empty otherwise).
        public var rights = RightsEntry()
        public init(spent: GCounter = GCounter(), reserved: VersionedSlots = VersionedSlots(), rights: RightsEntry = RightsEntry()) {
            self.spent = spent
            self.reserved = reserved
            self.rights = rights
        }

        public mutating func merge(_ other: Entry) {
            spent.merge(other.spent)
            reserved.merge(other.reserved)
            rights.merge(other.rights)
        }
    }

    /// An entry with the bookkeeping of this replica: when it last changed (for deltas), when its
    /// spending last changed, here or by a merge (for persisting it), and the hash it adds to its
    /// rule's digest (0 until the digests first count it).
    struct Stored: Sendable {
        var entry = Entry()
        var changedAt: UInt64 = 0
        var spentChangedAt: UInt64 = 0
        var hashed: UInt64 = 0
        /// The version at which this node's grant or lease to each holder (any run of this node as
        /// the owner) last changed: a delta carries only the pairs changed since what its peer was
        /// last sent, so a hot counter's owner does not resend one figure per holder on every change.
        var ownPairs: [RightsEntry.Pair: UInt64] = [:]
    }

    public let node: String
    private var table: [Key: Stored] = [:]
    /// Every key of each rule, by bucket (for the entries of the rules a digest finds different,
    /// and to drop a passed bucket without looking at every key).
    private var keysByRule: [String: [Int64: Set<Key>]] = [:]
    /// Every key of each rule in the order they came, for walking a rule a frame at a time, each
    /// step under the lock on its own (rebuilt when buckets are dropped).
    private var keyList: [String: [Key]] = [:]
    /// This replica's version: raised by every local change.
    public private(set) var version: UInt64 = 0
    /// The version of the latest change to any spending (local or merged).
    public private(set) var lastSpendChange: UInt64 = 0
    /// Every change (local or merged), for digests and what the store persists.
    private var changes: ChangeLog
    /// The changes to this node's own figures (local, or an earlier run's learnt back): what
    /// deltas carry. Merges of other nodes' figures, most of the changes in a large cluster, are
    /// not in it, so a delta costs what this node did.
    private var ownChanges: ChangeLog
    /// The version of the latest change to this node's own figures.
    public private(set) var lastOwnChange: UInt64 = 0
    /// The per-rule digests, up to date as of `digestedAt` (nil: never computed).
    private var ruleDigests: [String: UInt64] = [:]
    private var digestedAt: UInt64?
    /// How long a reservation figure of this node holds for the others without being renewed.
    public var leaseMs: Int64 = 15_000
    /// The clock difference between nodes that leases allow for.
    public var driftMs: Int64 = 1_000
    /// The lease this node stamps on its reservation figures (set by `renewLeases`; until its
    /// first call, figures never lapse).
    public private(set) var leaseUntil: Int64 = .max
    /// The keys where this node's reservation figure is not zero: the ones whose lease it renews.
    private var ownReserved: Set<Key> = []
    /// When this node last took or asked for each key's rights (idle ones go back to the pool),
    /// and how much it took in the current and the previous second (its demand, sent with asks).
    private var rightsTouched: [Key: Activity] = [:]

    struct Activity: Sendable {
        var touchedAt: Int64
        var second: Int64 = 0
        var current: Int64 = 0
        var previous: Int64 = 0

        mutating func touched(_ now: Int64, took amount: Int64) {
            touchedAt = now
            took(amount, now: now)
        }

        mutating func took(_ amount: Int64, now: Int64) {
            let s = now / 1000
            if s != second {
                previous = s == second + 1 ? current : 0
                current = 0
                second = s
            }
            current += amount
        }

        /// What was taken over about the last second (the previous whole second, or the current
        /// one when it is more).
        func rate(now: Int64) -> Int64 {
            let s = now / 1000
            if s == second { return max(current, previous) }
            return s == second + 1 ? current : 0
        }
    }
    /// How long an owner's grant (and each renewal) lets its holder use the rights.
    public var rightsLeaseMs: Int64 = 10_000
    /// The keys that have rights (whose leases an owner renews).
    private var rightsKeys: Set<Key> = []
    /// Keys whose rights this node changed since `takeRightsChanges()` (to be journaled).
    private var rightsChanged: Set<Key> = []
    /// Keys where an earlier run of this node may still hold rights (`returnEarlierRuns()`).
    private var earlierRunKeys: Set<Key> = []

    /// `startVersion` MUST be above any version this node has used before (see
    /// `startVersion(epoch:)`), so peers never ignore its new reservation figures.
    public init(node: String, startVersion: UInt64 = 0, epoch: UInt64 = 0) {
        self.node = node
        self.version = startVersion
        self.startVersion = startVersion
        self.changes = ChangeLog(from: startVersion)
        self.ownChanges = ChangeLog(from: startVersion)
        self.holder = "\(node)/\(epoch)"
        self.ownRuns = [holder]
    }

    /// Every run of this node (holder names) that the table mentions: this one, and earlier ones
    /// learnt from the journal or from peers. What `ownEntries` looks up instead of filtering every
    /// holder's figures.
    private var ownRuns: Set<String>

    /// This node in this run, as a holder of rights (`RightsEntry`).
    public let holder: String

    /// The first version of a run: each start of a node is a new epoch (counted in its data
    /// directory), and each epoch has 2^44 versions of its own, so no run reuses another's
    /// versions whatever the clock does (a million runs fit). The offset of 256 epochs puts every
    /// epoch above the versions of earlier releases, which started from the clock (Unix ms << 10,
    /// below 2^52 until the year 2100).
    public static func startVersion(epoch: UInt64) -> UInt64 {
        (min(epoch, (1 << 20) - 257) + 256) << 44
    }

    /// The version this replica started from: reservations of this node older than it belong to
    /// a previous run and died with it.
    let startVersion: UInt64

    // MARK: Changing an entry

    /// Applies `body` to `key`'s entry (created if new) as one change: a new version, logged.
    /// `own`: the change is to this node's own figures (every local change is).
    private mutating func change(_ key: Key, spending: Bool = false, own: Bool = true, _ body: (inout Entry) -> Void) {
        version += 1
        let v = version
        // One hash lookup; the log keeps the table's own copy of the key, so a request's freshly
        // built key is not held (and freed later, in bulk, when the log is cut).
        let stored: Key
        if let index = table.index(forKey: key) {
            table.values[index].update {
                body(&$0.entry)
                $0.changedAt = v
                if spending { $0.spentChangedAt = v }
            }
            stored = table.keys[index]
        } else {
            var new = Stored()
            body(&new.entry)
            new.changedAt = v
            if spending { new.spentChangedAt = v }
            table[key] = new
            keysByRule[key.rule, default: [:]][key.bucket, default: []].insert(key)
            keyList[key.rule, default: []].append(key)
            stored = key
        }
        if spending { lastSpendChange = v }
        let bound = max(4096, 2 * table.count)
        changes.append(v, stored, bound: bound)
        if own {
            ownChanges.append(v, stored, bound: bound)
            lastOwnChange = v
        }
    }

    /// Changes in version order, bounded: past twice the table (and a floor), the older half goes;
    /// a reader asking from before what is left reads the whole table instead.
    struct ChangeLog: Sendable {
        private var log: [(version: UInt64, key: Key)] = []
        /// The log holds every change made after this version (older ones were dropped).
        private(set) var from: UInt64

        init(from: UInt64) { self.from = from }

        mutating func append(_ version: UInt64, _ key: Key, bound: Int) {
            log.append((version, key))
            if log.count > bound {
                let cut = log.count / 2
                from = log[cut - 1].version
                log.removeFirst(cut)
            }
        }

        /// The position of the first change after `since` (versions in the log only grow).
        private func first(after since: UInt64) -> Int {
            var low = 0, high = log.count
            while low < high {
                let mid = (low + high) / 2
                if log[mid].version > since { high = mid } else { low = mid + 1 }
            }
            return low
        }

        /// How many changes after `since` (a key changed twice counts twice; nil when the log no
        /// longer reaches back there). Costs a binary search.
        func count(since: UInt64) -> Int? { since >= from ? log.count - first(after: since) : nil }

        /// The keys changed after `since`, each once (nil when the log no longer reaches back there).
        func keys(since: UInt64) -> [Key]? {
            guard since >= from else { return nil }
            var seen: Set<Key> = []
            var out: [Key] = []
            for i in first(after: since)..<log.count where seen.insert(log[i].key).inserted { out.append(log[i].key) }
            return out
        }
    }

    /// How many changes the log holds after `since` (a key changed twice counts twice; nil when
    /// the log no longer reaches back there). Costs a binary search.
    public func changeCount(since: UInt64) -> Int? { changes.count(since: since) }

    /// The keys changed after `since`, each once (nil when the log no longer reaches back there).
    public func changedKeys(since: UInt64) -> [Key]? { changes.keys(since: since) }

    /// As `changeCount(since:)`, for the changes to this node's own figures.
    public func ownChangeCount(since: UInt64) -> Int? { ownChanges.count(since: since) }

    /// As `changedKeys(since:)`, for the changes to this node's own figures.
    public func ownChangedKeys(since: UInt64) -> [Key]? { ownChanges.keys(since: since) }

    // MARK: Rights

    /// The rights of `key` (empty when unknown).
    public func rights(_ key: Key) -> RightsEntry { table[key]?.entry.rights ?? RightsEntry() }

    /// Changes the rights of `key` through `body`; a change is versioned and gossiped. (Copies the
    /// rights to compare them: for tests and rare changes; the request path uses the ones below.)
    @discardableResult
    public mutating func updateRights<T>(_ key: Key, _ body: (inout RightsEntry) -> T) -> T {
        var rights = table[key]?.entry.rights ?? RightsEntry()
        let before = rights
        let result = body(&rights)
        if rights != before { changeRights(key, to: rights, taking: rights, before: before) }
        return result
    }

    /// What this node (in this run) holds of `key`'s rights.
    public func heldRights(_ key: Key) -> Int64 { table[key]?.entry.rights.held(by: holder) ?? 0 }

    /// What this node may use of `key`'s rights at `now`: what it holds while its lease (less the
    /// allowed drift) holds. Rights whose lease has lapsed go back to the pool here (the owner
    /// counts them as its own once the lease and the drift have passed) and 0 is returned.
    public mutating func rightsInLease(_ key: Key, now: Int64) -> Int64 {
        guard let rights = table[key]?.entry.rights else { return 0 }
        let held = rights.held(by: holder)
        guard held > 0, rights.lease(of: holder) &- driftMs <= now else { return held }
        let holder = self.holder
        change(key) { $0.rights.giveBack(held, by: holder) }
        markRights(key)
        return 0
    }

    /// This node consumes `amount` of `key`'s rights if it holds that much (`force`: even if not)
    /// and marks them used at `now` (see `returnIdleRights`). In place: no copy of the rights.
    @discardableResult
    public mutating func takeRights(_ key: Key, _ amount: Int64, now: Int64, force: Bool = false) -> Bool {
        guard amount > 0 else { return true }
        guard force || heldRights(key) >= amount else { return false }
        let holder = self.holder
        change(key) { $0.rights.consume(amount, by: holder, force: true) }
        touchRights(key, now: now)
        rightsTouched[key]?.took(amount, now: now)
        // Not marked for the journal here: the admission journals `ownRights` with its
        // reservation, and the tick the figures of every key in use (`rightsInUse`).
        return true
    }

    /// This node gets `amount` of `key`'s rights back (a request used less, or failed).
    public mutating func refundRights(_ key: Key, _ amount: Int64) {
        guard amount > 0 else { return }
        let holder = self.holder
        change(key) { $0.rights.refund(amount, to: holder) }
        rightsChanged.insert(key)
    }

    /// This run's own figures of `key`'s rights (what it used, got back and gave back).
    public func ownRights(_ key: Key) -> (used: Int64, refunded: Int64, returned: Int64) {
        guard let r = table[key]?.entry.rights else { return (0, 0, 0) }
        return (r.used[holder] ?? 0, r.refunded[holder] ?? 0, r.returned[holder] ?? 0)
    }

    /// The keys whose rights this node has taken or asked for and not yet given back.
    public var rightsInUse: some Collection<Key> { rightsTouched.keys }

    /// The figures written by any run of this node for `keys` (what the journal keeps).
    public func writtenRights(_ keys: some Sequence<Key>) -> [(key: Key, rights: RightsEntry)] {
        let prefix = node + "/"
        return keys.compactMap { key in table[key].map { (key, $0.entry.rights.written(byPrefix: prefix)) } }
    }

    /// This node, as `key`'s owner, draws `amount` from the pool of `limit` for `holder`, leased
    /// for `rightsLeaseMs`.
    public mutating func grantRights(_ key: Key, _ amount: Int64, to holder: String, limit: Int64, now: Int64) -> Int64 {
        guard amount > 0 else { return 0 }
        var drawn: Int64 = 0
        let me = self.holder, lease = now + rightsLeaseMs
        change(key) { drawn = $0.rights.grant(amount, from: me, to: holder, limit: limit, leaseUntil: lease) }
        if drawn > 0 { markOwnPairs(key, [RightsEntry.Pair(from: me, to: holder)]) }
        if holder == me { touchRights(key, now: now) }
        markRights(key)
        return drawn
    }

    /// Records that this node took or asked for `key`'s rights at `now`.
    public mutating func touchRights(_ key: Key, now: Int64) {
        rightsTouched[key, default: Activity(touchedAt: now)].touchedAt = now
    }

    /// `touchRights` and the demand of `amount` taken, in one lookup.
    private mutating func tookRights(_ key: Key, _ amount: Int64, now: Int64) {
        rightsTouched[key, default: Activity(touchedAt: now)].touched(now, took: amount)
    }

    /// How much of `key`'s rights this node took over about the last second.
    public func rightsRate(_ key: Key, now: Int64) -> Int64 { rightsTouched[key]?.rate(now: now) ?? 0 }

    /// The keys whose rights this node holds and has not touched for `idleMs`, with what it holds
    /// and how long they have been idle.
    public func idleRights(now: Int64, idleMs: Int64) -> [(key: Key, held: Int64, idleMs: Int64)] {
        var out: [(key: Key, held: Int64, idleMs: Int64)] = []
        for (key, activity) in rightsTouched where activity.touchedAt <= now &- idleMs {
            out.append((key, heldRights(key), now &- activity.touchedAt))
        }
        return out
    }

    /// Gives back to the pool what this node holds of `keys`' rights, and stops tracking them as
    /// used; returns the keys whose rights changed.
    @discardableResult
    public mutating func giveBackRights(_ keys: some Sequence<Key>) -> [Key] {
        var changed: [Key] = []
        let holder = self.holder
        for key in keys {
            rightsTouched[key] = nil
            let held = heldRights(key)
            guard held > 0 else { continue }
            change(key) { $0.rights.giveBack(held, by: holder) }
            markRights(key)
            changed.append(key)
        }
        return changed
    }

    /// As the owner of the keys for which `owns` holds, renews the leases of the holders that hold
    /// rights, are live (`live`: node ids) and whose lease runs out within half a lease: their
    /// latest run only, and never a lease that may already have lapsed for its holder (it gave
    /// those rights back, or is about to). Returns how many leases it renewed.
    @discardableResult
    public mutating func renewRightsLeases(now: Int64, live: Set<String>, owns: (Key) -> Bool) -> Int {
        var renewed = 0
        let me = holder, until = now + rightsLeaseMs
        for key in rightsKeys {
            guard let rights = table[key]?.entry.rights, owns(key) else { continue }
            var latest: [Substring: (epoch: UInt64, holder: String)] = [:]
            for (h, held) in rights.holders where held > 0 {
                let (node, epoch) = RightsEntry.split(holder: h)
                if epoch >= latest[node]?.epoch ?? 0 { latest[node] = (epoch, h) }
            }
            var due: [String] = []
            for (node, run) in latest where live.contains(String(node)) {
                let lease = rights.lease(of: run.holder)
                if lease < now + rightsLeaseMs / 2 && lease > now + 2 * driftMs { due.append(run.holder) }
            }
            guard !due.isEmpty else { continue }
            change(key) { for h in due { $0.rights.renew(from: me, to: h, until: until) } }
            markOwnPairs(key, due.map { RightsEntry.Pair(from: me, to: $0) })
            markRights(key)
            renewed += due.count
        }
        return renewed
    }

    /// Gives back, for this node's earlier runs (which died: the journal starts a new run only
    /// once the previous one has stopped), what they still hold of the rights this run knows of.
    /// Their figures come from the journal, which holds every right they used before they used it.
    public mutating func returnEarlierRuns() {
        guard !earlierRunKeys.isEmpty else { return }
        let prefix = node + "/"
        for key in earlierRunKeys {
            guard let rights = table[key]?.entry.rights else { continue }
            let stale = rights.holders.filter { $0.value > 0 && $0.key != holder && $0.key.hasPrefix(prefix) }
            guard !stale.isEmpty else { continue }
            change(key) { for (h, held) in stale { $0.rights.giveBack(held, by: h) } }
            ownRuns.formUnion(stale.keys)
            markRights(key)
        }
        earlierRunKeys = []
    }

    /// Takes the keys whose rights this node changed since the last call, each with the figures
    /// written by any run of this node (what the journal keeps, so a restart knows what it granted,
    /// used and gave back).
    public mutating func takeRightsChanges() -> [(key: Key, rights: RightsEntry)] {
        guard !rightsChanged.isEmpty else { return [] }
        defer { rightsChanged = [] }
        return writtenRights(rightsChanged)
    }

    /// Merges rights persisted by an earlier run of this node (from the journal); their unused
    /// rights go back to the pool with the next `returnEarlierRuns()`.
    public mutating func restoreRights(_ key: Key, _ rights: RightsEntry) {
        guard !rights.isEmpty else { return }
        var merged = table[key]?.entry.rights ?? RightsEntry()
        let before = merged
        merged.merge(rights)
        guard merged != before else { return }
        changeRights(key, to: merged, taking: rights, before: before)
        rightsKeys.insert(key)
        earlierRunKeys.insert(key)
        markRights(key)
    }

    /// Records that this node's grants or leases of `pairs` changed with the latest version.
    private mutating func markOwnPairs(_ key: Key, _ pairs: [RightsEntry.Pair]) {
        guard !pairs.isEmpty, let index = table.index(forKey: key) else { return }
        let v = version
        table.values[index].update { for pair in pairs { $0.ownPairs[pair] = v } }
    }

    /// What rights taken in hold of this node's own figures: the runs of this node they name, the
    /// pairs this node wrote (as an owner) that grew, and whether any of its figures grew.
    struct OwnFigures {
        var runs: Set<String> = []
        var pairs: [RightsEntry.Pair] = []
        var grew = false
    }

    /// What `incoming` rights (a merge, a restore, a change through `updateRights`) hold of this
    /// node's own figures against `before`. Costs the incoming figures, which are few but for a
    /// change made in tests or the journal's restore.
    private func ownFigures(in incoming: RightsEntry, before: RightsEntry) -> OwnFigures {
        let prefix = node + "/"
        var runs: Set<String> = [], pairs: [RightsEntry.Pair] = [], grew = false
        func counts(_ incoming: [String: Int64], _ before: [String: Int64]) {
            for (name, v) in incoming where name.hasPrefix(prefix) {
                runs.insert(name)
                if v > (before[name] ?? 0) { grew = true }
            }
        }
        counts(incoming.used, before.used)
        counts(incoming.refunded, before.refunded)
        counts(incoming.returned, before.returned)
        for (pair, v) in incoming.granted {
            if pair.to.hasPrefix(prefix) { runs.insert(pair.to) }
            guard pair.from.hasPrefix(prefix) else { continue }
            runs.insert(pair.from)
            if v > (before.granted[pair] ?? 0) { pairs.append(pair) }
        }
        for (pair, v) in incoming.leases where pair.from.hasPrefix(prefix) && v > (before.leases[pair] ?? 0) { pairs.append(pair) }
        return OwnFigures(runs: runs, pairs: pairs, grew: grew || !pairs.isEmpty)
    }

    /// Notes, after `key` changed, the runs and pairs of this node's figures it took in.
    private mutating func note(_ own: OwnFigures, of key: Key) {
        ownRuns.formUnion(own.runs)
        markOwnPairs(key, own.pairs)
    }

    /// Changes `key`'s rights to `rights`, which took `incoming` (`before`: what they were).
    private mutating func changeRights(_ key: Key, to rights: RightsEntry, taking incoming: RightsEntry, before: RightsEntry) {
        let own = ownFigures(in: incoming, before: before)
        change(key, own: own.grew) { $0.rights = rights }
        note(own, of: key)
    }

    private mutating func markRights(_ key: Key) {
        rightsChanged.insert(key)
        rightsKeys.insert(key)
    }

    // MARK: Leases

    /// Stamps this node's figures from now on with a lease until `now + leaseMs`, and rewrites
    /// those whose lease would lapse within half of that, so that they go on counting for the
    /// peers while their requests are in flight. Call at least every `leaseMs / 4`.
    public mutating func renewLeases(now: Int64) {
        leaseUntil = now + leaseMs
        for key in ownReserved {
            guard let slot = table[key]?.entry.reserved.slots[node], slot.value != 0 else {
                ownReserved.remove(key)
                continue
            }
            // Lapsing soon, or stamped before leases were set (no lease at all): write again.
            guard slot.leaseUntil < now + leaseMs / 2 || slot.leaseUntil > leaseUntil else { continue }
            let lease = leaseUntil, node = self.node, next = version + 1
            change(key) { $0.reserved.set(node: node, value: slot.value, version: next, leaseUntil: lease) }
        }
    }

    // MARK: Reading

    /// Every entry (a copy: for reports and tests, not for the request path).
    public var entries: [Key: Entry] { table.mapValues(\.entry) }
    public var keys: some Collection<Key> { table.keys }
    public var count: Int { table.count }

    public func entry(_ key: Key) -> Entry? { table[key]?.entry }

    /// The entries of `keys` that exist.
    public func entries(_ keys: some Sequence<Key>) -> [Key: Entry] {
        var out: [Key: Entry] = [:]
        for key in keys { if let e = table[key]?.entry { out[key] = e } }
        return out
    }

    /// Every key of the given rules.
    public func keys(ofRules rules: Set<String>) -> [Key] {
        var out: [Key] = []
        for rule in rules { out.append(contentsOf: keyList[rule] ?? []) }
        return out
    }

    /// The rules that have entries.
    public var rules: [String] { Array(keyList.keys) }

    /// The entries of `rule` from its `start`-th key on, at most `count` of them, and the position
    /// to go on from (nil at the end). Positions shift when buckets are dropped: a walk over a
    /// rule may then miss or repeat a few keys, which the next anti-entropy round mends.
    public func entries(ofRule rule: String, from start: Int, count: Int) -> (entries: [Key: Entry], next: Int?) {
        guard let list = keyList[rule], start < list.count else { return ([:], nil) }
        let end = min(start + count, list.count)
        return (entries(list[start..<end]), end < list.count ? end : nil)
    }

    /// Spent plus reserved over every node for `key` (0 when unknown), at `now`: another node's
    /// reservations count while their lease holds.
    public func total(_ key: Key, now: Int64) -> Int64 {
        guard let e = table[key]?.entry else { return 0 }
        return e.spent.value + e.reserved.value(for: node, at: now, driftMs: driftMs)
    }

    /// Reserved over every node whose lease holds at `now` (see `total`).
    public func reserved(_ key: Key, now: Int64) -> Int64 {
        table[key]?.entry.reserved.value(for: node, at: now, driftMs: driftMs) ?? 0
    }

    // MARK: This node's spending and reservations

    /// Adds spending to this node's slot.
    public mutating func spend(_ key: Key, _ amount: Int64) {
        guard amount > 0 else { return }
        let node = self.node
        change(key, spending: true) { $0.spent.increment(node: node, by: amount) }
    }

    /// Sets this node's reserved figure for `key`.
    public mutating func setReserved(_ key: Key, _ amount: Int64) {
        let node = self.node, lease = leaseUntil, next = version + 1
        change(key) { $0.reserved.set(node: node, value: amount, version: next, leaseUntil: lease) }
        if amount != 0 { ownReserved.insert(key) }
    }

    /// Adds `delta` (negative to release) to this node's reserved figure for `key`, never below 0.
    public mutating func addReserved(_ key: Key, _ delta: Int64) {
        let node = self.node, lease = leaseUntil, next = version + 1
        change(key) { $0.reserved.add(node: node, delta: delta, version: next, leaseUntil: lease) }
        if delta > 0 { ownReserved.insert(key) }
    }

    /// An admission's hold on `key`: `amount` added to this node's reserved figure and, with
    /// `takingRights`, consumed from its rights (as `addReserved` then `takeRights(force: true)`,
    /// in one change of the entry).
    public mutating func reserve(_ key: Key, _ amount: Int64, takingRights: Bool, now: Int64) {
        guard amount > 0 else { return }
        let node = self.node, lease = leaseUntil, next = version + 1, holder = self.holder
        change(key) {
            $0.reserved.add(node: node, delta: amount, version: next, leaseUntil: lease)
            if takingRights { $0.rights.consume(amount, by: holder, force: true) }
        }
        ownReserved.insert(key)
        // Not marked for the journal: the admission journals `ownRights` with its reservation.
        if takingRights { tookRights(key, amount, now: now) }
    }

    /// A settlement of a hold on `key` that took rights: as `settle`, then the difference between
    /// what was used and what was held (`reserved`) given back to the rights (`refundRights`) or,
    /// when more was used, consumed too (`takeRights(force: true)` at `takenAt`), in one change.
    public mutating func settleWithRights(_ key: Key, unreserve reserved: Int64, spend amount: Int64, takenAt: Int64) {
        guard reserved > 0 || amount > 0 else { return }
        let difference = amount - reserved
        let node = self.node, lease = leaseUntil, next = version + 1, holder = self.holder
        change(key, spending: amount > 0) {
            if reserved > 0 { $0.reserved.add(node: node, delta: -reserved, version: next, leaseUntil: lease) }
            if amount > 0 { $0.spent.increment(node: node, by: amount) }
            if difference < 0 { $0.rights.refund(-difference, to: holder) } else if difference > 0 {
                $0.rights.consume(difference, by: holder, force: true)
            }
        }
        if difference < 0 { rightsChanged.insert(key) } else if difference > 0 { tookRights(key, difference, now: takenAt) }
    }

    /// Turns `reserved` of this node's reservation on `key` into `spent`, in one step.
    public mutating func settle(_ key: Key, unreserve reserved: Int64, spend amount: Int64) {
        guard reserved > 0 || amount > 0 else { return }
        let node = self.node, lease = leaseUntil, next = version + 1
        change(key, spending: amount > 0) {
            if reserved > 0 { $0.reserved.add(node: node, delta: -reserved, version: next, leaseUntil: lease) }
            if amount > 0 { $0.spent.increment(node: node, by: amount) }
        }
    }

    // MARK: Replication

    /// Every node's spent slot of every counter whose spending changed after `since` (by this
    /// node or by a merge), and the version to ask from next time: what a node persists, so a
    /// restart neither rewinds its own slot nor forgets what it had merged from peers.
    public func spentSlots(since: UInt64) -> (slots: [(key: Key, node: String, spent: Int64)], version: UInt64) {
        var out: [(key: Key, node: String, spent: Int64)] = []
        guard lastSpendChange > since else { return (out, version) }
        func add(_ key: Key, _ stored: Stored) {
            for (node, spent) in stored.entry.spent.slots { out.append((key, node, spent)) }
        }
        if let keys = changedKeys(since: since) {
            for key in keys { if let stored = table[key], stored.spentChangedAt > since { add(key, stored) } }
        } else {
            for (key, stored) in table where stored.spentChangedAt > since { add(key, stored) }
        }
        return (out, version)
    }

    /// The entries of `keys` with only this node's figures (of every run), empty ones left out:
    /// what a delta carries, since every other live node sends its own. Of the grants and leases
    /// this node wrote as an owner (one per holder), only those changed after `since` (0: all).
    /// Costs this node's figures, not the entries'. `pairsTo`: of those grants and leases, only the
    /// ones to that holder (an owner's answer to its ask: the rest travel in deltas).
    public func ownEntries(_ keys: some Sequence<Key>, since: UInt64 = 0, pairsTo: String? = nil) -> [Key: Entry] {
        var out: [Key: Entry] = [:]
        for key in keys {
            guard let stored = table[key] else { continue }
            let e = stored.entry
            var own = Entry()
            if let v = e.spent.slots[node] { own.spent = GCounter(slots: [node: v]) }
            if let slot = e.reserved.slots[node] { own.reserved = VersionedSlots(slots: [node: slot]) }
            if !e.rights.isEmpty {
                let r = e.rights
                var used: [String: Int64] = [:], refunded: [String: Int64] = [:], returned: [String: Int64] = [:]
                for run in ownRuns {
                    used[run] = r.used[run]
                    refunded[run] = r.refunded[run]
                    returned[run] = r.returned[run]
                }
                var granted: [RightsEntry.Pair: Int64] = [:], leases: [RightsEntry.Pair: Int64] = [:]
                func add(_ pair: RightsEntry.Pair) {
                    granted[pair] = r.granted[pair]
                    leases[pair] = r.leases[pair]
                }
                if let pairsTo {
                    for run in ownRuns where (stored.ownPairs[RightsEntry.Pair(from: run, to: pairsTo)] ?? 0) > since {
                        add(RightsEntry.Pair(from: run, to: pairsTo))
                    }
                } else {
                    for (pair, changed) in stored.ownPairs where changed > since { add(pair) }
                }
                own.rights = RightsEntry(granted: granted, used: used, refunded: refunded, returned: returned, leases: leases)
            }
            if !own.isEmpty { out[key] = own }
        }
        return out
    }

    /// Entries changed since `since`, for gossip.
    public func delta(since: UInt64) -> [Key: Entry] {
        var out: [Key: Entry] = [:]
        if let keys = changedKeys(since: since) {
            for key in keys { if let stored = table[key] { out[key] = stored.entry } }
        } else {
            for (key, stored) in table where stored.changedAt > since { out[key] = stored.entry }
        }
        return out
    }

    /// Per rule, the sum of its entries' hashes (`hash(_:_:)`): equal for replicas that hold the
    /// same entries, whatever order they learnt them in. Brought up to date from the change log,
    /// so it costs what changed since the last call. Nil when the digests must be computed over the
    /// whole table (the first time, or after more than `digestInOneGo` changes) and the table is
    /// too large to do it in one go (more than `digestInOneGo` entries): then walk it with `digestRule(_:from:count:)` between
    /// `beginDigests()` and `endDigests(since:)`, a frame of entries at a time.
    public mutating func digests() -> [String: UInt64]? {
        // Many changes (a peer's whole state merged) cost as much as the whole table: walk it.
        guard let since = digestedAt, let count = changeCount(since: since), count <= Self.digestInOneGo,
              let changed = changedKeys(since: since) else {
            guard table.count <= Self.digestInOneGo else { return nil }
            return digestWholeTable()
        }
        for key in changed {
            guard var stored = table[key] else { continue }
            let h = Self.hash(key, stored.entry)
            ruleDigests[key.rule, default: 0] &+= h &- stored.hashed
            stored.hashed = h
            table[key] = stored
        }
        digestedAt = version
        return ruleDigests
    }

    public static let digestInOneGo = 20_000

    /// The digests computed over the whole table in one go, whatever its size (a caller that may
    /// hold the table's lock that long; the shell walks a large table a frame at a time instead).
    @discardableResult
    public mutating func digestWholeTable() -> [String: UInt64] {
        let since = beginDigests()
        for rule in rules { _ = digestRule(rule, from: 0, count: .max) }
        endDigests(since: since)
        return ruleDigests
    }

    /// Starts computing the digests over the whole table; returns the version to end with.
    public mutating func beginDigests() -> UInt64 {
        ruleDigests = [:]
        digestedAt = nil
        return version
    }

    /// Hashes `rule`'s entries from its `start`-th key on, at most `count`, into the digests;
    /// returns where to go on from (nil at the end of the rule).
    public mutating func digestRule(_ rule: String, from start: Int, count: Int) -> Int? {
        guard let list = keyList[rule], start < list.count else { return nil }
        let end = start + min(count, list.count - start)
        for key in list[start..<end] {
            guard var stored = table[key] else { continue }
            let h = Self.hash(key, stored.entry)
            ruleDigests[rule, default: 0] &+= h
            stored.hashed = h
            table[key] = stored
        }
        return end < list.count ? end : nil
    }

    /// Ends a walk begun at `since`: what changed meanwhile is brought in by the next `digests()`.
    public mutating func endDigests(since: UInt64) {
        digestedAt = since
    }

    /// One entry's share of its rule's digest: an FNV-1a of its scope value and bucket, with the
    /// sum of a hash of each figure (so slot order does not matter), through a SplitMix64 finalizer.
    public static func hash(_ key: Key, _ e: Entry) -> UInt64 {
        var sum: UInt64 = 0
        for (node, v) in e.spent.slots { sum &+= figure("s", node, "", UInt64(bitPattern: v), 0, 0) }
        for (node, slot) in e.reserved.slots {
            sum &+= figure("r", node, "", UInt64(bitPattern: slot.value), slot.version, UInt64(bitPattern: slot.leaseUntil))
        }
        let r = e.rights
        for (pair, v) in r.granted { sum &+= figure("g", pair.from, pair.to, UInt64(bitPattern: v), 0, 0) }
        for (pair, v) in r.leases { sum &+= figure("l", pair.from, pair.to, UInt64(bitPattern: v), 0, 0) }
        for (h, v) in r.used { sum &+= figure("u", h, "", UInt64(bitPattern: v), 0, 0) }
        for (h, v) in r.refunded { sum &+= figure("f", h, "", UInt64(bitPattern: v), 0, 0) }
        for (h, v) in r.returned { sum &+= figure("t", h, "", UInt64(bitPattern: v), 0, 0) }
        var h: UInt64 = 0xcbf29ce484222325
        fnv(&h, key.scope)
        fnv(&h, UInt64(bitPattern: key.bucket))
        return finalize(h &+ sum)
    }

    private static func figure(_ tag: StaticString, _ a: String, _ b: String, _ x: UInt64, _ y: UInt64, _ z: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        tag.withUTF8Buffer { for byte in $0 { h = (h ^ UInt64(byte)) &* 0x100000001b3 } }
        fnv(&h, a)
        fnv(&h, b)
        fnv(&h, x)
        fnv(&h, y)
        fnv(&h, z)
        return finalize(h)
    }

    private static func fnv(_ h: inout UInt64, _ s: String) {
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        h = (h ^ 0xff) &* 0x100000001b3
    }

    private static func fnv(_ h: inout UInt64, _ v: UInt64) {
        for i in 0..<8 { h = (h ^ (v >> (8 * UInt64(i)) & 0xff)) &* 0x100000001b3 }
    }

    private static func finalize(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E3779B97F4A7C15
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }

    /// Merges entries from a peer (a delta or any other replica's state); returns the keys whose
    /// spending changed. A peer's figure for this node's own slots is taken only when it comes from
    /// an earlier run of this node: no other node writes them.
    @discardableResult
    public mutating func merge(_ delta: [Key: Entry]) -> [Key] {
        var spentChanged: [Key] = []
        for (key, incoming) in delta {
            // What the figures would change, read first, then merged in place: copying an entry
            // (a figure per holder) for every entry of every delta, to compare it after, was a
            // third of a 1,000-node simulation.
            let effect = effect(of: incoming, on: key)
            guard effect.changes else { continue }
            if !incoming.rights.isEmpty {
                rightsKeys.insert(key)
                if incoming.rights.mentionsEarlierRun(of: node, current: holder) { earlierRunKeys.insert(key) }
            }
            let node = self.node, startVersion = self.startVersion, lease = leaseUntil
            change(key, spending: effect.spending, own: effect.own) { entry in
                let mine = entry.reserved.slots[node]
                entry.merge(incoming)
                if let slot = entry.reserved.slots[node], slot != mine {
                    if slot.version >= startVersion {
                        // Only this node writes its slot in this run: a version of this run from
                        // elsewhere is not this node's figure, and is not taken.
                        entry.reserved.replace(node: node, with: mine ?? .init(value: 0, version: startVersion))
                    } else if slot.value != 0 {
                        // This node's reservations from a previous run (merged back from peers)
                        // died with it (the journal charged them at restart); the zero is gossiped.
                        entry.reserved.set(node: node, value: 0, version: startVersion, leaseUntil: lease)
                    }
                }
            }
            if let rights = effect.rights { note(rights, of: key) }
            if effect.spending { spentChanged.append(key) }
        }
        return spentChanged
    }

    /// What merging `incoming` into `key`'s entry would change: anything at all, the spending,
    /// and this node's own figures. They change in a merge only when an earlier run's come back
    /// (its reservation slot, which is then set to zero; its spend; its rights figures), and then
    /// go out in deltas like a local change; a figure of this node's current run from elsewhere is
    /// not taken. Costs the incoming figures (and reads the entry in place, without copying it).
    private func effect(of incoming: Entry, on key: Key) -> (changes: Bool, spending: Bool, own: Bool, rights: OwnFigures?) {
        let empty = Entry()
        return withEntry(key, or: empty) { current in
            var changes = false, spending = false, own = false
            for (n, v) in incoming.spent.slots where v > (current.spent.slots[n] ?? 0) {
                changes = true
                spending = true
                if n == node { own = true }
            }
            for (n, slot) in incoming.reserved.slots where slot.version > (current.reserved.slots[n]?.version ?? 0) {
                if n == node {
                    guard slot.version < startVersion else { continue }
                    own = true
                }
                changes = true
            }
            var rights: OwnFigures?
            if !incoming.rights.isEmpty {
                if !changes && current.rights.isRaised(by: incoming.rights) { changes = true }
                rights = ownFigures(in: incoming.rights, before: current.rights)
                if rights?.grew == true { own = true }
            }
            return (changes, spending, own, rights)
        }
    }

    /// `body` applied to `key`'s entry (`fallback` when there is none), read where it is stored.
    private func withEntry<T>(_ key: Key, or fallback: Entry, _ body: (Entry) -> T) -> T {
        guard let index = table.index(forKey: key) else { return body(fallback) }
        return body(table.values[index].entry)
    }

    /// Drops every entry of each (rule, bucket) for which `isExpired` holds (a bucket whose window
    /// has passed, a rule that is gone): a look at each rule's buckets, not at every key.
    public mutating func removeBuckets(where isExpired: (_ rule: String, _ bucket: Int64) -> Bool) {
        for (rule, buckets) in keysByRule {
            var dropped = false
            for (bucket, keys) in buckets where isExpired(rule, bucket) {
                dropped = true
                for key in keys {
                    if let stored = table.removeValue(forKey: key), stored.hashed != 0 { ruleDigests[rule]? &-= stored.hashed }
                    ownReserved.remove(key)
                    rightsTouched[key] = nil
                    rightsKeys.remove(key)
                    rightsChanged.remove(key)
                    earlierRunKeys.remove(key)
                }
                keysByRule[rule]?[bucket] = nil
            }
            if keysByRule[rule]?.isEmpty == true {
                keysByRule[rule] = nil
                keyList[rule] = nil
                ruleDigests[rule] = nil
            } else if dropped {
                let table = self.table
                keyList[rule]?.removeAll { table[$0] == nil }
            }
        }
    }
}

extension CounterMap.Stored {
    mutating func update(_ body: (inout Self) -> Void) { body(&self) }
}
