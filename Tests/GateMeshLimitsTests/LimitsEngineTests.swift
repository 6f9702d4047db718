import GateMeshCore
@testable import GateMeshLimits
import GateMeshTestSupport
import Testing

@Suite struct LimitsEngineTests {
    static let dollar: Int64 = 1_000_000_000
    let now = ms("2026-11-26T10:00:00Z")

    func request(team: String? = nil, provider: String = "openai", model: String = "gpt-4o") -> LimitRequest {
        var metadata = RequestMetadata()
        if let team { metadata.entries = [("team", .string(team))] }
        return LimitRequest(gateway: "default", provider: provider, model: model, metadata: metadata)
    }

    func dailyBudget(_ dollars: Int64, action: LimitRule.Action = .block, scope: [LimitRule.Scope] = []) -> LimitRule {
        LimitRule(id: "daily", gateway: "default", scope: scope, measure: .usd, limit: dollars * Self.dollar,
                  window: Window.calendarWindow(.day, timeZone: "Europe/Berlin")!, action: action)
    }

    func reservation(_ d: LimitsEngine.Decision) -> LimitsEngine.Reservation? {
        if case .admit(let r) = d { return r }
        return nil
    }

    @Test func aBudgetAdmitsUntilSpentPlusReservedPlusEstimateWouldPassTheLimit() {
        var engine = LimitsEngine(node: "a", rules: [dailyBudget(1)])
        let estimate = LimitAmounts(costNanos: 300_000_000)
        let admitted = (0..<4).compactMap { _ in reservation(engine.admit(request(), estimate: estimate, now: now)) }
        #expect(admitted.count == 3, "0.3 × 3 = 0.9 fits; a fourth would make 1.2")
        guard case .block(let refusal) = engine.admit(request(), estimate: estimate, now: now) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal.used == 900_000_000 && refusal.requested == 300_000_000)
        // Berlin's day ends at 23:00 UTC: that is when the budget frees up.
        #expect(refusal.retryAfterMs == ms("2026-11-26T23:00:00Z") - now)
        // Settling at the actual cost frees the difference.
        for r in admitted { engine.settle(r.id, actual: LimitAmounts(costNanos: 100_000_000)) }
        #expect(engine.figures(rule: engine.rules[0], scope: "", now: now) == (spent: 300_000_000, reserved: 0))
        #expect(reservation(engine.admit(request(), estimate: estimate, now: now)) != nil)
        // The next Berlin day starts empty.
        #expect(reservation(engine.admit(request(), estimate: LimitAmounts(costNanos: Self.dollar), now: ms("2026-11-26T23:00:00Z"))) != nil)
    }

    /// Rules of orgs, teams and keys hold on every gateway, also one that has no rules of its
    /// own, and only for requests made with their key.
    @Test func rulesOfEveryGatewayApplyAfterTheRequestsGatewaysOwn() {
        var keyRule = dailyBudget(1, scope: [.only(.key, "k1")])
        keyRule.id = "key:k1:daily"
        keyRule.gateway = LimitRule.anyGateway
        var engine = LimitsEngine(node: "a", rules: [keyRule])
        var withKey = LimitRequest(gateway: "other", provider: "openai", model: "m")
        withKey.set(Principal(key: "k1", team: "red", org: "acme"))
        let estimate = LimitAmounts(costNanos: 600_000_000)
        #expect(reservation(engine.admit(withKey, estimate: estimate, now: now)) != nil)
        guard case .block(let refusal) = engine.admit(withKey, estimate: estimate, now: now) else {
            Issue.record("expected the key's budget to refuse")
            return
        }
        #expect(refusal.rule.id == "key:k1:daily")
        #expect(reservation(engine.admit(request(), estimate: estimate, now: now)) != nil, "a request without the key is not counted")
        withKey.key = "k2"
        #expect(reservation(engine.admit(withKey, estimate: estimate, now: now)) != nil)
    }

    @Test func exactlyTheLimitIsAdmittedUnderConcurrentRequests() {
        let rule = LimitRule(id: "rpm", gateway: "default", measure: .requests, limit: 10, window: .fixed(lengthMs: 60_000))
        var engine = LimitsEngine(node: "a", rules: [rule])
        let decisions = (0..<100).map { _ in engine.admit(request(), estimate: LimitAmounts(), now: now) }
        #expect(decisions.compactMap(reservation).count == 10)
        #expect(engine.openReservations == 10)
    }

    @Test func releasingAndExpiringReservationsLeaveNoPhantomSpend() {
        var engine = LimitsEngine(node: "a", rules: [dailyBudget(1)], reservationTimeoutMs: 60_000)
        let big = LimitAmounts(costNanos: 600_000_000)
        let first = reservation(engine.admit(request(), estimate: big, now: now))!
        #expect(reservation(engine.admit(request(), estimate: big, now: now)) == nil)
        engine.release(first.id)
        let second = reservation(engine.admit(request(), estimate: big, now: now))!
        #expect(engine.expire(now: now + 59_999).expired == 0)
        #expect(engine.expire(now: now + 60_000) == (expired: 1, forgotten: []))
        #expect(engine.figures(rule: engine.rules[0], scope: "", now: now) == (spent: 0, reserved: 0))
        // A request that outlives its reservation is still charged what it used when it ends,
        // and its long-expired reservation is not released twice.
        engine.settle(second.id, actual: big)
        #expect(engine.figures(rule: engine.rules[0], scope: "", now: now) == (spent: 600_000_000, reserved: 0))
        engine.settle(second.id, actual: big)
        #expect(engine.figures(rule: engine.rules[0], scope: "", now: now).spent == 600_000_000, "settled once only")
        // One that never ends is forgotten after a second timeout (its journal entry closed then).
        let third = reservation(engine.admit(request(), estimate: LimitAmounts(costNanos: 1), now: now))!
        #expect(engine.expire(now: now + 60_000).expired == 1)
        #expect(engine.expire(now: now + 119_999).forgotten == [])
        #expect(engine.expire(now: now + 120_000).forgotten == [third.id])
    }

    @Test func splitAndFilterScopes() {
        let perTeam = dailyBudget(1, scope: [.split(.metadata("team")), .only(.provider, "openai")])
        var engine = LimitsEngine(node: "a", rules: [perTeam])
        let all = LimitAmounts(costNanos: Self.dollar)
        #expect(reservation(engine.admit(request(team: "red"), estimate: all, now: now)) != nil)
        #expect(reservation(engine.admit(request(team: "red"), estimate: all, now: now)) == nil)
        #expect(reservation(engine.admit(request(team: "blue"), estimate: all, now: now)) != nil, "its own bucket")
        #expect(reservation(engine.admit(request(team: "red", provider: "anthropic"), estimate: all, now: now)) != nil, "filtered out")
        #expect(reservation(engine.admit(request(team: nil), estimate: all, now: now)) != nil, "no team: the split rule does not apply")
        #expect(engine.scopesByRule(now: now)[perTeam.id] == ["metadata.team=blue", "metadata.team=red"])
    }

    @Test func aDowngradeRuleAsksForTheCheaperModelAndIsSkippedOnTheSecondAsk() {
        let rule = dailyBudget(1, action: .downgrade(provider: nil, model: "gpt-4o-mini"))
        var engine = LimitsEngine(node: "a", rules: [rule])
        _ = engine.admit(request(), estimate: LimitAmounts(costNanos: Self.dollar), now: now)
        guard case .downgrade(_, _, let model) = engine.admit(request(), estimate: LimitAmounts(costNanos: 1), now: now) else {
            Issue.record("expected a downgrade")
            return
        }
        #expect(model == "gpt-4o-mini")
        #expect(reservation(engine.admit(request(model: model), estimate: LimitAmounts(costNanos: 1), now: now, skipping: [rule.id])) != nil)
    }

    @Test func rollingWindowsRetryWhenEnoughHasAgedOut() {
        let hour: Int64 = 3_600_000
        let rule = LimitRule(id: "roll", gateway: "default", measure: .usd, limit: 10, window: .rolling(lengthMs: 3 * hour, bucketMs: hour))
        var engine = LimitsEngine(node: "a", rules: [rule])
        let t0 = ms("2026-11-26T10:00:00Z")
        for (offset, amount) in [(0, 4), (1, 3), (2, 3)] as [(Int64, Int64)] {
            let r = reservation(engine.admit(request(), estimate: LimitAmounts(costNanos: amount), now: t0 + offset * hour))!
            engine.settle(r.id, actual: LimitAmounts(costNanos: amount))
        }
        let t = t0 + 2 * hour + 1800_000  // 12:30, all ten spent within the window
        guard case .block(let refusal) = engine.admit(request(), estimate: LimitAmounts(costNanos: 4), now: t) else {
            Issue.record("expected a refusal")
            return
        }
        // The 10:00-11:00 bucket (4) counts whole while any of it is in the last three hours, so it
        // leaves at 13:59:59.999; that frees enough for 4. A millisecond earlier it still counts.
        #expect(refusal.retryAfterMs == ms("2026-11-26T14:00:00Z") - 1 - t)
        #expect(reservation(engine.admit(request(), estimate: LimitAmounts(costNanos: 4), now: ms("2026-11-26T14:00:00Z") - 2)) == nil)
        #expect(reservation(engine.admit(request(), estimate: LimitAmounts(costNanos: 4), now: ms("2026-11-26T14:00:00Z") - 1)) != nil)
    }

    @Test func alertsFireOncePerThresholdPerWindow() {
        var rule = dailyBudget(1)
        rule.alertPermille = [500, 800, 1000]
        var engine = LimitsEngine(node: "a", rules: [rule])
        func spend(_ nanos: Int64, at t: Int64) -> [Int] {
            let r = reservation(engine.admit(request(), estimate: LimitAmounts(costNanos: 0), now: t))!
            let keys = engine.settle(r.id, actual: LimitAmounts(costNanos: nanos)).map(\.key)
            return engine.dueAlerts(for: keys, now: t).map(\.permille)
        }
        #expect(spend(400_000_000, at: now) == [])
        #expect(spend(450_000_000, at: now) == [500, 800])
        #expect(spend(10_000_000, at: now) == [])
        #expect(spend(200_000_000, at: now) == [1000])
        // The next Berlin day is a new window: thresholds fire again.
        let tomorrow = ms("2026-11-27T10:00:00Z")
        engine.expire(now: tomorrow)
        #expect(spend(600_000_000, at: tomorrow) == [500])
    }

    @Test func onlyTheOwnerOfAnAlertFiresItAndANewOwnerFiresWhatTheOldDidNot() {
        var rule = dailyBudget(1)
        rule.alertPermille = [500]
        var a = LimitsEngine(node: "a", rules: [rule])
        var b = LimitsEngine(node: "b", rules: [rule])
        let r = reservation(a.admit(request(), estimate: LimitAmounts(costNanos: 0), now: now))!
        let keys = a.settle(r.id, actual: LimitAmounts(costNanos: 600_000_000)).map(\.key)
        // a crossed the threshold but does not own the alert: it neither fires nor marks it.
        #expect(a.dueAlerts(for: keys, now: now, owns: { _ in false }).isEmpty)
        // b, the owner, sees the crossing in the merged counters and fires it once. Merging the
        // same counters again changes no spending, so there is nothing to check.
        #expect(b.merge(a.counters.entries) == keys)
        #expect(b.merge(a.counters.entries).isEmpty)
        #expect(b.dueAlerts(for: keys, now: now, owns: { _ in true }).map(\.permille) == [500])
        #expect(b.dueAlerts(for: keys, now: now, owns: { _ in true }).isEmpty)
        // Told that b fired it, a never does, even when it comes to own it.
        a.markFired([LimitsEngine.AlertKey(rule: rule.id, scope: keys[0].scope, window: LimitsEngine.alertWindow(rule.window, now: now), permille: 500)])
        #expect(a.dueAlerts(for: keys, now: now, owns: { _ in true }).isEmpty)
    }

    @Test func peersSeeEachOthersSpendAndReservations() {
        var a = LimitsEngine(node: "a", rules: [dailyBudget(1)])
        var b = LimitsEngine(node: "b", rules: [dailyBudget(1)])
        let spent = reservation(a.admit(request(), estimate: LimitAmounts(costNanos: 400_000_000), now: now))!
        a.settle(spent.id, actual: LimitAmounts(costNanos: 400_000_000))
        _ = a.admit(request(), estimate: LimitAmounts(costNanos: 300_000_000), now: now)  // in flight on a
        b.merge(a.counters.delta(since: 0))
        #expect(b.figures(rule: b.rules[0], scope: "", now: now) == (spent: 400_000_000, reserved: 300_000_000))
        #expect(reservation(b.admit(request(), estimate: LimitAmounts(costNanos: 400_000_000), now: now)) == nil)
        #expect(reservation(b.admit(request(), estimate: LimitAmounts(costNanos: 300_000_000), now: now)) != nil)
        // Buckets of past windows are dropped.
        a.expire(now: ms("2026-11-28T00:00:00Z"))
        #expect(a.counters.entries.isEmpty)
    }
}

