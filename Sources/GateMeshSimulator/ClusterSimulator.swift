import GateMeshCluster
import GateMeshCore

/// A deterministic simulator of the cluster's membership: many `Membership` state machines driven
/// by one seeded scheduler in virtual time, over links with delay, jitter, loss and FIFO order
/// (head-of-line blocking: a message never overtakes an earlier one on its link; membership and
/// frames on links of their own, as the node's two connections per peer; a lost membership
/// message is gone, a lost frame of the budget comes a retransmission timeout late), with a partition
/// into two halves and nodes killed at a time. Pure: no clock, no threads, no sockets; the same
/// options and seed give the same report, so a failing seed is reproduced from its number.
///
/// What it reports: when every node first held every other as live (convergence), suspicions and
/// deaths of nodes that were up and reachable from the observer (false ones), how long the
/// survivors took to see killed nodes dead, how long after a partition healed everyone agreed
/// again, and the messages and bytes (`MembershipCodec`) each node sent per second.
///
/// With a `BudgetLoad`, each node also runs the budget's pure cores (`LimitsEngine`, `Replicator`,
/// rights asks and grants, ownership from its membership view, a journal and a store that a
/// restart reads back) and the report adds what the provider served against what the counters
/// hold: overshoot against the mode's bound, spend lost, agreement after traffic stops, and
/// reservations back at zero. Rule replication and cache ownership are not simulated yet.
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
    /// The nodes are cut apart (as `partitionShape` says) from `start` until `end`.
    public var partition: ClosedRange<Int64>?
    /// Who the partition cuts from whom (halves by default).
    public var partitionShape: PartitionShape = .halves
    /// The partition cuts one direction only: what side 0 (the first half, or the isolated node)
    /// sends side 1 is lost, what side 1 sends side 0 arrives.
    public var oneWay = false
    /// Node `node`'s wall clock steps by `byMs` at `atMs` (an NTP step; its monotonic clock, which
    /// membership runs on, does not). Budgets only: their leases and windows read the wall clock.
    public var clockStep: (node: Int, atMs: Int64, byMs: Int64)?
    /// The last `count` nodes stop (as with SIGKILL) at `atMs`...
    public var kill: (count: Int, atMs: Int64)?
    /// ...and start again this much later, with only what their journal and store hold.
    public var restartAfterMs: Int64?
    /// Traffic against a budget (nil: membership only).
    public var budget: BudgetLoad?
    /// Admin changes to rules and keys, replicated (nil: none).
    public var rules: RuleLoad?
    /// A deliberate defect, to prove the properties catch one: counter and rule frames are
    /// dropped instead of merged.
    public var brokenMerge = false
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
    /// The budget's figures (nil without a `BudgetLoad`).
    public var budget: BudgetReport?
    /// The rules' figures (nil without a `RuleLoad`).
    public var rules: RulesReport?
    public var cacheOwnership = CacheOwnershipReport()

    public var messagesPerNodePerSecond: Double { Double(messages) / Double(options.nodes) / (Double(options.durationMs) / 1000) }
    public var bytesPerNodePerSecond: Double { Double(bytes) / Double(options.nodes) / (Double(options.durationMs) / 1000) }

    /// The properties every run must hold: no false death outside a partition, convergence, the
    /// dead seen dead, and agreement after a heal. Empty when all hold.
    public var violations: [String] {
        var out: [String] = []
        if options.partition == nil && falseDeaths > 0 { out.append("\(falseDeaths) false deaths") }
        if convergedAtMs == nil { out.append("the members never all saw each other alive") }
        if options.kill != nil && options.restartAfterMs == nil && killedSeenDeadAfterMs == nil { out.append("a survivor never saw a killed node dead") }
        if options.partition != nil && agreedAfterHealMs == nil { out.append("the members did not agree again after the heal") }
        if options.kill == nil && options.partition == nil && cacheOwnership.movesAfterConvergence > 0 {
            out.append("\(cacheOwnership.movesAfterConvergence) cache keys moved with no member dead")
        }
        if cacheOwnership.ownersAgreeAtEnd == false { out.append("nodes that agree on the members place cache keys differently") }
        if let r = rules {
            if r.agreedAfterStopMs == nil { out.append("the nodes' rules did not agree after the writes stopped") }
            if r.lostWrites > 0 { out.append("\(r.lostWrites) rule writes lost") }
        }
        if let b = budget {
            if b.overshoot > b.overshootBound { out.append("the budget was overshot by \(b.overshoot), past the \(options.budget!.mode) bound of \(b.overshootBound)") }
            if b.lostSpend > 0 { out.append("\(b.lostSpend) of served spend missing from some node's counters") }
            if b.agreedAfterStopMs == nil { out.append("the nodes' spend did not agree after traffic stopped") }
            if b.reservedAtEnd != 0 { out.append("\(b.reservedAtEnd) still reserved after traffic stopped") }
        }
        return out
    }
}


