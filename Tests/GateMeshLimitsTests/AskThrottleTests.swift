@testable import GateMeshLimits
import Testing

@Suite struct AskThrottleTests {
    func need(_ scope: String, _ shortfall: Int64 = 1) -> LimitsEngine.RightsNeed {
        .init(key: .init(rule: "r", scope: scope, bucket: 1), owner: "b", shortfall: shortfall, need: shortfall)
    }

    /// A hundred requests waiting on one counter send one ask every 100 ms; another counter's ask
    /// is not held back by it.
    @Test func oneAskPerCounterPerInterval() {
        var t = AskThrottle()
        var sent = 0
        for now in stride(from: Int64(0), to: 1_000, by: 5) {
            for _ in 0..<100 { sent += t.due([need("a")], now: now).count }
        }
        #expect(sent == 10)
        // The last ask for "a" went at 900.
        #expect(t.due([need("a"), need("b")], now: 950).map(\.key.scope) == ["b"])
        #expect(t.due([need("a")], now: 1_000).count == 1)
        // A clock that stepped back does not silence the counter.
        #expect(t.due([need("a")], now: 500).count == 1)
    }
}
