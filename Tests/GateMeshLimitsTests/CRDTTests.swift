@testable import GateMeshLimits
import Testing

/// A small deterministic generator, so the property tests are repeatable.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}

@Suite struct CRDTTests {
    static let nodes = ["a", "b", "c", "d"]

    func counter(_ rng: inout SplitMix) -> GCounter {
        var c = GCounter()
        for n in Self.nodes where Bool.random(using: &rng) { c.increment(node: n, by: Int64.random(in: 0...1_000, using: &rng)) }
        return c
    }

    func slots(_ rng: inout SplitMix) -> VersionedSlots {
        var s = VersionedSlots()
        for n in Self.nodes where Bool.random(using: &rng) {
            s.set(node: n, value: Int64.random(in: 0...1_000, using: &rng), version: UInt64.random(in: 1...20, using: &rng))
        }
        return s
    }

    @Test(arguments: 0..<50)
    func gCounterMergeIsCommutativeAssociativeIdempotent(_ seed: UInt64) {
        var rng = SplitMix(state: seed)
        let (x, y, z) = (counter(&rng), counter(&rng), counter(&rng))
        #expect(x.merged(y) == y.merged(x))
        #expect(x.merged(y).merged(z) == x.merged(y.merged(z)))
        #expect(x.merged(x) == x)
        #expect(x.merged(y).value >= max(x.value, y.value))
    }

    @Test(arguments: 0..<50)
    func versionedSlotsMergeIsCommutativeAssociativeIdempotent(_ seed: UInt64) {
        var rng = SplitMix(state: seed)
        let (x, y, z) = (slots(&rng), slots(&rng), slots(&rng))
        func m(_ a: VersionedSlots, _ b: VersionedSlots) -> VersionedSlots { var c = a; c.merge(b); return c }
        // Equal versions from different writers cannot happen (one writer per slot); skip such draws.
        let clash = Self.nodes.contains { n in
            let vs = [x, y, z].compactMap { $0.slots[n] }
            return Set(vs.map(\.version)).count < vs.count && Set(vs).count > 1
        }
        guard !clash else { return }
        #expect(m(x, y) == m(y, x))
        #expect(m(m(x, y), z) == m(x, m(y, z)))
        #expect(m(x, x) == x)
    }

    @Test(arguments: 0..<20)
    func replicasConvergeWhateverOrderAndDuplicatesDeltasArriveIn(_ seed: UInt64) {
        var rng = SplitMix(state: seed)
        var replicas = Self.nodes.map { CounterMap(node: $0) }
        var deltas: [[CounterMap.Key: CounterMap.Entry]] = []
        for _ in 0..<40 {
            let i = Int.random(in: 0..<replicas.count, using: &rng)
            let key = CounterMap.Key(rule: "r", scope: ["x", "y"].randomElement(using: &rng)!, bucket: Int64.random(in: 0...2, using: &rng))
            let before = replicas[i].version
            if Bool.random(using: &rng) {
                replicas[i].spend(key, Int64.random(in: 1...100, using: &rng))
            } else {
                replicas[i].setReserved(key, Int64.random(in: 0...100, using: &rng))
            }
            deltas.append(replicas[i].delta(since: before))
        }
        // Every replica receives every delta, shuffled, some twice.
        for i in replicas.indices {
            var inbox = deltas + deltas.prefix(10)
            inbox.shuffle(using: &rng)
            for d in inbox { replicas[i].merge(d) }
        }
        for r in replicas.dropFirst() { #expect(r.entries == replicas[0].entries) }
    }
}
