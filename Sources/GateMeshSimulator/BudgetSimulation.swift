import GateMeshCluster
import GateMeshCore
import GateMeshLimits

/// Traffic against one budget, for the simulator: requests arrive at every up node at random
/// (round-robin DNS), each is admitted by that node's `LimitsEngine` (asking the counter's owner
/// for rights in `bounded` and `strict` mode, as the shell does), lasts a while, and is settled
/// at what it cost. The engines replicate through `Replicator` deltas and digests and answer asks
/// for rights, all as `Frame`s through the codecs, over the simulator's links.
public struct BudgetLoad: Sendable {
    public var mode = LimitRule.Enforcement.bounded
    /// The budget of each scope value, in nano-dollars.
    public var limit: Int64 = 1_000_000
    /// Requests a second over the whole cluster.
    public var requestsPerSecond: Double = 200
    /// How many scope values (users) the requests spread over: one counter each.
    public var scopes = 1
    /// Each request's estimate; what it costs is uniform between half of it and all of it.
    public var cost: Int64 = 2_000_000
    /// When traffic stops (nil: 20 s before the end), so that the run can check what is left.
    public var stopMs: Int64?
    /// Each node's wall clock is off by up to this much, either way (leases allow 1 s of drift).
    public var skewMs: Int64 = 0
    /// How long a short request waits for rights (`reservations.rights_wait`).
    public var rightsWaitMs: Int64 = 2_000

    public init() {}
}

/// What the budget part of a run found. Spend is in nano-dollars.
public struct BudgetReport: Sendable {
    public var admitted = 0
    public var refused = 0
    /// Requests that asked an owner for rights and waited.
    public var waited = 0
    /// What the provider served, over all scopes: the truth the counters must account for.
    public var served: Int64 = 0
    /// The largest overshoot of any scope (what the provider served past the limit).
    public var overshoot: Int64 = 0
    /// The overshoot the mode allows in this run (see `ClusterSimulator.overshootBound`).
    public var overshootBound: Int64 = 0
    /// Spend the provider served that some up node's counters did not hold at the end.
    public var lostSpend: Int64 = 0
    /// Spend of killed nodes that never came back and that no survivor heard (not a violation:
    /// only a restart, with its journal, can bring it back).
    public var unheardFromDead: Int64 = 0
    /// How long after traffic stopped every up node held the same spend (nil: not by the end).
    public var agreedAfterStopMs: Int64?
    /// Reservations still counted by some up node at the end (each must return to zero).
    public var reservedAtEnd: Int64 = 0
    public var counterFrames = 0
    public var counterBytes = 0
}

extension ClusterSimulator {
    /// The budget's state on one node: its engine and replicator, the requests it holds open or
    /// waiting for rights, and what is durable (the journal and the spend the store has written).
    struct LimitsNode {
        var engine: LimitsEngine
        var replicator: Replicator
        var epoch: UInt64
        var caughtUp = true
        var catchUpUntil: Int64 = 0
        var waiting: [Waiting] = []
        var throttle = AskThrottle()
        var authority: FigureAuthority
        /// The ids ever seen, less those that left: among them a `strict` counter's owner is picked.
        var everSeen: Set<String> = []
        /// Whether the live peers hold the same `everSeen` (`strict` only, as in the shell).
        var agreement: MemberAgreement
        /// The live peers' ids.
        var liveIDs: [String] = []
        var nextExpireAt: Int64 = 0
        var nextFlushAt: Int64 = 0
        var flushedVersion: UInt64 = 0
        // Durable: what a restart finds.
        /// Reservations opened and not yet closed by a written settlement (charged at the estimate).
        var journalOpen: [UInt64: [(key: CounterMap.Key, amount: Int64)]] = [:]
        var settledUnflushed: [UInt64] = []
        /// Every spend slot this node has written to its store: (key, slot node) → amount.
        var storedSpend: [CounterMap.Key: [String: Int64]] = [:]
        /// The rights figures this node's runs wrote, as its journal holds them.
        var journalRights: [CounterMap.Key: RightsEntry] = [:]

        struct Waiting {
            var request: LimitRequest
            var since: Int64
            var askedAt: Int64
            var asked: Bool
        }
    }

    struct Request {
        var node: Int
        var epoch: UInt64
        var id: UInt64
        var scope: Int
        var actual: Int64
    }

    static func rule(_ load: BudgetLoad) -> LimitRule {
        LimitRule(id: "budget", gateway: "g", scope: load.scopes > 1 ? [.split(.user)] : [], measure: .usd, limit: load.limit,
                  window: .fixed(lengthMs: 86_400_000), enforcement: load.mode)
    }

