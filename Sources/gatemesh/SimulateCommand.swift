import ArgumentParser
import GateMeshCluster
import GateMeshConfig
import GateMeshSimulator

/// `gatemesh simulate`: runs the cluster simulator and prints its figures.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate a cluster's membership in virtual time (deterministic: the seed reproduces a run).",
        discussion: """
            Prints when the members first all saw each other alive, false suspicions and deaths, how long \
            survivors took to see killed nodes dead, agreement after a partition heals, and the messages and \
            bytes each node sent per second. Exits 1 when a property fails (a false death without a partition, \
            no convergence, a killed node never seen dead, no agreement after the heal).
            """)

    @Option(help: "How many nodes.") var nodes: Int = 5
    @Option(help: "Virtual time to run, e.g. 60s or 10m.") var duration: String = "60s"
    @Option(help: "The seed of the run (the same seed gives the same run).") var seed: UInt64 = 1
    @Option(help: "One-way delay on every link, e.g. 150ms.") var delay: String = "1ms"
    @Option(help: "Up to this much more delay per message, at random.") var jitter: String = "0ms"
    @Option(help: "The chance that a message is lost, 0 to 1.") var loss: Double = 0
    @Option(help: "Membership timings: lan or wan.") var profile: String = "lan"
    @Option(help: "Cut the nodes into two halves from one time to another, e.g. 20s-40s.") var partition: String?
    @Option(help: "Stop the last N nodes at a time, e.g. 2@30s.") var kill: String?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        var o = SimulationOptions()
        guard (1...100_000).contains(nodes) else { throw ValidationError("--nodes must be 1 to 100000") }
        o.nodes = nodes
        o.seed = seed
        o.durationMs = try Self.ms(duration, "--duration")
        o.delayMs = try Self.ms(delay, "--delay")
        o.jitterMs = try Self.ms(jitter, "--jitter")
        guard (0...1).contains(loss) else { throw ValidationError("--loss must be between 0 and 1") }
        o.loss = loss
        guard let config = Membership.Config.profile(profile) else { throw ValidationError("--profile must be lan or wan") }
        o.config = config
        if let partition {
            let parts = partition.split(separator: "-").map(String.init)
            guard parts.count == 2 else { throw ValidationError("--partition is FROM-TO, e.g. 20s-40s") }
            let (a, b) = (try Self.ms(parts[0], "--partition"), try Self.ms(parts[1], "--partition"))
            guard a < b else { throw ValidationError("--partition must end after it starts") }
            o.partition = a...b
        }
        if let kill {
            let parts = kill.split(separator: "@").map(String.init)
            guard parts.count == 2, let n = Int(parts[0]), n > 0, n < nodes else {
                throw ValidationError("--kill is N@TIME with N fewer than the nodes, e.g. 2@30s")
            }
            o.kill = (n, try Self.ms(parts[1], "--kill"))
        }
        let r = ClusterSimulator.run(o)
        func opt(_ v: Int64?) -> String { v.map(String.init) ?? "null" }
        if json {
            print("""
                {"nodes":\(o.nodes),"duration_ms":\(o.durationMs),"seed":\(o.seed),"delay_ms":\(o.delayMs),"jitter_ms":\(o.jitterMs),\
                "loss":\(o.loss),"profile":"\(profile)","converged_at_ms":\(opt(r.convergedAtMs)),"false_suspicions":\(r.falseSuspicions),"false_suspicion_views":\(r.falseSuspicionViews),\
                "false_deaths":\(r.falseDeaths),"killed_seen_dead_after_ms":\(opt(r.killedSeenDeadAfterMs)),\
                "agreed_after_heal_ms":\(opt(r.agreedAfterHealMs)),"messages":\(r.messages),"lost":\(r.lost),"bytes":\(r.bytes),\
                "messages_per_node_per_second":\(String(format: "%.2f", r.messagesPerNodePerSecond)),\
                "bytes_per_node_per_second":\(String(format: "%.0f", r.bytesPerNodePerSecond)),\
                "violations":[\(r.violations.map { "\"\($0)\"" }.joined(separator: ","))]}
                """)
        } else {
            print("simulated \(o.nodes) nodes for \(o.durationMs / 1000) s, seed \(o.seed), \(profile), delay \(o.delayMs) ms + up to \(o.jitterMs) ms, loss \(o.loss)")
            print("  converged at:              \(r.convergedAtMs.map { "\($0) ms" } ?? "never")")
            print("  false suspicions / deaths: \(r.falseSuspicions) (reaching \(r.falseSuspicionViews) views) / \(r.falseDeaths)")
            if o.kill != nil { print("  killed nodes seen dead:    \(r.killedSeenDeadAfterMs.map { "after \($0) ms" } ?? "not by every survivor")") }
            if o.partition != nil { print("  agreed after the heal:     \(r.agreedAfterHealMs.map { "after \($0) ms" } ?? "no")") }
            print("  per node per second:       \(String(format: "%.1f", r.messagesPerNodePerSecond)) messages, \(String(format: "%.0f", r.bytesPerNodePerSecond)) bytes (\(r.lost) of \(r.messages) messages lost)")
            print(r.violations.isEmpty ? "  properties: hold" : "  properties FAILED: \(r.violations.joined(separator: "; ")) (reproduce with --seed \(o.seed))")
        }
        if !r.violations.isEmpty { throw ExitCode(1) }
    }

    static func ms(_ text: String, _ flag: String) throws -> Int64 {
        guard let v = Units.durationMs(text) else { throw ValidationError("\(flag): expected a duration such as 150ms or 60s, got '\(text)'") }
        return Int64(v)
    }
}
