import ArgumentParser
import GateMeshCluster
import GateMeshConfig
import GateMeshCore
import GateMeshSimulator

/// `gatemesh simulate`: runs the cluster simulator and prints its figures.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulate a cluster's membership, and traffic against a budget, in virtual time (deterministic: the seed reproduces a run).",
        discussion: """
            Prints when the members first all saw each other alive, false suspicions and deaths, how long \
            survivors took to see killed nodes dead, agreement after a partition heals, and the messages and \
            bytes each node sent per second. With --budget, every node also admits requests against one budget \
            (engines, rights, replication, journal and restart as the nodes run them) and it prints what the \
            provider served against the limit, the mode's overshoot bound, spend lost, agreement after traffic \
            stops and reservations left. Exits 1 when a property fails (a false death without a partition, no \
            convergence, a killed node never seen dead, no agreement after the heal; overshoot past the bound, \
            spend lost, no agreement on the spend, reservations left).
            """)

    @Option(help: "How many nodes.") var nodes: Int = 5
    @Option(help: "Virtual time to run, e.g. 60s or 10m.") var duration: String = "60s"
    @Option(help: "The seed of the run (the same seed gives the same run).") var seed: UInt64 = 1
    @Option(help: "One-way delay on every link, e.g. 150ms.") var delay: String = "1ms"
    @Option(help: "Up to this much more delay per message, at random.") var jitter: String = "0ms"
    @Option(help: "The chance that a message is lost, 0 to 1.") var loss: Double = 0
    @Option(help: "Membership timings: lan or wan.") var profile: String = "lan"
    @Option(help: "Cut the nodes apart from one time to another, e.g. 20s-40s.") var partition: String?
    @Option(help: "Who the partition cuts: halves (the first half from the second), isolate (node 0 from the rest) or bridge (two groups from each other, node 0 reaching both).")
    var partitionShape: String = "halves"
    @Flag(help: "The partition cuts one direction only: the first half's (or the isolated node's) messages to the rest are lost.") var oneWay = false
    @Option(help: "Step node N's wall clock at a time by an amount, e.g. 2@30s+5s or 2@30s-5s (budgets only).") var clockStep: String?
    @Option(help: "Stop the last N nodes at a time, e.g. 2@30s.") var kill: String?
    @Option(help: "Start the killed nodes again this long after, with what their journal and store hold, e.g. 10s.") var restart: String?
    @Option(help: "Send traffic against a budget in this mode: soft, bounded or strict.") var budget: String?
    @Option(help: "The budget of each scope, in dollars.") var budgetLimit: Double = 1
    @Option(help: "Requests a second over the whole cluster.") var rps: Double = 200
    @Option(help: "How many scope values (users) the requests spread over.") var scopes: Int = 1
    @Option(help: "Each request's estimate in dollars (it costs between half of it and all of it).") var cost: Double = 0.002
    @Option(help: "Each node's clock is off by up to this much either way, e.g. 300ms.") var skew: String = "0ms"
    @Option(help: "Admin changes to rules and keys a second over the cluster, replicated as the nodes do (0: none; they stop 20 s before the end).")
    var ruleWrites: Double = 0
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
        o.oneWay = oneWay
        if oneWay && o.partition == nil { throw ValidationError("--one-way needs --partition") }
        guard let shape = PartitionShape(rawValue: partitionShape) else {
            throw ValidationError("--partition-shape must be halves, isolate or bridge, got '\(partitionShape)'")
        }
        if shape != .halves && o.partition == nil { throw ValidationError("--partition-shape needs --partition") }
        if shape == .bridge && oneWay { throw ValidationError("--one-way cuts halves or an isolated node, not a bridge") }
        if shape == .bridge && nodes < 3 { throw ValidationError("--partition-shape bridge needs at least 3 nodes") }
        o.partitionShape = shape
        if let clockStep {
            let at = clockStep.split(separator: "@").map(String.init)
            let sign: Int64 = at.count == 2 && at[1].contains("-") ? -1 : 1
            let rest = at.count == 2 ? at[1].split(whereSeparator: { $0 == "+" || $0 == "-" }).map(String.init) : []
            guard at.count == 2, let n = Int(at[0]), (0..<nodes).contains(n), rest.count == 2 else {
                throw ValidationError("--clock-step is NODE@TIME+STEP or NODE@TIME-STEP, e.g. 2@30s+5s")
            }
            o.clockStep = (n, try Self.ms(rest[0], "--clock-step"), sign * (try Self.ms(rest[1], "--clock-step")))
        }
        if let restart {
            guard o.kill != nil else { throw ValidationError("--restart needs --kill") }
            o.restartAfterMs = try Self.ms(restart, "--restart")
        }
        if let budget {
            guard let mode = LimitRule.Enforcement(rawValue: budget) else { throw ValidationError("--budget must be soft, bounded or strict") }
            guard budgetLimit > 0, cost > 0, rps > 0, (1...1_000_000).contains(scopes) else {
                throw ValidationError("--budget-limit, --cost and --rps must be positive, --scopes 1 to 1000000")
            }
            var load = BudgetLoad()
            load.mode = mode
            load.limit = Int64((budgetLimit * 1e9).rounded())
            load.cost = max(2, Int64((cost * 1e9).rounded()))
            load.requestsPerSecond = rps
            load.scopes = scopes
            load.skewMs = try Self.ms(skew, "--skew")
            o.budget = load
        }
        if ruleWrites != 0 {
            guard ruleWrites > 0, ruleWrites <= 10_000 else { throw ValidationError("--rule-writes must be 0 to 10000") }
            guard o.durationMs > 20_000 else { throw ValidationError("--rule-writes needs a --duration over 20s (writes stop 20 s before the end)") }
            var load = RuleLoad()
            load.writesPerSecond = ruleWrites
            o.rules = load
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
                "bytes_per_node_per_second":\(String(format: "%.0f", r.bytesPerNodePerSecond)),\(budgetJSON(r.budget))\(rulesJSON(r.rules))\
                "cache_owner_moves_after_convergence":\(r.cacheOwnership.movesAfterConvergence),\
                "cache_owners_agree_at_end":\(r.cacheOwnership.ownersAgreeAtEnd.map { "\($0)" } ?? "null"),\
                "violations":[\(r.violations.map { "\"\($0)\"" }.joined(separator: ","))]}
                """)
        } else {
            print("simulated \(o.nodes) nodes for \(o.durationMs / 1000) s, seed \(o.seed), \(profile), delay \(o.delayMs) ms + up to \(o.jitterMs) ms, loss \(o.loss)")
            print("  converged at:              \(r.convergedAtMs.map { "\($0) ms" } ?? "never")")
            print("  false suspicions / deaths: \(r.falseSuspicions) (reaching \(r.falseSuspicionViews) views) / \(r.falseDeaths)")
            if o.kill != nil { print("  killed nodes seen dead:    \(r.killedSeenDeadAfterMs.map { "after \($0) ms" } ?? "not by every survivor")") }
            if o.partition != nil { print("  agreed after the heal:     \(r.agreedAfterHealMs.map { "after \($0) ms" } ?? "no")") }
            print("  per node per second:       \(String(format: "%.1f", r.messagesPerNodePerSecond)) messages, \(String(format: "%.0f", r.bytesPerNodePerSecond)) bytes (\(r.lost) of \(r.messages) messages lost)")
            if let b = r.budget, let load = o.budget {
                let limit = Double(load.limit) / 1e9
                print("  budget (\(load.mode), $\(limit) × \(load.scopes) scopes, \(load.requestsPerSecond) req/s):")
                print("    admitted / refused / waited for rights: \(b.admitted) / \(b.refused) / \(b.waited)")
                print("    served $\(dollars(b.served)), overshoot $\(dollars(max(0, b.overshoot))) (bound $\(dollars(b.overshootBound)))")
                print("    spend agreed:            \(b.agreedAfterStopMs.map { "\($0) ms after traffic stopped" } ?? "no")")
                print("    lost / unheard from dead: $\(dollars(b.lostSpend)) / $\(dollars(b.unheardFromDead)); reserved at the end: \(b.reservedAtEnd)")
                print("    counter frames:          \(String(format: "%.1f", Double(b.counterFrames) / Double(o.nodes) / (Double(o.durationMs) / 1000))) a node a second, \(String(format: "%.0f", Double(b.counterBytes) / Double(o.nodes) / (Double(o.durationMs) / 1000))) bytes")
            }
            if let rules = r.rules {
                print("  rules and keys:            \(rules.writes) writes, \(rules.lostWrites) lost, agreed \(rules.agreedAfterStopMs.map { "\($0) ms after the writes stopped" } ?? "never"); \(String(format: "%.0f", Double(rules.bytes) / Double(o.nodes) / (Double(o.durationMs) / 1000))) bytes a node a second")
            }
            print("  cache keys:                \(r.cacheOwnership.movesAfterConvergence) moves after convergence (\(ClusterSimulator.cacheSampleKeys) sample keys per node); owners agree at the end: \(r.cacheOwnership.ownersAgreeAtEnd.map { $0 ? "yes" : "NO" } ?? "members did not agree")")
            print(r.violations.isEmpty ? "  properties: hold" : "  properties FAILED: \(r.violations.joined(separator: "; ")) (reproduce with --seed \(o.seed))")
        }
        if !r.violations.isEmpty { throw ExitCode(1) }
    }

    func dollars(_ nanos: Int64) -> String { String(format: "%.6f", Double(nanos) / 1e9) }

    func budgetJSON(_ b: BudgetReport?) -> String {
        guard let b, let load = budget else { return "" }
        func opt(_ v: Int64?) -> String { v.map(String.init) ?? "null" }
        return """
            "budget":{"mode":"\(load)","admitted":\(b.admitted),"refused":\(b.refused),"waited":\(b.waited),"served_nanos":\(b.served),\
            "overshoot_nanos":\(b.overshoot),"overshoot_bound_nanos":\(b.overshootBound),"lost_nanos":\(b.lostSpend),\
            "unheard_from_dead_nanos":\(b.unheardFromDead),"agreed_after_stop_ms":\(opt(b.agreedAfterStopMs)),"reserved_at_end":\(b.reservedAtEnd),\
            "counter_frames":\(b.counterFrames),"counter_bytes":\(b.counterBytes)},
            """
    }

    func rulesJSON(_ r: RulesReport?) -> String {
        guard let r else { return "" }
        return """
            "rules":{"writes":\(r.writes),"lost_writes":\(r.lostWrites),"agreed_after_stop_ms":\(r.agreedAfterStopMs.map(String.init) ?? "null"),\
            "frames":\(r.frames),"bytes":\(r.bytes)},
            """
    }

    static func ms(_ text: String, _ flag: String) throws -> Int64 {
        guard let v = Units.durationMs(text) else { throw ValidationError("\(flag): expected a duration such as 150ms or 60s, got '\(text)'") }
        return Int64(v)
    }
}