public enum ClusterSimulator {
    public static func run(_ o: SimulationOptions) -> SimulationReport {
        var sim = Run(o)
        return sim.go()
    }

    enum Payload {
        case membership(Membership.Envelope)
        case frame(Frame)
    }

    struct Event {
        var at: Int64
        var order: UInt64
        var from: Int
        var to: Int
        /// The run of the receiver it was sent to: a message to a run that was killed is lost
        /// with its connection.
        var toEpoch: UInt64
        var payload: Payload
    }

    struct Run {
        let o: SimulationOptions
        var nodes: [Membership] = []
        var infos: [Membership.Info] = []
        var seeds: [String] = []
        var up: [Bool] { didSet { upCount = up.count(where: { $0 }) } }
        /// How many nodes are up (kept with `up`: traffic is spread over them every tick).
        var upCount: Int
        var epochs: [UInt64]
        var index: [String: Int] = [:]
        var rng: SplitMix64
        /// Events by (time, send order): equal times keep their send order.
        var queue = MinHeap<Event> { a, b in a.at < b.at || (a.at == b.at && a.order < b.order) }
        var order: UInt64 = 0
        /// The time the last message on each link (from × n + to, plus n × n for membership's) is
        /// delivered: FIFO links.
        var linkClock: [Int: Int64] = [:]
        var now: Int64 = 0
        var report: SimulationReport
        var killedAt: Int64?
        var restartedAt: Int64?
        /// The incarnation each node's current run started at.
        var runStarts: [UInt64]
        var suspected: Set<String> = []
        // The budget (empty without one).
        var limits: [LimitsNode] = []
        var skew: [Int64] = []
        /// Whose membership changed since its ownership and peer list were last read.
        var membershipChanged: [Bool] = []
        var peerNames: [[String]] = []
        var ends = MinHeap<(at: Int64, request: Request)> { $0.at < $1.at }
        var arrivals: [Double] = []
        var served: [Int64] = []
        var inFlight: [Int64] = []
        var extraBound: Int64 = 0
        /// Requests admitted over the cluster in each tick (for `soft`'s bound).
        var admittedPerTick: [Int] = []
        var stoppedAt: Int64?
        // Rules and keys (empty without them).
        var rules: [ClusterSimulator.RulesNode] = []
        var ruleArrivals: [Double] = []
        var ruleWrites: [(node: Int, record: RuleRecord)] = []
        var rulesStoppedAt: Int64?
        // Cache ownership: each node's owner of each sample key, the owners it placed them among,
        // and whether its membership changed since.
        var cacheOwners: [[String]]
        var ownerNames: [[String]]
        var ownersChanged: [Bool]

