import Foundation
import GateMeshCore
import GateMeshLimits

/// `gatemesh-limits-bench request-path [seconds]` (issue 20, point 2): what the limits cost one
/// request of the proxy benchmark, on one thread and without the lock: the engine's decision under
/// `bench/proxy.py`'s ten rules (five `bounded` daily budgets, five soft per-minute rate limits, none
/// scoped), the journal record of the reservation and its rights, and the settlement. A lone node
/// owns every counter, so rights are drawn locally, as on the benchmark's node.
enum RequestPath {
    static func run(seconds: Double) {
        guard let day = Window.calendarWindow(.day, timeZone: "UTC") else { fatalError("no calendar window") }
        var rules: [LimitRule] = []
        for i in 0..<5 {
            rules.append(LimitRule(id: "budget-\(i)", gateway: "default", kind: .budget, measure: .usd, limit: 1_000_000 * 1_000_000_000,
                                   window: day, enforcement: .bounded))
        }
        for i in 0..<5 {
            rules.append(LimitRule(id: "rate-\(i)", gateway: "default", kind: .rateLimit, measure: .requests, limit: 100_000_000,
                                   window: .fixed(lengthMs: 60_000)))
        }
        var engine = LimitsEngine(node: "a", rules: rules, counters: CounterMap(node: "a", startVersion: 1 << 44, epoch: 1))
        let request = LimitRequest(gateway: "default", provider: "openai", model: "gpt-4o-mini", metadata: RequestMetadata())
        let estimate = LimitAmounts(costNanos: 9_750, requests: 1, inputTokens: 15, outputTokens: 16)
        let actual = LimitAmounts(costNanos: 6_150, requests: 1, inputTokens: 15, outputTokens: 9)
        var journalBytes = 0
        func once(_ now: Int64) {
            guard case .admit(let reservation) = engine.admit(request, estimate: estimate, now: now) else { fatalError("refused") }
            // As `LimitsService.admit`: each held amount with its run's own rights figures, journaled.
            let held = engine.journalHeld(reservation)
            let rights = engine.withCounters { $0.takeRightsChanges() }
            journalBytes &+= JournalCodec.frame(.open(ReservationRef(epoch: 1, id: reservation.id), held)).count
            for change in rights { journalBytes &+= JournalCodec.frame(.rights(change.key, change.rights)).count }
            _ = engine.settle(reservation.id, actual: actual)
        }
        // Warm up: the counters' entries exist and the rights are drawn, as on a node under load.
        let start = WallClock.nowMs()
        for _ in 0..<10_000 { once(start) }
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        var count = 0
        let begun = ContinuousClock.now
        while ContinuousClock.now < end {
            let now = WallClock.nowMs()
            for _ in 0..<1_000 { once(now) }
            count += 1_000
        }
        let elapsed = ContinuousClock.now - begun
        let ns = (Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9) / Double(count)
        print(String(format: "request path, 10 rules: %d admissions in %.1f s, %.2f µs per admit + journal + settle (journal bytes %d)",
                     count, seconds, ns / 1000, journalBytes / max(1, count + 10_000)))
    }
}
