/// At most one ask for rights per counter every `intervalMs` from a node, however many of its
/// requests wait for that counter: each waiting request asks again every 100 ms, and a node with
/// a hundred of them waiting (a busy counter near its limit) would otherwise send the owner a
/// hundred asks, each behind the node's figures, every 100 ms. The owner's grant is sized by the
/// node's demand over the last second, which the one ask carries, not by the count of asks. Pure.
public struct AskThrottle: Sendable {
    public var intervalMs: Int64
    private var last: [CounterMap.Key: Int64] = [:]

    public init(intervalMs: Int64 = 100) { self.intervalMs = intervalMs }

    /// The needs to send now: those whose counter was not asked for within the interval (each
    /// of them counts as asked now).
    public mutating func due(_ needs: [LimitsEngine.RightsNeed], now: Int64) -> [LimitsEngine.RightsNeed] {
        if last.count > 4_096 { last = last.filter { now - $0.value < intervalMs } }
        return needs.filter { need in
            if let at = last[need.key], now - at < intervalMs, now >= at { return false }
            last[need.key] = now
            return true
        }
    }
}
