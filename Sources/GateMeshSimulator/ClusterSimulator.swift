import GateMeshCluster
import GateMeshCore

/// A deterministic simulator of the cluster's membership: many `Membership` state machines driven
/// by one seeded scheduler in virtual time, over links with delay, jitter, loss and FIFO order
/// (head-of-line blocking: a message never overtakes an earlier one on its link), with a partition
/// into two halves and nodes killed at a time. Pure: no clock, no threads, no sockets; the same
/// options and seed give the same report, so a failing seed is reproduced from its number.
///
/// What it reports: when every node first held every other as live (convergence), suspicions and
/// deaths of nodes that were up and reachable from the observer (false ones), how long the
/// survivors took to see killed nodes dead, how long after a partition healed everyone agreed
/// again, and the messages and bytes (`MembershipCodec`) each node sent per second.
///
/// This first version drives membership only; replication, limits, rules and cache ownership
/// are to join it (issue 17).
public struct SimulationOptions: Sendable {
    public var nodes = 5
    public var durationMs: Int64 = 60_000
    public var seed: UInt64 = 1
    /// One-way delay on every link, plus up to `jitterMs` more at random.
    public var delayMs: Int64 = 1
    public var jitterMs: Int64 = 0
    /// The chance that any one message is lost.
    public var loss: Double = 0
    public var config = Membership.Config.lan
    /// Nodes `0..<nodes/2` and the rest cannot reach each other from `start` until `end`.
    public var partition: ClosedRange<Int64>?
    /// The last `count` nodes stop (as with SIGKILL) at `atMs`.
    public var kill: (count: Int, atMs: Int64)?
    /// How many of the first nodes are every node's seeds.
    public var seeds = 3
    /// How often each node's clock ticks.
    public var tickMs: Int64 = 50

    public init() {}
}

public struct SimulationReport: Sendable {
    public var options: SimulationOptions
    /// When every node first held every other node as live (nil: never within the run).
    public var convergedAtMs: Int64?
    /// Suspicions of a node that was up and could reach the observer: distinct (member,
    /// incarnation) suspicions raised, and the views they reached (each spreads to every node).
    public var falseSuspicions = 0
    public var falseSuspicionViews = 0
    /// Deaths, in some node's view, of a node that was up and could reach it.
    public var falseDeaths = 0
    /// The latest time, after the kill, at which a survivor saw the last killed node dead (nil:
    /// some survivor never did, or nothing was killed).
    public var killedSeenDeadAfterMs: Int64?
    /// How long after the partition healed until every node held every up node as live again.
    public var agreedAfterHealMs: Int64?
    public var messages = 0
    public var bytes = 0
    public var lost = 0

    public var messagesPerNodePerSecond: Double { Double(messages) / Double(options.nodes) / (Double(options.durationMs) / 1000) }
    public var bytesPerNodePerSecond: Double { Double(bytes) / Double(options.nodes) / (Double(options.durationMs) / 1000) }

    /// The properties every run must hold: no false death outside a partition, convergence, the
    /// dead seen dead, and agreement after a heal. Empty when all hold.
    public var violations: [String] {
        var out: [String] = []
        if options.partition == nil && falseDeaths > 0 { out.append("\(falseDeaths) false deaths") }
        if convergedAtMs == nil { out.append("the members never all saw each other alive") }
        if options.kill != nil && killedSeenDeadAfterMs == nil { out.append("a survivor never saw a killed node dead") }
        if options.partition != nil && agreedAfterHealMs == nil { out.append("the members did not agree again after the heal") }
        return out
    }
}

public enum ClusterSimulator {
    public static func run(_ o: SimulationOptions) -> SimulationReport {
        var sim = Run(o)
        return sim.go()
    }

    struct Event {
        var at: Int64
        var order: UInt64
        var to: Int
        var envelope: Membership.Envelope
    }

    struct Run {
        let o: SimulationOptions
        var nodes: [Membership] = []
        var up: [Bool]
        var index: [String: Int] = [:]
        var rng: SplitMix64
        /// Events by (time, send order): equal times keep their send order.
        var queue = MinHeap<Event> { a, b in a.at < b.at || (a.at == b.at && a.order < b.order) }
        var order: UInt64 = 0
        /// The time the last message on each link (from × n + to) is delivered: FIFO links.
        var linkClock: [Int: Int64] = [:]
        var now: Int64 = 0
        var report: SimulationReport
        var killedAt: Int64?
        var suspected: Set<String> = []

