import GateMeshCore
@testable import GateMeshLimits
import GateMeshTestSupport
import Testing

@Suite struct RightsTests {
    /// Three holders act on their own replicas in a random order (draws by the owner, consumption,
    /// refunds, returns) while replicas merge at random. At every step, summed over the cluster,
    /// what was used net of refunds stays within what was granted net of returns, and that within
    /// the limit; merges commute, associate and are idempotent.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func noRightIsConsumedTwiceWhateverTheOrder(seed: UInt64) {
        var rng = SplitMix(state: seed)
        let holders = ["a/1", "b/1", "c/1"], limit: Int64 = 1_000
        var replicas = Array(repeating: RightsEntry(), count: 3)
        // The truth: every replica's own writes, merged.
        func truth() -> RightsEntry { replicas.reduce(into: RightsEntry()) { $0.merge($1) } }
        for _ in 0..<2_000 {
            let i = Int(rng.next() % 3), amount = Int64(rng.next() % 40) + 1
            switch rng.next() % 6 {
            case 0 where i == 0: replicas[0].grant(amount * 3, from: holders[0], to: holders[Int(rng.next() % 3)], limit: limit)
            case 1, 2: replicas[i].consume(amount, by: holders[i])
            case 3: if (replicas[i].used[holders[i]] ?? 0) - (replicas[i].refunded[holders[i]] ?? 0) >= amount { replicas[i].refund(amount, to: holders[i]) }
            case 4: replicas[i].giveBack(amount, by: holders[i])
            default:
                let j = Int(rng.next() % 3)
                replicas[i].merge(replicas[j])
            }
            let t = truth()
            let net = t.used.values.reduce(0, +) - t.refunded.values.reduce(0, +)
            #expect(net <= t.grantedTotal - t.returnedTotal)
            #expect(t.grantedTotal - t.returnedTotal <= limit)
            for h in holders { #expect(t.held(by: h) >= 0) }
        }
        let (x, y, z) = (replicas[0], replicas[1], replicas[2])
        func m(_ a: RightsEntry, _ b: RightsEntry) -> RightsEntry { var c = a; c.merge(b); return c }
        #expect(m(x, y) == m(y, x) && m(m(x, y), z) == m(x, m(y, z)) && m(x, x) == x)
    }

    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_800_000_000_000

    func rule(_ mode: LimitRule.Enforcement, limit: Int64 = 200) -> LimitRule {
        LimitRule(id: "budget", gateway: "g", measure: .requests, limit: limit, window: .fixed(lengthMs: Self.day), enforcement: mode)
    }

