import GateMeshCluster
import GateMeshSimulator
import GateMeshTestSupport
import Testing

/// The simulator's properties over many seeds, and proof that it can fail.
@Suite(.onOwnThread) struct ClusterSimulatorTests {
    static func options(nodes: Int, seconds: Int64, seed: UInt64, _ change: (inout SimulationOptions) -> Void = { _ in }) -> SimulationOptions {
        var o = SimulationOptions()
        o.nodes = nodes
        o.durationMs = seconds * 1000
        o.seed = seed
        change(&o)
        return o
    }

    @Test(arguments: [3, 5, 50])
    func propertiesHoldOverSeedsWithWANLinksAndLoss(nodes: Int) {
        for seed in UInt64(1)...UInt64(nodes == 50 ? 2 : 6) {
            let r = ClusterSimulator.run(Self.options(nodes: nodes, seconds: 120, seed: seed) {
                $0.config = .wan
                $0.delayMs = 150
                $0.jitterMs = 20
                $0.loss = 0.05
            })
            #expect(r.violations.isEmpty, "\(nodes) nodes, seed \(seed): \(r.violations)")
            #expect(r.falseDeaths == 0)
        }
    }

    @Test func killedNodesAreSeenDeadAndAPartitionHeals() {
        for seed in UInt64(1)...3 {
            let r = ClusterSimulator.run(Self.options(nodes: 10, seconds: 90, seed: seed) {
                $0.kill = (2, 20_000)
            })
            #expect(r.violations.isEmpty, "seed \(seed): \(r.violations)")
            #expect((r.killedSeenDeadAfterMs ?? .max) <= 20_000, "seed \(seed): \(String(describing: r.killedSeenDeadAfterMs))")
            let p = ClusterSimulator.run(Self.options(nodes: 10, seconds: 90, seed: seed) { $0.partition = 20_000...40_000 })
            #expect(p.violations.isEmpty, "seed \(seed): \(p.violations)")
            #expect((p.agreedAfterHealMs ?? .max) <= 20_000, "seed \(seed): \(String(describing: p.agreedAfterHealMs))")
        }
    }

    /// Every shape of partition, both ways and one way: the members agree again after the heal.
    /// (A bridge node keeps the two groups alive to each other through indirect probes; the
    /// isolated node is a seed.)
    @Test(arguments: PartitionShape.allCases)
    func everyShapeOfPartitionHeals(shape: PartitionShape) {
        for oneWay in shape == .bridge ? [false] : [false, true] {
            let r = ClusterSimulator.run(Self.options(nodes: 10, seconds: 90, seed: 4) {
                $0.partition = 20_000...40_000
                $0.partitionShape = shape
                $0.oneWay = oneWay
            })
            #expect(r.violations.isEmpty, "\(shape), one way \(oneWay): \(r.violations)")
            #expect((r.agreedAfterHealMs ?? .max) <= 20_000, "\(shape), one way \(oneWay): \(String(describing: r.agreedAfterHealMs))")
        }
    }

    /// The same seed, the same run.
    @Test func aSeedReproducesItsRun() {
        let o = Self.options(nodes: 20, seconds: 30, seed: 42) { $0.loss = 0.1; $0.jitterMs = 30 }
        let a = ClusterSimulator.run(o), b = ClusterSimulator.run(o)
        #expect(a.messages == b.messages && a.bytes == b.bytes && a.falseSuspicions == b.falseSuspicions && a.convergedAtMs == b.convergedAtMs)
    }

    /// The simulator can fail: with suspicion disabled (a suspect is dead at once) and lossy links,
    /// live members are declared dead and the property check says so.
    @Test func aDisabledSuspicionIsCaught() {
        let r = ClusterSimulator.run(Self.options(nodes: 5, seconds: 120, seed: 1) {
            $0.loss = 0.3
            $0.config.suspicionMinMs = 0
            $0.config.suspicionMultiplier = 0
            $0.config.suspicionMaxMultiplier = 0
        })
        #expect(r.falseDeaths > 0)
        #expect(r.violations.contains { $0.contains("false deaths") })
    }

    /// 200 nodes joining through three seeds know each other within 40 s, with no false death.
    /// (1,000 nodes: `MembershipTests.aThousandNodesConvergeFromThreeSeeds`, and `gatemesh simulate`
    /// in a release build, whose figures are in docs/benchmarks.md: a debug build takes minutes.)
    @Test func twoHundredNodesConverge() {
        let r = ClusterSimulator.run(Self.options(nodes: 200, seconds: 40, seed: 7) { $0.tickMs = 100 })
        #expect(r.convergedAtMs != nil, "\(r.violations)")
        #expect(r.falseDeaths == 0 && r.falseSuspicions == 0)
    }

    /// The byte counts the simulator reports are the codec's: `size(of:)` equals `encode(_:).count`.
    @Test func theCountedSizeIsTheEncodedSize() {
        let a = Membership.Info(name: "node-1", address: "10.0.0.1:7946", region: "eu", id: "0123", configDigest: String(repeating: "f", count: 16))
        let b = Membership.Info(name: String(repeating: "n", count: 200), address: "[::1]:7946")
        let ups = [Membership.Update(info: b, state: .suspect, incarnation: 1 << 40, accuser: "node-1", signature: Array(repeating: 7, count: 200)),
                   .init(info: a, state: .alive, incarnation: 0)]
        for message in [Membership.Message.ping(seq: 0, target: ""), .ping(seq: 300, target: "b"), .ack(seq: .max, of: "node-1"), .nack(seq: 127),
                        .pingRequest(seq: 128, target: b), .sync(members: ups, reply: true), .sync(members: [], reply: false),
                        .recordsAsk(names: ["node-1", String(repeating: "n", count: 200)])] {
            let e = Membership.Envelope(from: a, incarnation: 1_764_150_000, signature: Array(repeating: 9, count: 72), message: message, updates: ups)
            #expect(MembershipCodec.size(of: e) == MembershipCodec.encode(e).count, "\(message)")
        }
    }
}
