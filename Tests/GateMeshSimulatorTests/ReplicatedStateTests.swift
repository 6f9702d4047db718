import GateMeshCluster
import GateMeshSimulator
import GateMeshTestSupport
import Testing

/// Rules and keys replicated beside the membership, and the cache keys' owners, under the same
/// faults as the budget; and proof that the rules' check can fail.
@Suite(.onOwnThread) struct ReplicatedStateTests {
    static func options(nodes: Int, seconds: Int64, seed: UInt64, _ change: (inout SimulationOptions) -> Void = { _ in }) -> SimulationOptions {
        var o = ClusterSimulatorTests.options(nodes: nodes, seconds: seconds, seed: seed) {
            BudgetSimulationTests.acrossRegions(&$0)
            var load = RuleLoad()
            load.writesPerSecond = 10
            $0.rules = load
        }
        change(&o)
        return o
    }

    /// Across regions with loss: every write reaches every node, and the cache keys never move
    /// though members are suspected (the runs are chosen to have false suspicions: 5 nodes, with
    /// membership on links of its own, had none in 12 seeds at 5 % loss, so they run at 10 %).
    @Test(arguments: [5, 50])
    func rulesAgreeAndCacheKeysStayPutThroughSuspicions(nodes: Int) throws {
        var suspicions = 0
        for seed in UInt64(1)...3 {
            let r = ClusterSimulator.run(Self.options(nodes: nodes, seconds: 90, seed: seed) { $0.loss = nodes == 5 ? 0.1 : 0.05 })
            #expect(r.violations.isEmpty, "\(nodes) nodes, seed \(seed): \(r.violations)")
            let rules = try #require(r.rules)
            #expect(rules.writes > 500 && rules.lostWrites == 0)
            #expect(r.cacheOwnership.movesAfterConvergence == 0 && r.cacheOwnership.ownersAgreeAtEnd == true)
            suspicions += r.falseSuspicions
        }
        #expect(suspicions > 0, "no run had a false suspicion: the cache check proved nothing")
    }

    /// Writes on both sides of a cut (halves, an isolated seed, a bridge), and on nodes killed and
    /// started again (their records are in their store): all agree after, none lost.
    @Test func rulesAgreeAfterPartitionsAndRestarts() {
        for shape in PartitionShape.allCases {
            let r = ClusterSimulator.run(Self.options(nodes: 7, seconds: 90, seed: 6) {
                $0.partition = 20_000...45_000
                $0.partitionShape = shape
            })
            #expect(r.violations.isEmpty, "\(shape): \(r.violations)")
        }
        let r = ClusterSimulator.run(Self.options(nodes: 7, seconds: 90, seed: 7) {
            $0.kill = (2, 20_000)
            $0.restartAfterMs = 10_000
        })
        #expect(r.violations.isEmpty, "kill and restart: \(r.violations)")
        // Keys moved with the kill, and back with the restart; the nodes agree on them after.
        #expect(r.cacheOwnership.movesAfterConvergence > 0 && r.cacheOwnership.ownersAgreeAtEnd == true)
    }

    /// The check can fail: with rule frames dropped instead of merged, the nodes never agree
    /// (digests keep differing; only each write's own node holds it).
    @Test func aBrokenMergeOfRulesIsCaught() {
        let r = ClusterSimulator.run(Self.options(nodes: 5, seconds: 60, seed: 1) { $0.brokenMerge = true })
        #expect(r.violations.contains("the nodes' rules did not agree after the writes stopped"), "\(r.violations)")
    }
}