/// The rule index: only rules that can match are looked at, in rule order, with the same scope
/// values as `LimitRule.scopeValue`; and rule changes keep or drop counters as documented.
@Suite struct RuleIndexTests {
    let now = ms("2026-11-26T10:00:00Z")

    func request(_ pairs: [(String, String)], provider: String = "openai", model: String = "gpt-4o") -> LimitRequest {
        var metadata = RequestMetadata()
        metadata.entries = pairs.map { ($0.0, .string($0.1)) }
        return LimitRequest(gateway: "default", provider: provider, model: model, metadata: metadata)
    }

    func perTeam(_ i: Int, limit: Int64 = 1) -> LimitRule {
        LimitRule(id: "team-\(i)", gateway: "default", scope: [.only(.metadata("team"), "t\(i)")], measure: .requests, limit: limit,
                  window: .fixed(lengthMs: 3_600_000))
    }

    @Test(.onOwnThread) func aThousandFilteredRulesCostOneLookupEachRequestAndMatchOnlyTheirOwn() {
        var engine = LimitsEngine(node: "a", rules: (0..<1000).map { perTeam($0) })
        guard case .admit(let r) = engine.admit(request([("team", "t417")]), estimate: LimitAmounts(), now: now) else {
            Issue.record("expected admission")
            return
        }
        #expect(r.entries.map(\.key.rule) == ["team-417"])
        guard case .block(let refusal) = engine.admit(request([("team", "t417")]), estimate: LimitAmounts(), now: now) else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refusal.rule.id == "team-417")
        guard case .admit(let none) = engine.admit(request([("team", "nobody")]), estimate: LimitAmounts(), now: now) else {
            Issue.record("expected admission")
            return
        }
        #expect(none.entries.isEmpty)
        let index = RuleIndex((0..<1000).map { perTeam($0) })
        #expect(index.candidates(for: request([("team", "t3")])) == [3])
    }

    @Test func candidatesKeepRuleOrderAndScopeValuesMatchTheRules() {
        let rules = [
            LimitRule(id: "by-model", gateway: "default", scope: [.only(.provider, "openai"), .split(.model)], measure: .requests, limit: 9,
                      window: .fixed(lengthMs: 60_000)),
            LimitRule(id: "all", gateway: "default", measure: .requests, limit: 9, window: .fixed(lengthMs: 60_000)),
            LimitRule(id: "red", gateway: "default", scope: [.split(.metadata("user")), .only(.metadata("team"), "red"), .split(.model)],
                      measure: .requests, limit: 9, window: .fixed(lengthMs: 60_000)),
            LimitRule(id: "user", gateway: "default", scope: [.split(.metadata("user"))], measure: .requests, limit: 9, window: .fixed(lengthMs: 60_000)),
            LimitRule(id: "red-groq", gateway: "default", scope: [.only(.metadata("team"), "red"), .only(.provider, "groq")],
                      measure: .requests, limit: 9, window: .fixed(lengthMs: 60_000)),
            LimitRule(id: "other", gateway: "elsewhere", measure: .requests, limit: 9, window: .fixed(lengthMs: 60_000)),
        ]
        let requests = [
            request([("team", "red"), ("user", "ann")]),
            request([("team", "red")], provider: "groq"),
            request([("user", "bob")], provider: "groq"),
            request([]),
        ]
        for req in requests {
            var engine = LimitsEngine(node: "a", rules: rules)
            guard case .admit(let r) = engine.admit(req, estimate: LimitAmounts(), now: now) else {
                Issue.record("expected admission")
                continue
            }
            let expected = rules.compactMap { rule in rule.scopeValue(for: req).map { (rule.id, $0) } }
            #expect(r.entries.map(\.key.rule) == expected.map(\.0))
            #expect(r.entries.map(\.key.scope) == expected.map(\.1))
        }
    }

    @Test func aChangedRuleKeepsItsSpendUnlessItsWindowChanged() {
        var engine = LimitsEngine(node: "a", rules: [perTeam(1, limit: 5), perTeam(2, limit: 5)])
        for team in ["t1", "t2"] {
            guard case .admit(let r) = engine.admit(request([("team", team)]), estimate: LimitAmounts(), now: now) else { return }
            engine.settle(r.id, actual: LimitAmounts())
        }
        var raised = perTeam(1, limit: 10)
        var rewindowed = perTeam(2, limit: 5)
        rewindowed.window = .fixed(lengthMs: 60_000)
        let first = engine.replaceRules([raised, rewindowed])
        #expect(first == ["team-2"])
        #expect(engine.figures(rule: raised, scope: "", now: now).spent == 1)
        #expect(engine.figures(rule: rewindowed, scope: "", now: now).spent == 0)
        raised.limit = 1
        let second = engine.replaceRules([raised])
        #expect(second == ["team-2"], "removed: its counters go")
        #expect(engine.counters.entries.keys.allSatisfy { $0.rule == "team-1" })
        let third = engine.replaceRules([])
        #expect(third == ["team-1"])
        #expect(engine.counters.entries.isEmpty)
    }

    @Test func restoringSkipsBucketsThatCannotBelongToTheRulesWindow() {
        var engine = LimitsEngine(node: "a", rules: [perTeam(1)])
        let current = Window.fixed(lengthMs: 3_600_000).bucket(at: now)
        let kept = engine.restoreIfCurrent(.init(rule: "team-1", scope: "", bucket: current), spent: 3, now: now)
        let minuteBucket = engine.restoreIfCurrent(.init(rule: "team-1", scope: "", bucket: now / 60_000), spent: 3, now: now)
        let unknownRule = engine.restoreIfCurrent(.init(rule: "gone", scope: "", bucket: current), spent: 3, now: now)
        #expect(kept && !minuteBucket && !unknownRule)
        #expect(engine.figures(rule: perTeam(1), scope: "", now: now).spent == 3)
    }
}