    static func newLimitsNode(id: String, load: BudgetLoad, epoch: UInt64, seed: UInt64) -> LimitsNode {
        let counters = CounterMap(node: id, startVersion: CounterMap.startVersion(epoch: epoch), epoch: epoch)
        return LimitsNode(engine: LimitsEngine(node: id, rules: [rule(load)], counters: counters, reservationTimeoutMs: 3_600_000),
                          replicator: Replicator(seed: seed), epoch: epoch, authority: FigureAuthority(me: id, myRun: counters.holder),
                          agreement: MemberAgreement(members: [id], alone: false))
    }
}

extension ClusterSimulator.LimitsNode {
    /// Journals this node's figures of `keys`' rights as they are now.
    mutating func journalRights(of keys: some Collection<CounterMap.Key>) {
        guard !keys.isEmpty else { return }
        journal(engine.counters.writtenRights(keys))
    }

    /// The rights figures written since the last call go to the journal (before any frame can
    /// carry them, as in the shell).
    mutating func journalRightsChanges() {
        journal(engine.withCounters { $0.takeRightsChanges() })
    }

    private mutating func journal(_ figures: [(key: CounterMap.Key, rights: RightsEntry)]) {
        for (key, rights) in figures { journalRights[key, default: RightsEntry()].merge(rights) }
    }

    /// The store's batch: settled spend is written, which closes those reservations in the journal.
    mutating func flush() {
        let (slots, version) = engine.counters.spentSlots(since: flushedVersion)
        for s in slots { storedSpend[s.key, default: [:]][s.node] = s.spent }
        flushedVersion = version
        for id in settledUnflushed { journalOpen[id] = nil }
        settledUnflushed = []
    }

    /// A restarted node, as `LimitsService.init` and `recover` build it: the spend its store
    /// holds, the requests its earlier run left open charged at their estimate, the rights its
    /// runs wrote (what earlier runs held goes back to the pool); it admits nothing and grants
    /// nothing until it has merged a peer's counters or the catch-up wait has passed.
    func restarted(load: BudgetLoad, now: Int64, seed: UInt64) -> ClusterSimulator.LimitsNode {
        var next = ClusterSimulator.newLimitsNode(id: engine.node, load: load, epoch: epoch + 1, seed: seed)
        for (key, slots) in storedSpend.sorted(by: { $0.key.scope < $1.key.scope }) {
            for (node, amount) in slots.sorted(by: { $0.key < $1.key }) {
                _ = next.engine.restoreIfCurrent(key, slotNode: node, spent: amount, now: now)
            }
        }
        next.engine.expire(now: now)
        for (_, held) in journalOpen.sorted(by: { $0.key < $1.key }) {
            for h in held where h.amount > 0 { _ = next.engine.restoreIfCurrent(h.key, spent: h.amount, now: now) }
        }
        for (key, rights) in journalRights.sorted(by: { $0.key.scope < $1.key.scope }) { next.engine.withCounters { $0.restoreRights(key, rights) } }
        next.engine.withCounters { $0.returnEarlierRuns() }
        next.journalRights = journalRights
        next.journalRightsChanges()
        // The members ever seen are in the store (`NodeStore.membersSeen`): a restarted node that
        // forgot them would own, in `strict`, every key of a member it has not heard from yet, and
        // grant its rights to itself.
        next.everSeen = everSeen
        next.agreement.setMembers(everSeen.union([engine.node]))
        // What was restored is durable already.
        next.storedSpend = storedSpend
        next.flush()
        next.expectCatchUp(until: now + 2_000)
        return next
    }

    /// As `LimitsService.expectCatchUp`: admit nothing, and grant nothing as an owner, until a
    /// peer's counters are merged or `deadline` (this node's clock) has passed.
    mutating func expectCatchUp(until deadline: Int64) {
        caughtUp = false
        catchUpUntil = deadline
        engine.grantsFrom = deadline
    }

    mutating func markCaughtUp(now: Int64) {
        guard !caughtUp else { return }
        caughtUp = true
        engine.grantsFrom = min(engine.grantsFrom, now)
    }
}

extension ClusterSimulator.Run {
    var load: BudgetLoad { o.budget! }
    var stopMs: Int64 { load.stopMs ?? max(0, o.durationMs - 20_000) }