    /// A deterministic cluster of engines: asks go to the owner and grants come back after a
    /// one-way latency, every node gossips its changes every 50 ms, requests arrive in bursts and
    /// each lasts a while, and a partition may cut some nodes off. Returns (admitted, refused).
    func simulate(_ mode: LimitRule.Enforcement, nodes: Int = 3, clients: Int = 64, limit: Int64 = 200, latency: Int64 = 150,
                  partitioned: Set<Int>? = nil, cutAfterMs: Int64 = 0, seed: UInt64 = 1) -> (admitted: Int64, refused: Int) {
        var rng = SplitMix(state: seed)
        let names = (0..<nodes).map { "n\($0)" }
        var engines = names.map { LimitsEngine(node: $0, rules: [rule(mode, limit: limit)], counters: CounterMap(node: $0, epoch: 1)) }
        for i in engines.indices { engines[i].ownership = .init(live: names, all: names) }
        var now = Self.now
        enum Message { case ask(from: Int, RightsCodecAsk), entries(CounterMap.Key, CounterMap.Entry), delta([CounterMap.Key: CounterMap.Entry]) }
        struct RightsCodecAsk { var holder: String; var need: LimitsEngine.RightsNeed }
        var queue: [(at: Int64, to: Int, from: Int, Message)] = []
        func cut(_ a: Int, _ b: Int) -> Bool {
            now - Self.now >= cutAfterMs && (partitioned.map { $0.contains(a) != $0.contains(b) } ?? false)
        }
        // Clients: each waits for an answer, then asks again at once (a burst that never lets up).
        var clientsAt = (0..<clients).map { (node: $0 % nodes, pendingSince: Int64?.none, until: Self.now) }
        var open: [(node: Int, id: UInt64, ends: Int64)] = []
        var admitted: Int64 = 0, refused = 0
        var sentVersion = Array(repeating: Array(repeating: UInt64(0), count: nodes), count: nodes)
        let request = LimitRequest(gateway: "g", provider: "p", model: nil)
        for _ in 0..<4_000 {
            now += 5
            // Deliver what is due.
            queue.sort { $0.at < $1.at }
            while let first = queue.first, first.at <= now {
                queue.removeFirst()
                guard !cut(first.to, first.from) else { continue }
                switch first.3 {
                case .ask(let from, let ask):
                    if engines[first.to].grant(ask.need.key, to: ask.holder, shortfall: ask.need.shortfall, need: ask.need.need, now: now),
                       let entry = engines[first.to].counters.entry(ask.need.key) {
                        queue.append((now + latency, from, first.to, .entries(ask.need.key, entry)))
                    }
                case .entries(let key, let entry): engines[first.to].merge([key: entry])
                case .delta(let d): engines[first.to].merge(d)
                }
            }
            // Requests end (at their estimate) after 20–120 ms.
            open.removeAll { r in
                guard r.ends <= now else { return false }
                engines[r.node].settle(r.id, actual: LimitAmounts(costNanos: 0, requests: 1))
                return true
            }
            // Clients ask; a short one asks the owner and tries again for up to 2 s.
            for c in clientsAt.indices where clientsAt[c].until <= now {
                let n = clientsAt[c].node
                switch engines[n].admit(request, estimate: LimitAmounts(costNanos: 0, requests: 1), now: now) {
                case .admit(let r):
                    admitted += 1
                    open.append((n, r.id, now + 20 + Int64(rng.next() % 100)))
                    clientsAt[c].pendingSince = nil
                    clientsAt[c].until = now + 25
                case .block, .downgrade:
                    refused += 1
                    clientsAt[c].pendingSince = nil
                    clientsAt[c].until = now + 1_000
                case .short(_, let needs):
                    let since = clientsAt[c].pendingSince ?? now
                    if now - since >= 2_000 {
                        refused += 1
                        clientsAt[c].pendingSince = nil
                        clientsAt[c].until = now + 1_000
                        continue
                    }
                    if clientsAt[c].pendingSince == nil || (now - since) % 100 == 0 {
                        for need in needs where need.owner != names[n] {
                            queue.append((now + latency, names.firstIndex(of: need.owner)!, n, .ask(from: n, .init(holder: engines[n].counters.holder, need: need))))
                        }
                    }
                    clientsAt[c].pendingSince = since
                    clientsAt[c].until = now + 5
                }
            }
            // Gossip and housekeeping.
            if now % 50 == 0 {
                for i in engines.indices {
                    for j in engines.indices where j != i {
                        let d = engines[i].counters.delta(since: sentVersion[i][j])
                        sentVersion[i][j] = engines[i].counters.version
                        if !d.isEmpty { queue.append((now + latency, j, i, .delta(d))) }
                    }
                }
            }
            if now % 1000 == 0 { for i in engines.indices { engines[i].expire(now: now) } }
            // Every request costs 1 and is charged 1: nothing admitted may pass the limit, ever.
            let slack = mode == .bounded ? max(limit / 100, 1) : 0
            #expect(admitted <= limit + slack, "at \(now - Self.now) ms: \(admitted) admitted, over \(limit)")
        }
        return (admitted, refused)
    }

    func admitted(_ d: LimitsEngine.Decision) -> LimitsEngine.Reservation? {
        if case .admit(let r) = d { return r }
        return nil
    }