        init(_ o: SimulationOptions) {
            self.o = o
            up = Array(repeating: true, count: o.nodes)
            upCount = o.nodes
            epochs = Array(repeating: 1, count: o.nodes)
            runStarts = Array(repeating: 0, count: o.nodes)
            rng = SplitMix64(seed: o.seed)
            report = SimulationReport(options: o)
            cacheOwners = Array(repeating: [], count: o.nodes)
            ownersChanged = Array(repeating: true, count: o.nodes)
            ownerNames = Array(repeating: [], count: o.nodes)
            if o.rules != nil {
                report.rules = RulesReport()
                rules = Array(repeating: ClusterSimulator.RulesNode(), count: o.nodes)
                ruleArrivals = Array(repeating: 0, count: o.nodes)
            }
            let addresses = (0..<o.nodes).map { "10.\($0 / 65_536).\($0 / 256 % 256).\($0 % 256):7946" }
            seeds = Array(addresses.prefix(max(1, o.seeds)))
            for i in 0..<o.nodes {
                infos.append(.init(name: "n\(i)", address: addresses[i], region: "r\(i % 3)", id: "id\(i)"))
                nodes.append(Membership(me: infos[i], seeds: seeds, config: o.config, seed: o.seed &+ UInt64(i),
                                        signer: StandInSigner(name: infos[i].name)))
                index[addresses[i]] = i
            }
            if let load = o.budget {
                report.budget = BudgetReport()
                for i in 0..<o.nodes {
                    limits.append(ClusterSimulator.newLimitsNode(id: infos[i].id, load: load, epoch: 1, seed: o.seed &+ UInt64(i) &* 31))
                    skew.append(load.skewMs > 0 ? Int64(rng.next() % UInt64(2 * load.skewMs + 1)) - load.skewMs : 0)
                }
                // A node with peers to hear from admits nothing, and grants nothing, until it has
                // caught up with them (`ClusterService`): so does every node of a starting cluster.
                for i in 0..<o.nodes where seeds.contains(where: { $0 != infos[i].address }) {
                    limits[i].expectCatchUp(until: clock(i) + 2_000)
                }
                membershipChanged = Array(repeating: true, count: o.nodes)
                peerNames = Array(repeating: [], count: o.nodes)
                arrivals = Array(repeating: 0, count: o.nodes)
                served = Array(repeating: 0, count: load.scopes)
                inFlight = Array(repeating: 0, count: load.scopes)
            }
        }

        /// Node `i`'s side of the partition: 0 or 1, or nil for a bridge node, which reaches both.
        func side(_ i: Int) -> Int? {
            switch o.partitionShape {
            case .halves: i < o.nodes / 2 ? 0 : 1
            case .isolate: i == 0 ? 0 : 1
            case .bridge: i == 0 ? nil : (i <= (o.nodes - 1) / 2 ? 0 : 1)
            }
        }
        /// Whether a message from `a` to `b` is lost to the partition at `t`: between sides (one
        /// way only, side 0 to side 1, with `oneWay`), never to or from a bridge node.
        func cut(_ a: Int, _ b: Int, at t: Int64) -> Bool {
            guard let p = o.partition, p.contains(t), let sa = side(a), let sb = side(b) else { return false }
            return o.oneWay ? sa == 0 && sb == 1 : sa != sb
        }
        /// Node `i`'s wall clock (the limits' time); membership runs on the monotonic `now`.
        func clock(_ i: Int) -> Int64 { 1_800_000_000_000 + now + (skew.isEmpty ? 0 : skew[i]) }

        /// Puts a message on the link `from` → `to` (membership's or the frames'), delivered after
        /// the link's delay and jitter, never before an earlier message on the same link; with the
        /// chance `loss`, a membership message is lost and a frame comes a retransmission timeout
        /// late.
        mutating func enqueue(_ payload: Payload, size: Int, from: Int, to: Int) {
            report.messages += 1
            report.bytes += size
            var retransmit: Int64 = 0
            if o.loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < o.loss {
                report.lost += 1
                // A membership message is lost (pessimistic: as over UDP, which SWIM is built
                // for). A frame of the budget travels as on the TCP link it uses: its lost
                // packet is sent again after a retransmission timeout, and the link's later
                // frames wait behind it. (A frame is lost only with its connection, which makes
                // the peer send everything again: `restart`, `Replicator.reset`.)
                guard case .frame = payload else { return }
                retransmit = max(200, 2 * o.delayMs) + 50
            }
            let jitter = (o.jitterMs > 0 ? Int64(rng.next() % UInt64(o.jitterMs + 1)) : 0) + retransmit
            // Membership and the budget's frames on links of their own, as the shell's two
            // connections per peer (`PeerConnections.Lane`): a probe never waits behind a frame.
            var link = from * o.nodes + to
            if case .membership = payload { link += o.nodes * o.nodes }
            let at = max(now + o.delayMs + jitter, linkClock[link] ?? 0)
            linkClock[link] = at
            order += 1
            queue.push(Event(at: at, order: order, from: from, to: to, toEpoch: epochs[to], payload: payload))
        }