    func key(_ scope: Int) -> CounterMap.Key {
        let rule = ClusterSimulator.rule(load)
        return CounterMap.Key(rule: rule.id, scope: load.scopes > 1 ? "user=u\(scope)" : "", bucket: rule.window.bucket(at: 1_800_000_000_000))
    }

    /// The most any scope had left (limit less served and in flight): what each extra side of a
    /// partition may spend again.
    func roomLeft() -> Int64 {
        var most: Int64 = 0
        for s in served.indices { most = max(most, load.limit - served[s] - inFlight[s]) }
        return max(0, most)
    }

    /// Requests whose answer is due end: the provider served them (whatever became of the node),
    /// and a node still in the run that admitted them settles them.
    mutating func endRequests() {
        while let first = ends.first, first.at <= now, let (_, r) = ends.pop() {
            served[r.scope] += r.actual
            inFlight[r.scope] -= load.cost
            guard up[r.node], epochs[r.node] == r.epoch else { continue }
            _ = limits[r.node].engine.settle(r.id, actual: LimitAmounts(costNanos: r.actual, requests: 1))
            limits[r.node].settledUnflushed.append(r.id)
        }
    }

    /// One node's budget work for a tick: its view of ownership, new requests, those waiting for
    /// rights, replication, and (each second) the engine's housekeeping.
    mutating func budgetTick(_ i: Int) {
        let clock = self.clock(i)
        if membershipChanged[i] {
            membershipChanged[i] = false
            let m = nodes[i]
            let live = m.live
            peerNames[i] = live.map(\.info.name)
            limits[i].everSeen.formUnion(m.members.values.filter { $0.state != .left }.map(\.info.id))
            limits[i].everSeen.subtract(m.members.values.filter { $0.state == .left }.map(\.info.id))
            let me = infos[i].id
            limits[i].liveIDs = live.map(\.info.id)
            var ownership = LimitsEngine.Ownership(live: (limits[i].liveIDs + [me]).sorted(), all: limits[i].everSeen.union([me]).sorted())
            ownership.agreed = limits[i].engine.ownership.agreed
            if limits[i].engine.ownership != ownership { limits[i].engine.ownership = ownership }
            limits[i].authority.live = Set(live.map(\.info.id))
            limits[i].authority.gone = Set(m.members.values.filter { $0.state == .dead || $0.state == .left }.map(\.info.id))
                .subtracting(limits[i].authority.live)
            if load.mode == .strict {
                limits[i].agreement.setMembers(ownership.all)
                for gone in limits[i].authority.gone { limits[i].agreement.forget(gone) }
            }
        }
        // As `ClusterService.tick`: `strict` owners grant only while the live peers hold the same
        // members ever seen; this node's digest goes to those that need it (after the counters of
        // this tick, below, on the same links).
        var agreementDue: [String] = []
        if load.mode == .strict {
            let agreed = limits[i].agreement.agrees(live: limits[i].liveIDs, now: now)
            if limits[i].engine.ownership.agreed != agreed { limits[i].engine.ownership.agreed = agreed }
            agreementDue = limits[i].agreement.due(live: limits[i].liveIDs, now: now)
        }
        if !limits[i].caughtUp {
            if clock >= limits[i].catchUpUntil || nodes[i].members.values.contains(where: { $0.state == .alive && now - $0.changedAt >= 1_000 }) {
                limits[i].markCaughtUp(now: clock)
            }
        }
        // New requests: round-robin DNS spreads them over the up nodes.
        if now < stopMs {
            arrivals[i] += load.requestsPerSecond / Double(max(1, upCount)) * Double(o.tickMs) / 1000
            while arrivals[i] >= 1 {
                arrivals[i] -= 1
                var request = LimitRequest(gateway: "g", provider: "p", model: nil)
                request.user = "u\(Int(rng.next() % UInt64(load.scopes)))"
                limits[i].waiting.append(.init(request: request, since: clock, askedAt: 0, asked: false))
            }
        } else if stoppedAt == nil {
            stoppedAt = now
        }
        if limits[i].caughtUp && !limits[i].waiting.isEmpty {
            var still: [ClusterSimulator.LimitsNode.Waiting] = []
            for w in limits[i].waiting {
                if let w = attempt(w, at: i, clock: clock) { still.append(w) }
            }
            limits[i].waiting = still
        }
        if clock >= limits[i].nextExpireAt {
            limits[i].nextExpireAt = clock + 1_000
            // As `LimitsService.run`: the figures of the keys in use first (refunds since their
            // last admission), then what expiring changed.
            limits[i].journalRights(of: limits[i].engine.counters.rightsInUse)
            limits[i].engine.expire(now: clock)
            limits[i].journalRightsChanges()
        }
        if clock >= limits[i].nextFlushAt {
            limits[i].nextFlushAt = clock + 200
            limits[i].flush()
        }
        var replicator = limits[i].replicator
        var later = Replicator.Later()
        let frames = limits[i].engine.withCounters { counters in replicator.tick(now: clock, counters: &counters, peers: peerNames[i], later: &later) }
        limits[i].replicator = replicator
        for (peer, frame) in frames { if let to = peerIndex(peer) { send(frame, from: i, to: to) } }
        // A peer that needs every entry gets this node's, and those of the gone (`sendAll`).
        for peer in later.whole {
            guard let to = peerIndex(peer) else { continue }
            let counters = limits[i].engine.counters
            let sent = limits[i].authority.forNewPeer(own: counters.ownEntries(counters.keys), entries: { counters.entries })
            for f in Replicator.frames(sent) { send(f, from: i, to: to) }
        }
        if limits[i].replicator.needsDigests {
            limits[i].replicator.needsDigests = false
            limits[i].engine.withCounters { $0.digestWholeTable() }
        }
        if !agreementDue.isEmpty {
            for peer in agreementDue { if let to = Int(peer.dropFirst(2)) { send(limits[i].agreement.frame(to: peer), from: i, to: to) } }
        }
    }

