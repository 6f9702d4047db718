import GateMeshCluster
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
          + "\(Int(r.bytesPerNodePerSecond)) bytes / node / s, wall \(wall): "
          + (r.violations.isEmpty ? "hold" : "FAILED: \(r.violations.joined(separator: "; "))"))
    if !r.violations.isEmpty { failed = true }
}
exit(failed ? 1 : 0)