        mutating func send(_ frame: Frame, from: Int, to: Int) {
            report.budget?.counterFrames += 1
            report.budget?.counterBytes += Frame.headerSize + frame.payload.count
            enqueue(.frame(frame), size: Frame.headerSize + frame.payload.count, from: from, to: to)
        }

        mutating func send(_ actions: [Membership.Action], from: Int) {
            for action in actions {
                switch action {
                case .changed(let m):
                    if !membershipChanged.isEmpty { membershipChanged[from] = true }
                    ownersChanged[from] = true
                    guard let x = index[m.info.address], x != from else { continue }
                    // As `ClusterService.perform`: a member alive (new, back, or cleared of a
                    // suspicion) gets everything again, and this node's rules digest.
                    if m.state == .alive {
                        if !limits.isEmpty { limits[from].replicator.reset(peer: m.info.name) }
                        if !rules.isEmpty {
                            sendRules(RulesCodec.digest(rules[from].records.digest(), count: rules[from].records.count, reply: false), from: from, to: x)
                        }
                    }
                    // A suspicion or death of an earlier run of a restarted node is about the run
                    // that was killed, not a false one.
                    let reachable = up[x] && !cut(from, x, at: now) && !cut(x, from, at: now) && m.incarnation >= runStarts[x]
                    if m.state == .suspect && reachable {
                        report.falseSuspicionViews += 1
                        if suspected.insert("\(m.info.name)@\(m.incarnation)").inserted { report.falseSuspicions += 1 }
                    }
                    if m.state == .dead && reachable { report.falseDeaths += 1 }
                case .duplicateID, .askCertificates:
                    continue
                case .send(let address, let envelope):
                    guard let to = index[address] else { continue }
                    enqueue(.membership(envelope), size: Frame.headerSize + MembershipCodec.size(of: envelope), from: from, to: to)
                }
            }
        }