    func peerIndex(_ name: String) -> Int? { Int(name.dropFirst()) }

    /// Decides on a request as `LimitsService.admit` does; returns it while it waits for rights.
    mutating func attempt(_ w: ClusterSimulator.LimitsNode.Waiting, at i: Int, clock: Int64) -> ClusterSimulator.LimitsNode.Waiting? {
        let decision = limits[i].engine.admit(w.request, estimate: LimitAmounts(costNanos: load.cost, requests: 1), now: clock)
        limits[i].journalRightsChanges()
        switch decision {
        case .admit(let reservation):
            limits[i].journalOpen[reservation.id] = reservation.entries.map { ($0.key, $0.amount) }
            // The open record carries what this run has used of each counter's rights, this
            // request included (`JournalRecord.Held.own`): a restart must not give back as unused
            // the rights its last requests took.
            limits[i].journalRights(of: reservation.entries.filter(\.fromRights).map(\.key))
            report.budget?.admitted += 1
            admittedPerTick[admittedPerTick.count - 1] += 1
            let scope = Int(w.request.user!.dropFirst())!
            inFlight[scope] += load.cost
            let actual = load.cost / 2 + Int64(rng.next() % UInt64(load.cost / 2 + 1))
            let request = ClusterSimulator.Request(node: i, epoch: epochs[i], id: reservation.id, scope: scope, actual: actual)
            ends.push((now + 20 + Int64(rng.next() % 180), request))
            return nil
        case .block, .downgrade:
            report.budget?.refused += 1
            return nil
        case .short(_, let needs):
            var w = w
            if !w.asked { report.budget?.waited += 1 }
            let e = limits[i].engine
            if (e.ownership.live.count <= 1 && clock >= e.grantsFrom) || clock - w.since >= load.rightsWaitMs {
                report.budget?.refused += 1
                return nil
            }
            if !w.asked || clock - w.askedAt >= 100 {
                w.asked = true
                w.askedAt = clock
                let due = limits[i].throttle.due(needs.filter { $0.owner != infos[i].id }, now: clock)
                if !due.isEmpty { ask(due, from: i) }
            }
            return w
        }
    }

    /// As `ClusterService.askForRights`: the asker's figures, then the ask, to each owner.
    mutating func ask(_ needs: [LimitsEngine.RightsNeed], from i: Int) {
        for (owner, asks) in Dictionary(grouping: needs, by: \.owner).sorted(by: { $0.key < $1.key }) {
            guard let to = Int(owner.dropFirst(2)), to != i else { continue }
            for f in Replicator.frames(limits[i].engine.counters.ownEntries(asks.map(\.key))) { send(f, from: i, to: to) }
            send(RightsCodec.encode(holder: limits[i].engine.counters.holder,
                                    asks.map { .init(key: $0.key, shortfall: $0.shortfall, need: $0.need, rate: $0.rate) }), from: i, to: to)
        }
    }

