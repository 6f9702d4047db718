import GateMeshCluster
import GateMeshCore
import GateMeshLimits
import GateMeshSimulator

#if canImport(Glibc)
import Glibc
#endif

// The simulator's properties at 1,000 nodes, for CI: `scripts/test` builds this alone in release
// (the pure targets only, a minute or two) and runs it, since a debug build of the simulator takes
// many minutes for one 1,000-node run. Each run prints its figures; the exit status is 1 when a
// property fails in any of them. `gatemesh simulate` runs the same simulator with every option.

struct Case {
    var name: String
    var options: SimulationOptions
}

func options(seed: UInt64, seconds: Int64, _ change: (inout SimulationOptions) -> Void = { _ in }) -> SimulationOptions {
    var o = SimulationOptions()
    o.nodes = 1_000
    o.durationMs = seconds * 1_000
    o.seed = seed
    change(&o)
    return o
}

/// A budget of $1 per day under `mode`, 20 requests a second over the cluster, each estimated
/// at $0.02 (costing $0.01 to $0.02): spent within seconds, so most of the run is refusals,
/// rights and replication at 1,000 nodes. (At the simulator's default 200 a second a 1,000-node
/// run takes many minutes: every request's spend reaches every node. A `strict` budget takes
/// 11 minutes: while the cluster forms, every node sends its members' digest to every other.)
func budget(_ mode: LimitRule.Enforcement) -> (inout SimulationOptions) -> Void {
    { o in
        var load = BudgetLoad()
        load.mode = mode
        load.requestsPerSecond = 20
        load.limit = 1_000_000_000
        load.cost = 20_000_000
        o.budget = load
    }
}

func acrossRegions(_ o: inout SimulationOptions) {
    o.config = .wan
    o.delayMs = 150
    o.jitterMs = 20
    o.loss = 0.05
}

let cases: [Case] = [
    Case(name: "lan, seed 1", options: options(seed: 1, seconds: 60)),
    // Killed once all have converged (51 to 61 s after all start at once from three seeds: a few
    // rounds of push-pull, one more for an unlucky node; seed 2 takes 61 s).
    Case(name: "lan, a node killed at 75 s, seed 2", options: options(seed: 2, seconds: 105) { $0.kill = (1, 75_000) }),
    Case(name: "150 ms ± 20 ms, 5 % loss, wan, seed 1", options: options(seed: 1, seconds: 240, acrossRegions)),
    Case(name: "lan, a bounded budget, seed 1", options: options(seed: 1, seconds: 90, budget(.bounded))),
]

var failed = false
for c in cases {
    let started = ContinuousClock.now
    let r = ClusterSimulator.run(c.options)
    let wall = ContinuousClock.now - started
    let converged = r.convergedAtMs.map { "\(Double($0) / 1_000) s" } ?? "never"
    let seenDead = r.killedSeenDeadAfterMs.map { "\(Double($0) / 1_000) s" } ?? "-"
    print("1,000 nodes, \(c.options.durationMs / 1_000) s, \(c.name): converged \(converged), false suspicions \(r.falseSuspicions), "
          + "false deaths \(r.falseDeaths), killed seen dead after \(seenDead), "
          + "\(Int(r.bytesPerNodePerSecond)) bytes / node / s, "
          + (r.budget.map { b in
              "budget: \(b.admitted) admitted, \(b.refused) refused, served $\(Double(b.served) / 1e9) of "
                  + "$\(Double(c.options.budget?.limit ?? 0) / 1e9), overshoot "
                  + "$\(Double(b.overshoot) / 1e9) (bound $\(Double(b.overshootBound) / 1e9)), spend lost $\(Double(b.lostSpend) / 1e9), "
                  + "reserved at the end \(b.reservedAtEnd), agreed \(b.agreedAfterStopMs.map { "\($0) ms" } ?? "never") after traffic stopped, "
          } ?? "")
          + "wall \(wall): "
          + (r.violations.isEmpty ? "hold" : "FAILED: \(r.violations.joined(separator: "; "))"))
    if !r.violations.isEmpty { failed = true }
}
exit(failed ? 1 : 0)