/// What a node persists: its own slot and the slots it merged from peers, only when they change.
@Suite struct SpendPersistenceTests {
    let key = CounterMap.Key(rule: "daily", scope: "", bucket: 3)

    @Test func spentSlotsCoverLocalAndMergedSpendingSinceAVersion() {
        var map = CounterMap(node: "a")
        #expect(map.spentSlots(since: 0).slots.isEmpty)
        map.spend(key, 5)
        let first = map.spentSlots(since: 0)
        #expect(first.slots.map(\.node) == ["a"] && first.slots.map(\.spent) == [5])
        // A reservation change is not spending: nothing new to persist.
        map.addReserved(key, 7)
        #expect(map.spentSlots(since: first.version).slots.isEmpty)
        // A peer's spending merged in is persisted too, with every slot of the entry.
        map.merge([key: CounterMap.Entry(spent: GCounter(slots: ["b": 4]))])
        let second = map.spentSlots(since: first.version)
        #expect(Dictionary(uniqueKeysWithValues: second.slots.map { ($0.node, $0.spent) }) == ["a": 5, "b": 4])
        // A duplicate merge changes nothing.
        map.merge([key: CounterMap.Entry(spent: GCounter(slots: ["b": 4]))])
        #expect(map.spentSlots(since: second.version).slots.isEmpty)
    }