    /// A peer's frame, as `ClusterService.receive` handles it (decoded by the real codecs).
    mutating func receive(_ frame: Frame, at i: Int, from: Int) {
        let clock = self.clock(i)
        do {
            switch frame.kind {
            case .counters:
                if o.brokenMerge { return }
                let entries = try CountersCodec.decode(frame.payload)
                limits[i].engine.merge(limits[i].authority.admit(entries, from: infos[from].id).entries)
                limits[i].markCaughtUp(now: clock)
            case .digest:
                let theirs = try CountersCodec.decodeDigest(frame.payload)
                guard let ours = limits[i].engine.withCounters({ $0.digests() }) else { return }
                let differing = Replicator.differing(theirs: theirs, ours: ours)
                guard !differing.isEmpty else { return }
                let entries = limits[i].engine.counters.entries(limits[i].engine.counters.keys(ofRules: differing))
                for f in Replicator.frames(limits[i].authority.forPeer(entries, peer: infos[from].id)) { send(f, from: i, to: from) }
            case .members:
                let (digest, _, wantsReply) = try MemberAgreement.decode(frame.payload)
                if limits[i].agreement.heard(digest, from: infos[from].id, wantsReply: wantsReply) {
                    send(limits[i].agreement.frame(to: infos[from].id), from: i, to: from)
                }
            case .rightsAsk:
                let (holder, asks) = try RightsCodec.decode(frame.payload)
                guard RightsEntry.split(holder: holder).node == infos[from].id else { return }
                var answer: [CounterMap.Key: CounterMap.Entry] = [:]
                for a in asks {
                    _ = limits[i].engine.grant(a.key, to: holder, shortfall: a.shortfall, need: a.need, rate: a.rate, now: clock)
                    limits[i].journalRightsChanges()
                    if let entry = limits[i].engine.counters.ownEntries([a.key], pairsTo: holder)[a.key] { answer[a.key] = entry }
                }
                for f in Replicator.frames(answer) { send(f, from: i, to: from) }
            default:
                break
            }
        } catch {
            preconditionFailure("the simulator sent a frame its codec cannot read: \(error)")
        }
    }

    /// Every up node holds the same spend for every scope.
    func spendAgrees() -> Bool {
        for s in served.indices {
            let key = self.key(s)
            var first: Int64?
            for i in nodes.indices where up[i] {
                let v = limits[i].engine.counters.entry(key)?.spent.value ?? 0
                if let f = first, f != v { return false }
                first = v
            }
        }
        return true
    }

    /// The budget's figures at the end of the run.
    mutating func finishBudget() {
        var b = report.budget!
        for s in served.indices {
            b.served += served[s]
            b.overshoot = max(b.overshoot, served[s] - load.limit)
            let key = self.key(s)
            for i in nodes.indices where up[i] {
                let view = limits[i].engine.counters.entry(key)?.spent.value ?? 0
                if view < served[s] {
                    if o.kill != nil && o.restartAfterMs == nil { b.unheardFromDead = max(b.unheardFromDead, served[s] - view) }
                    else { b.lostSpend = max(b.lostSpend, served[s] - view) }
                }
                b.reservedAtEnd += limits[i].engine.counters.reserved(key, now: clock(i))
            }
        }
        b.overshootBound = overshootBound() + extraBound
        report.budget = b
    }

    /// What the mode allows over the limit with every node alive and reachable: `strict` and
    /// `bounded` nothing; `soft` what the other nodes admit while one's admissions travel
    /// (`docs/budgets.md`: (N − 1) × r × d × c, with d the one-way delay, its jitter, the delta
    /// interval twice and a tick, and one more delta interval when messages are lost). r is the
    /// measured one: the most the cluster admitted within any d, over N (a burst, such as the
    /// requests that waited while a starting cluster caught up, counts as what it is). Kills and
    /// partitions add to it (`kill`, `roomLeft`).
    func overshootBound() -> Int64 {
        guard load.mode == .soft else { return 0 }
        // Every peer gets each change within a delta interval up to `fullFanout` peers, within
        // `everyPeerMs` beyond.
        let config = Replicator.Config()
        let interval = o.nodes - 1 <= config.fullFanout ? config.deltaIntervalMs : config.everyPeerMs
        let d = o.delayMs + o.jitterMs + interval + config.deltaIntervalMs + o.tickMs + (o.loss > 0 ? 50 : 0)
        let window = Int((d + o.tickMs - 1) / o.tickMs)
        var peak = 0, sum = 0
        for (t, n) in admittedPerTick.enumerated() {
            sum += n
            if t >= window { sum -= admittedPerTick[t - window] }
            peak = max(peak, sum)
        }
        let n = Double(o.nodes)
        return Int64(((n - 1) / n * Double(peak) / Double(load.scopes) * Double(load.cost)).rounded(.up))
    }
}