        init(_ o: SimulationOptions) {
            self.o = o
            up = Array(repeating: true, count: o.nodes)
            rng = SplitMix64(seed: o.seed)
            report = SimulationReport(options: o)
            let addresses = (0..<o.nodes).map { "10.\($0 / 65_536).\($0 / 256 % 256).\($0 % 256):7946" }
            let seeds = Array(addresses.prefix(max(1, o.seeds)))
            for i in 0..<o.nodes {
                nodes.append(Membership(me: .init(name: "n\(i)", address: addresses[i], region: "r\(i % 3)", id: "id\(i)"),
                                        seeds: seeds, config: o.config, seed: o.seed &+ UInt64(i)))
                index[addresses[i]] = i
            }
        }

        func side(_ i: Int) -> Int { i < o.nodes / 2 ? 0 : 1 }
        func cut(_ a: Int, _ b: Int, at t: Int64) -> Bool {
            guard let p = o.partition, p.contains(t) else { return false }
            return side(a) != side(b)
        }

        mutating func send(_ actions: [Membership.Action], from: Int) {
            for action in actions {
                switch action {
                case .changed(let m):
                    guard let x = index[m.info.address], x != from else { continue }
                    let reachable = up[x] && !cut(from, x, at: now)
                    if m.state == .suspect && reachable {
                        report.falseSuspicionViews += 1
                        if suspected.insert("\(m.info.name)@\(m.incarnation)").inserted { report.falseSuspicions += 1 }
                    }
                    if m.state == .dead && reachable { report.falseDeaths += 1 }
                case .duplicateID:
                    continue
                case .send(let address, let envelope):
                    guard let to = index[address] else { continue }
                    report.messages += 1
                    report.bytes += Frame.headerSize + MembershipCodec.size(of: envelope)
                    if o.loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < o.loss {
                        report.lost += 1
                        continue
                    }
                    let jitter = o.jitterMs > 0 ? Int64(rng.next() % UInt64(o.jitterMs + 1)) : 0
                    let link = from * o.nodes + to
                    let at = max(now + o.delayMs + jitter, linkClock[link] ?? 0)
                    linkClock[link] = at
                    order += 1
                    queue.push(Event(at: at, order: order, to: to, envelope: envelope))
                }
            }
        }

        /// Every up node holds as live (alive or suspect) exactly as many members as there are other
        /// up nodes it can reach (counts, not pairs: a check of 1,000 nodes costs 1,000 reads).
        func agreed() -> Bool {
            let partitioned = o.partition.map { $0.contains(now) } ?? false
            var upBySide = [0, 0]
            for i in nodes.indices where up[i] { upBySide[partitioned ? side(i) : 0] += 1 }
            for i in nodes.indices where up[i] {
                guard nodes[i].aliveCount == upBySide[partitioned ? side(i) : 0] - 1 else { return false }
            }
            return true
        }

        func killedSeenDead() -> Bool {
            for i in nodes.indices where up[i] {
                for j in nodes.indices where !up[j] {
                    let state = nodes[i].members["n\(j)"]?.state
                    guard state == .dead || state == nil else { return false }
                }
            }
            return true
        }

        mutating func go() -> SimulationReport {
            var nextCheck: Int64 = 0
            while now < o.durationMs {
                now += o.tickMs
                if let kill = o.kill, killedAt == nil, now >= kill.atMs {
                    killedAt = now
                    for i in max(0, o.nodes - kill.count)..<o.nodes { up[i] = false }
                }
                while let next = queue.first, next.at <= now, let event = queue.pop() {
                    guard up[event.to], let from = index[event.envelope.from.address], !cut(from, event.to, at: event.at) else { continue }
                    let actions = nodes[event.to].receive(event.envelope, now: event.at)
                    let saved = now
                    now = event.at
                    send(actions, from: event.to)
                    now = saved
                }
                for i in nodes.indices where up[i] {
                    send(nodes[i].tick(now: now), from: i)
                }
                // The properties that are states, once a second (they walk every pair).
                if now >= nextCheck {
                    nextCheck = now + 1000
                    if report.convergedAtMs == nil, killedAt == nil, o.partition.map({ now < $0.lowerBound }) ?? true, agreed() {
                        report.convergedAtMs = now
                    }
                    if let k = killedAt, report.killedSeenDeadAfterMs == nil, killedSeenDead() {
                        report.killedSeenDeadAfterMs = now - k
                    }
                    if let p = o.partition, now > p.upperBound, report.agreedAfterHealMs == nil, agreed() {
                        report.agreedAfterHealMs = now - p.upperBound
                    }
                }
            }
            return report
        }
    }
}