    /// A restarted owner knows, from its journal, what its earlier run granted and used, even
    /// when no peer answers: it hands out only what is left, and gives back what the earlier run
    /// held unused. Without the journal's rights it would hand out the whole pool again.
    @Test(arguments: [LimitRule.Enforcement.bounded, .strict])
    func aRestartedOwnerRestoresWhatItsEarlierRunGrantedAndUsed(_ mode: LimitRule.Enforcement) throws {
        let request = LimitRequest(gateway: "g", provider: "p", model: nil)
        let cost = { (n: Int64) in LimitAmounts(costNanos: n, requests: 1) }
        let budget = LimitRule(id: "budget", gateway: "g", measure: .usd, limit: 1_000, window: .fixed(lengthMs: Self.day), enforcement: mode)
        let now = Self.now
        let key = CounterMap.Key(rule: "budget", scope: "", bucket: budget.window.bucket(at: now))
        var run1 = LimitsEngine(node: "a", rules: [budget], counters: CounterMap(node: "a", epoch: 1))
        // a owns every counter (b, the other holder, is not in the ownership lists).
        run1.ownership = .init(live: ["a"], all: ["a"])
        var journal: [UInt8] = []
        func persist(_ engine: inout LimitsEngine) {
            for change in engine.withCounters({ $0.takeRightsChanges() }) { journal += JournalCodec.frame(.rights(change.key, change.rights)) }
        }
        let granted = run1.grant(key, to: "b/1", shortfall: 300, need: 300, now: now)
        #expect(granted)
        persist(&run1)
        let toB = run1.counters.rights(key).held(by: "b/1")
        let r = try #require(admitted(run1.admit(request, estimate: cost(100), now: now)))
        persist(&run1)
        _ = r
        let heldByA = run1.counters.rights(key).held(by: "a/1")
        #expect(toB >= 300 && heldByA > 0)
        // Killed. The next run hears from nobody.
        var replay = JournalReplay()
        for record in JournalCodec.records(in: journal).records { replay.apply(record) }
        var run2 = LimitsEngine(node: "a", rules: [budget], counters: CounterMap(node: "a", epoch: 2))
        run2.ownership = .init(live: ["a"], all: ["a"])
        for (k, rights) in replay.rights { run2.withCounters { $0.restoreRights(k, rights) } }
        run2.expire(now: now + 1)
        let rights = run2.counters.rights(key)
        #expect(rights.held(by: "a/1") == 0 && rights.used["a/1"] == 100, "the earlier run's unused rights went back")
        #expect(rights.held(by: "b/1") == toB, "b's grant stands")
        // The earlier run's 100 are in flight (the journal charges them at their estimate).
        #expect(run2.pool(key, rule: budget, now: now + 1) == 1_000 - toB - 100)
        // Its changes go into its own journal too (a second restart finds them).
        let journaled = run2.withCounters { $0.takeRightsChanges() }
        #expect(journaled.contains { $0.key == key && $0.rights.returned["a/1"] == heldByA })
    }

    /// A `strict` owner hands out nothing while its live peers do not hold the same members
    /// (`Ownership.agreed`): another node may take itself for the owner. `bounded` owners, whose
    /// owners are picked among the live, are not held back.
    @Test func aStrictOwnerGrantsOnlyWhileTheMembersAgree() {
        let now = Self.now
        for mode in [LimitRule.Enforcement.strict, .bounded] {
            let budget = LimitRule(id: "budget", gateway: "g", measure: .usd, limit: 1_000, window: .fixed(lengthMs: Self.day), enforcement: mode)
            let key = CounterMap.Key(rule: "budget", scope: "", bucket: budget.window.bucket(at: now))
            var owner = LimitsEngine(node: "a", rules: [budget], counters: CounterMap(node: "a", epoch: 1))
            owner.ownership = .init(live: ["a", "b"], all: ["a"], agreed: false)
            // "a" owns every counter among ["a"]; "b" is live but not in `all` (strict picks there).
            if mode == .strict {
                let notAgreed = owner.grant(key, to: "b/1", shortfall: 10, need: 10, now: now)
                #expect(!notAgreed, "strict, not agreed")
                let d = owner.admit(LimitRequest(gateway: "g", provider: "p", model: nil), estimate: LimitAmounts(costNanos: 10, requests: 1), now: now)
                guard case .short = d else {
                    Issue.record("a strict owner not agreed drew rights for itself: \(d)")
                    continue
                }
                owner.ownership.agreed = true
                let agreed = owner.grant(key, to: "b/1", shortfall: 10, need: 10, now: now)
                #expect(agreed, "strict, agreed")
            } else {
                owner.ownership = .init(live: ["a"], all: ["a"], agreed: false)
                let granted = owner.grant(key, to: "b/1", shortfall: 10, need: 10, now: now)
                #expect(granted, "bounded does not wait for agreement")
            }
        }
    }

    /// Shares follow demand: a node that asks with a second's demand larger than an equal share
    /// gets that second's worth (up to half the pool), so busy nodes ask less often; an idle one
    /// gets the equal share, and never less than its shortfall.
    @Test func grantsFollowTheAskersDemand() {
        let budget = LimitRule(id: "budget", gateway: "g", measure: .usd, limit: 1_000, window: .fixed(lengthMs: Self.day), enforcement: .bounded)
        let now = Self.now
        var probe = LimitsEngine(node: "a", rules: [budget])
        probe.ownership = .init(live: ["a", "b"], all: ["a", "b"])
        // A scope value whose counter "a" owns among the two.
        let key = (0..<64).lazy.map { CounterMap.Key(rule: "budget", scope: "s\($0)", bucket: budget.window.bucket(at: now)) }
            .first { probe.owner(of: $0, rule: budget) == "a" }!
        func granted(rate: Int64, shortfall: Int64 = 10) -> Int64 {
            var owner = LimitsEngine(node: "a", rules: [budget], counters: CounterMap(node: "a", epoch: 1))
            owner.ownership = .init(live: ["a", "b"], all: ["a", "b"])
            _ = owner.grant(key, to: "b/1", shortfall: shortfall, need: shortfall, rate: rate, now: now)
            return owner.counters.rights(key).held(by: "b/1")
        }
        let idle = granted(rate: 0)
        #expect(idle == 250, "an equal share: half the pool over two members")
        #expect(granted(rate: 400) == 400, "a second of its demand")
        #expect(granted(rate: 900) == 500, "at most half the pool")
        #expect(granted(rate: 0, shortfall: 300) == 300, "at least the shortfall")
    }