        /// Every up node holds as live (alive or suspect) every other up node (counts, not pairs: a
        /// check of 1,000 nodes costs 1,000 reads). Checked outside a partition only.
        func agreed() -> Bool {
            for i in nodes.indices where up[i] {
                guard nodes[i].aliveCount == upCount - 1 else { return false }
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

        mutating func deliver(_ event: Event) {
            guard up[event.to], epochs[event.to] == event.toEpoch, !cut(event.from, event.to, at: event.at) else { return }
            switch event.payload {
            case .membership(let envelope):
                send(nodes[event.to].receive(envelope, now: now), from: event.to)
            case .frame(let frame) where frame.kind == .rules || frame.kind == .rulesDigest:
                receiveRules(frame, at: event.to, from: event.from)
            case .frame(let frame):
                receive(frame, at: event.to, from: event.from)
            }
        }

        mutating func go() -> SimulationReport {
            var nextCheck: Int64 = 0
            while now < o.durationMs {
                let tickAt = now + o.tickMs
                while let next = queue.first, next.at <= tickAt, let event = queue.pop() {
                    now = event.at
                    deliver(event)
                }
                now = tickAt
                if let kill = o.kill, killedAt == nil, now >= kill.atMs {
                    killedAt = now
                    self.kill(max(0, o.nodes - kill.count)..<o.nodes)
                }
                if let k = killedAt, let after = o.restartAfterMs, restartedAt == nil, now >= k + after, let kill = o.kill {
                    restartedAt = now
                    restart(max(0, o.nodes - kill.count)..<o.nodes)
                }
                if let p = o.partition, o.budget.map({ $0.mode != .strict }) ?? false, now - o.tickMs < p.lowerBound, now >= p.lowerBound {
                    // Each side may spend what was left when the link went.
                    extraBound += roomLeft()
                }
                if let step = o.clockStep, !skew.isEmpty, step.node < o.nodes, now - o.tickMs < step.atMs, now >= step.atMs {
                    skew[step.node] += step.byMs
                }
                if o.budget != nil {
                    admittedPerTick.append(0)
                    endRequests()
                }
                for i in nodes.indices where up[i] {
                    send(nodes[i].tick(now: now), from: i)
                    if o.budget != nil { budgetTick(i) }
                    if o.rules != nil { rulesTick(i) }
                    cacheOwnershipTick(i)
                }
                // The properties that are states, once a second (they walk every pair).
                if now >= nextCheck {
                    nextCheck = now + 1000
                    if report.convergedAtMs == nil, killedAt == nil, o.partition.map({ now < $0.lowerBound }) ?? true, agreed() {
                        report.convergedAtMs = now
                    }
                    if let k = killedAt, restartedAt == nil, report.killedSeenDeadAfterMs == nil, killedSeenDead() {
                        report.killedSeenDeadAfterMs = now - k
                    }
                    if let p = o.partition, now > p.upperBound, report.agreedAfterHealMs == nil, agreed() {
                        report.agreedAfterHealMs = now - p.upperBound
                    }
                    if let stop = stoppedAt, report.budget?.agreedAfterStopMs == nil, spendAgrees() {
                        report.budget?.agreedAfterStopMs = now - stop
                    }
                    if let stop = rulesStoppedAt, report.rules?.agreedAfterStopMs == nil, rulesAgree() {
                        report.rules?.agreedAfterStopMs = now - stop
                    }
                }
            }
            if o.budget != nil { finishBudget() }
            if o.rules != nil { finishRules() }
            finishCacheOwnership()
            return report
        }

        mutating func kill(_ range: Range<Int>) {
            for i in range { up[i] = false }
            guard o.budget?.mode == .bounded else { return }
            // A bounded owner hands out again what a dead holder held once its lease has passed
            // (whatever it used unheard is overshoot), and a dead owner's grants that reached their
            // holder but not the next owner are handed out twice.
            var bound: Int64 = 0
            for scope in 0..<served.count {
                let key = self.key(scope)
                var most: Int64 = 0
                for i in nodes.indices where up[i] {
                    let rights = limits[i].engine.counters.rights(key)
                    var held: Int64 = 0
                    for k in range { held += rights.held(by: limits[k].engine.counters.holder) }
                    for k in range {
                        for (pair, v) in rights.granted where pair.from.hasPrefix(infos[k].id + "/") { held += v }
                    }
                    most = max(most, held)
                }
                bound = max(bound, most)
            }
            extraBound += bound
        }

        mutating func restart(_ range: Range<Int>) {
            for i in range {
                up[i] = true
                epochs[i] += 1
                runStarts[i] = UInt64(now)
                nodes[i] = Membership(me: infos[i], seeds: seeds, config: o.config, seed: o.seed &+ UInt64(i) &+ epochs[i],
                                      startIncarnation: runStarts[i], signer: StandInSigner(name: infos[i].name))
                // A new run places keys afresh (not moves); its rules are in its store.
                cacheOwners[i] = []
                ownerNames[i] = []
                ownersChanged[i] = true
                if o.rules != nil { rules[i].nextDigestAt = now }
                if let load = o.budget {
                    limits[i] = limits[i].restarted(load: load, now: clock(i), seed: o.seed &+ UInt64(i) &* 31 &+ epochs[i])
                    membershipChanged[i] = true
                    // Its peers' links to it broke with it: when they come up again, each peer
                    // sends it everything (`PeerConnections.reconnected`, `Replicator.reset`).
                    for j in nodes.indices where j != i && up[j] { limits[j].replicator.reset(peer: infos[i].name) }
                }
            }
        }
    }
}

/// Who a simulated partition cuts from whom.
public enum PartitionShape: String, Sendable, CaseIterable {
    /// The first half of the nodes from the second.
    case halves
    /// Node 0 (a seed) from all the others.
    case isolate
    /// Two groups from each other, with node 0 reaching both (and relaying between them).
    case bridge
}