    @Test func restoredPeerSlotsMergeAndOwnSlotsAdd() {
        let now = ms("2026-11-26T10:00:00Z")
        let rule = LimitRule(id: "daily", gateway: "default", measure: .requests, limit: 100, window: .fixed(lengthMs: 3_600_000))
        var engine = LimitsEngine(node: "a", rules: [rule])
        let bucket = rule.window.bucket(at: now)
        let k = CounterMap.Key(rule: "daily", scope: "", bucket: bucket)
        let own = engine.restoreIfCurrent(k, slotNode: "a", spent: 3, now: now)
        let peer = engine.restoreIfCurrent(k, slotNode: "b", spent: 4, now: now)
        #expect(own && peer)
        #expect(engine.counters.entry(k)?.spent.slots == ["a": 3, "b": 4])
        #expect(engine.figures(rule: rule, scope: "", now: now).spent == 7)
    }
}

@Suite struct CounterTurnoverTests {
    /// Counters of passed buckets go: a per-user sliding limit over an hour of simulated traffic
    /// (each request a new user, so nearly every request makes a counter) keeps only the window's.
    @Test(.onOwnThread) func countersOfPassedBucketsAreDropped() {
        let rule = LimitRule(id: "per-user", gateway: "default", scope: [.split(.metadata("user"))], measure: .requests, limit: 5,
                             window: .sliding(lengthMs: 10_000, bucketMs: 100))
        var engine = LimitsEngine(node: "a", rules: [rule], reservationTimeoutMs: 3_000)
        var now: Int64 = 1_800_000_000_000
        var peak = 0
        for i in 0..<36_000 {
            var metadata = RequestMetadata()
            metadata.entries = [("user", .string("u\(i)"))]
            let request = LimitRequest(gateway: "default", provider: "openai", model: "m", metadata: metadata)
            if case .admit(let r) = engine.admit(request, estimate: LimitAmounts(), now: now) {
                engine.settle(r.id, actual: LimitAmounts())
            }
            now += 100
            if i % 10 == 0 { _ = engine.expire(now: now) }
            peak = max(peak, engine.counters.count)
        }
        #expect(engine.counters.count <= 110, "\(engine.counters.count) counters held")
        #expect(peak <= 120)
    }
}