    /// One engine's bookkeeping: the owner draws shares from the pool, a request that costs less
    /// gives the rest back, a failed one all of it, one that costs more consumes it anyway, and
    /// idle rights go back to the pool; a node that does not own the counter asks its owner.
    @Test func rightsAreDrawnGivenBackAndReturnedByOneEngine() throws {
        let request = LimitRequest(gateway: "g", provider: "p", model: nil)
        let cost = { (n: Int64) in LimitAmounts(costNanos: n, requests: 1) }
        let budget = LimitRule(id: "budget", gateway: "g", measure: .usd, limit: 1_000, window: .fixed(lengthMs: Self.day), enforcement: .bounded)
        var engine = LimitsEngine(node: "a", rules: [budget], counters: CounterMap(node: "a", epoch: 3))
        engine.ownership = .init(live: ["a"], all: ["a"])
        let now = Self.now
        let key = CounterMap.Key(rule: "budget", scope: "", bucket: budget.window.bucket(at: now))
        #expect(engine.owner(of: key, rule: budget) == "a")
        // Not the owner: nothing held, so ask the owner for the shortfall.
        var other = LimitsEngine(node: "b", rules: [budget], counters: CounterMap(node: "b", epoch: 1))
        other.ownership = .init(live: ["a"], all: ["a"])
        guard case .short(let refusal, let needs) = other.admit(request, estimate: cost(100), now: now) else {
            Issue.record("expected a shortfall")
            return
        }
        #expect(refusal.rule.id == "budget" && needs == [.init(key: key, owner: "a", shortfall: 100, need: 100, rate: 100)])
        // The owner draws max(shortfall, pool / (2 × 1 live member)) = 500 and consumes 100.
        let r = try #require(admitted(engine.admit(request, estimate: cost(100), now: now)))
        #expect(engine.counters.rights(key).held(by: "a/3") == 400 && engine.pool(key, rule: budget, now: now) == 500)
        engine.settle(r.id, actual: cost(40))
        #expect(engine.counters.rights(key).held(by: "a/3") == 460, "60 back")
        let r2 = try #require(admitted(engine.admit(request, estimate: cost(100), now: now)))
        engine.release(r2.id)
        #expect(engine.counters.rights(key).held(by: "a/3") == 460, "a failed request gives all back")
        let r3 = try #require(admitted(engine.admit(request, estimate: cost(400), now: now)))
        engine.settle(r3.id, actual: cost(500))
        #expect(engine.counters.rights(key).held(by: "a/3") == -40, "spent is spent: the node owes 40")
        // Idle for a second: nothing is held to give back; the pool is the limit less what was spent.
        engine.expire(now: now + 1_000)
        #expect(engine.pool(key, rule: budget, now: now + 1_000) == 1_000 - 540)
        let r4 = try #require(admitted(engine.admit(request, estimate: cost(100), now: now + 1_000)))
        engine.release(r4.id)
        // The draw: the shortfall 140 (it owed 40), or half the pool (460 / 2) when more: 230.
        #expect(engine.counters.rights(key).held(by: "a/3") == 190)
        // Idle for a second, but 190 is less than an equal share of the 460 left: kept (no round
        // trip for the next request)...
        engine.expire(now: now + 2_000)
        #expect(engine.counters.rights(key).held(by: "a/3") == 190)
        // ...until it has been idle for `rightsKeepMs`, or the room left shrinks to its share.
        engine.rightsKeepMs = 1_000
        engine.expire(now: now + 2_000)
        #expect(engine.counters.rights(key).held(by: "a/3") == 0 && engine.pool(key, rule: budget, now: now + 2_000) == 460,
                "idle rights went back to the pool")
        // Rights a holder holds go back to a bounded owner's pool only once the holder's lease and
        // the allowed drift have passed; a strict owner keeps them out (the node may be alive
        // behind a cut, using them) until the holder gives them back.
        engine.ownership = .init(live: ["a", "b"], all: ["a", "b"])
        let granted = engine.grant(key, to: "b/1", shortfall: 100, need: 100, now: now + 2_000)
        #expect(granted)
        let lent = engine.counters.rights(key).held(by: "b/1")
        #expect(lent >= 100 && engine.pool(key, rule: budget, now: now + 2_000) == 460 - lent)
        #expect(engine.counters.rights(key).lease(of: "b/1") == now + 12_000)
        // While b is live its lease is renewed when half of it is left.
        engine.expire(now: now + 8_000)
        #expect(engine.counters.rights(key).lease(of: "b/1") == now + 18_000)
        engine.ownership = .init(live: ["a"], all: ["a", "b"])
        engine.expire(now: now + 14_000)
        #expect(engine.counters.rights(key).lease(of: "b/1") == now + 18_000, "a dead member's lease is not renewed")
        #expect(engine.pool(key, rule: budget, now: now + 18_000) == 460 - lent, "b is dead, but its lease holds")
        #expect(engine.pool(key, rule: budget, now: now + 19_001) == 460, "lease and drift have passed: the pool's again")
        var strictRule = budget
        strictRule.enforcement = .strict
        #expect(engine.pool(key, rule: strictRule, now: now + 19_001) == 460 - lent)
        // A holder whose lease lapsed uses none of its rights: it gives them back when it looks.
        var holderB = LimitsEngine(node: "b", rules: [budget], counters: CounterMap(node: "b", epoch: 1))
        holderB.ownership = .init(live: ["a", "b"], all: ["a", "b"])
        holderB.merge(engine.counters.delta(since: 0))
        #expect(admitted(holderB.admit(request, estimate: cost(50), now: now + 16_999)) != nil, "within its lease less the drift")
        guard case .short = holderB.admit(request, estimate: cost(50), now: now + 17_000) else {
            Issue.record("past its lease less the drift, b may not use its rights")
            return
        }
        #expect(holderB.counters.rights(key).held(by: "b/1") == 0, "and gave them back")
        // What an earlier run of this node holds goes back at once (it died: this run replaced it).
        engine.merge([key: CounterMap.Entry(rights: RightsEntry(granted: [.init(from: "b/1", to: "a/2"): 10]))])
        #expect(engine.pool(key, rule: budget, now: now + 19_001) == 460, "bounded counts it stranded")
        #expect(engine.pool(key, rule: strictRule, now: now + 19_001) == 460 - lent - 10, "strict, until it is given back")
        engine.expire(now: now + 19_001)
        #expect(engine.counters.rights(key).held(by: "a/2") == 0 && engine.counters.rights(key).returned["a/2"] == 10)
        #expect(engine.pool(key, rule: strictRule, now: now + 19_001) == 460 - lent)
        // A strict owner takes back what a holder held once the holder left (gracefully, or marked
        // gone by an operator) and its lease has passed.
        engine.ownership = .init(live: ["a"], all: ["a"])
        #expect(engine.pool(key, rule: strictRule, now: now + 19_001) == 460)
        // A node just started in a cluster hands out nothing for a while.
        var fresh = LimitsEngine(node: "a", rules: [budget], counters: CounterMap(node: "a", epoch: 4))
        fresh.ownership = .init(live: ["a"], all: ["a"])
        fresh.grantsFrom = now + 2_000
        guard case .short = fresh.admit(request, estimate: cost(100), now: now) else {
            Issue.record("a node that may not grant yet waits")
            return
        }
        #expect(admitted(fresh.admit(request, estimate: cost(100), now: now + 2_000)) != nil)
    }

    @Test func strictNeverAdmitsPastTheLimitAndUsesAlmostAllOfIt() {
        for seed in [1, 2, 3] as [UInt64] {
            let r = simulate(.strict, seed: seed)
            #expect(r.admitted <= 200)
            #expect(r.admitted >= 194, "97 % of the limit, got \(r.admitted)")
        }
    }

    @Test func boundedAdmitsAtMostOnePercentOver() {
        let r = simulate(.bounded, limit: 200)
        #expect(r.admitted <= 202 && r.admitted >= 194, "got \(r.admitted)")
    }

    @Test(.onOwnThread) func strictHoldsAcrossAPartition() {
        // One node cut off from the start, or after 150 ms of the burst (rights handed out on
        // both sides): each side spends only what it holds, and what its owner can grant.
        for cut in [[0], [2]] as [[Int]] {
            for after in [0, 300] as [Int64] {
                #expect(simulate(.strict, partitioned: Set(cut), cutAfterMs: after).admitted <= 200)
            }
        }
    }
}
