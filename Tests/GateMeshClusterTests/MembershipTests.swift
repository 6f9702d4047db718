@testable import GateMeshCluster
import GateMeshCore
import GateMeshTestSupport
import Testing

/// A deterministic network for membership state machines: virtual time, per-pair latency, random
/// loss from a seeded generator, nodes that go down, partitions.
struct Simulation {
    var nodes: [Membership]
    var up: [Bool]
    var now: Int64 = 0
    var loss: Double = 0
    var latency: (Int, Int) -> Int64 = { _, _ in 20 }
    var partition: Set<Int>? = nil
    /// Nodes that receive nothing (their inbound traffic is lost) but still send.
    var deaf: Set<Int> = []
    var rng = SplitMix64(seed: 7)
    var queue = MinHeap<(Int64, Int, Membership.Envelope)> { $0.0 < $1.0 }
    var index: [String: Int] = [:]
    /// Every state change any node saw: (time, observer, member, state).
    var changes: [(Int64, Int, String, Membership.State)] = []
    var delivered = 0
    /// Probes (pings and ping-reqs) each node sent.
    var probesSent: [Int: Int] = [:]
    /// Syncs asking for an answer: (to address, members carried).
    var syncsAsking: [(to: String, members: Int)] = []

    init(count: Int, seeds: Int = 3, config: Membership.Config = Membership.Config()) {
        let addresses = (0..<count).map { "10.0.\($0 / 250).\($0 % 250):7946" }
        nodes = (0..<count).map { i in
            Membership(me: .init(name: "n\(i)", address: addresses[i], region: "r\(i % 3)"), seeds: Array(addresses.prefix(seeds)),
                       config: config, seed: UInt64(i))
        }
        up = Array(repeating: true, count: count)
        for (i, a) in addresses.enumerated() { index[a] = i }
    }

    /// Starts a new node named `name` at `address` (a dead node's, say), joining through the seeds
    /// of node 0; messages to the address reach the new node from now on.
    mutating func add(name: String, address: String, config: Membership.Config = Membership.Config()) -> Int {
        nodes.append(Membership(me: .init(name: name, address: address), seeds: nodes[0].seeds + [nodes[0].me.address],
                                config: config, seed: UInt64(nodes.count), startIncarnation: UInt64(now)))
        up.append(true)
        index[address] = nodes.count - 1
        return nodes.count - 1
    }

    mutating func handle(_ actions: [Membership.Action], from: Int) {
        for action in actions {
            switch action {
            case .changed(let m): changes.append((now, from, m.info.name, m.state))
            case .duplicateID, .askCertificates: break
            case .send(let address, let envelope):
                switch envelope.message {
                case .ping, .pingRequest: probesSent[from, default: 0] += 1
                case .sync(let list, false): syncsAsking.append((address, list.count))
                default: break
                }
                guard let to = index[address] else { continue }
                if loss > 0, Double(rng.next() % 1_000_000) / 1_000_000 < loss { continue }
                if let p = partition, p.contains(from) != p.contains(to) { continue }
                queue.push((now + latency(from, to), to, envelope))
            }
        }
    }

    mutating func run(for ms: Int64, step: Int64 = 50) {
        let end = now + ms
        while now < end {
            now += step
            while let top = queue.first, top.0 <= now {
                let (_, to, envelope) = queue.pop()!
                guard up[to], !deaf.contains(to) else { continue }
                if let p = partition, let from = index[envelope.from.address], p.contains(to) != p.contains(from) { continue }
                delivered += 1
                let actions = nodes[to].receive(envelope, now: now)
                handle(actions, from: to)
            }
            for i in nodes.indices where up[i] {
                let actions = nodes[i].tick(now: now)
                handle(actions, from: i)
            }
        }
    }

    func view(_ i: Int) -> [String: Membership.State] { nodes[i].members.mapValues(\.state) }
    func allSee(_ state: Membership.State, of name: String, among: [Int]) -> Bool {
        among.allSatisfy { nodes[$0].members[name]?.state == state }
    }
}

@Suite struct MembershipTests {
    let everyone = Array(0..<5)

    /// A node started on a copy of another's data directory carries its id: the later of the two
    /// is told to stop, by a direct message or by gossip, and the earlier never takes it in.
    @Test func aSecondNodeWithTheSameIDIsTheOneToStop() {
        let original = Membership.Info(name: "n1", address: "10.0.0.1:7946", id: "id-1")
        let copy = Membership.Info(name: "n9", address: "10.0.0.9:7946", id: "id-1")
        var a = Membership(me: original, seeds: [], startIncarnation: 1_000)
        var c = Membership(me: copy, seeds: [], startIncarnation: 5_000)
        func ping(from: Membership.Info, _ incarnation: UInt64, updates: [Membership.Update] = []) -> Membership.Envelope {
            .init(from: from, incarnation: incarnation, message: .ping(seq: 1, target: ""), updates: updates)
        }
        #expect(c.receive(ping(from: original, 1_000), now: 0).contains(.duplicateID(of: original)))
        #expect(!a.receive(ping(from: copy, 5_000), now: 0).contains { if case .duplicateID = $0 { true } else { false } })
        #expect(a.members["n9"] == nil)
        // Heard through a third node's gossip, too.
        var c2 = Membership(me: copy, seeds: [], startIncarnation: 5_000)
        let other = Membership.Info(name: "n2", address: "10.0.0.2:7946", id: "id-2")
        let gossip = ping(from: other, 7, updates: [.init(info: original, state: .alive, incarnation: 1_000)])
        #expect(c2.receive(gossip, now: 0).contains(.duplicateID(of: original)))
        // Two nodes with different ids are simply members.
        var b = Membership(me: other, seeds: [], startIncarnation: 7)
        #expect(!b.receive(ping(from: original, 1_000), now: 0).contains { if case .duplicateID = $0 { true } else { false } })
        #expect(b.members["n1"]?.state == .alive)
    }

    /// A copy running under the same name (and certificate) at another address: a third node's
    /// gossip tells the earlier run, which tells the copy directly, and the copy stops. An update
    /// of an earlier run of this node (lower incarnation, old address) is not a copy.
    @Test func aCopyUnderTheSameNameAtAnotherAddressIsTheOneToStop() {
        let original = Membership.Info(name: "n1", address: "10.0.0.1:7946", id: "id-1")
        let copy = Membership.Info(name: "n1", address: "10.0.0.9:7946", id: "id-1")
        let other = Membership.Info(name: "n2", address: "10.0.0.2:7946", id: "id-2")
        var a = Membership(me: original, seeds: [], startIncarnation: 1_000)
        var c = Membership(me: copy, seeds: [], startIncarnation: 5_000)
        func gossip(_ about: Membership.Info, _ incarnation: UInt64) -> Membership.Envelope {
            .init(from: other, incarnation: 7, message: .ping(seq: 1, target: ""), updates: [.init(info: about, state: .alive, incarnation: incarnation)])
        }
        // The original hears of the copy from n2 and tells it directly, once.
        let told = a.receive(gossip(copy, 5_000), now: 0)
        let direct = told.compactMap { action -> Membership.Envelope? in
            if case .send(let to, let envelope) = action, to == copy.address { return envelope }
            return nil
        }
        #expect(direct.count == 1 && !told.contains { if case .duplicateID = $0 { true } else { false } })
        #expect(!a.receive(gossip(copy, 5_000), now: 1).contains { if case .send(let to, _) = $0 { to == copy.address } else { false } })
        // The copy, started later, stops on hearing the original.
        #expect(c.receive(direct[0], now: 0).contains(.duplicateID(of: original)))
        // The original, hearing the copy directly, does not stop.
        #expect(!a.receive(.init(from: copy, incarnation: 5_000, message: .ping(seq: 2, target: ""), updates: []), now: 2)
            .contains { if case .duplicateID = $0 { true } else { false } })
        // A node restarted at a new address hears of its earlier run: not a copy.
        var moved = Membership(me: copy, seeds: [], startIncarnation: 9_000)
        #expect(!moved.receive(gossip(original, 8_999), now: 0).contains { if case .send(let to, _) = $0 { to == original.address } else { false } })
    }

    @Test func fiveNodesFromTheSameSeedListFindEachOther() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        for i in 0..<5 {
            #expect(sim.view(i).count == 4 && sim.view(i).values.allSatisfy { $0 == .alive }, "node \(i): \(sim.view(i))")
        }
    }

    @Test func aNodeThatDiesIsSuspectedThenDeclaredDeadByEveryone() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        sim.up[3] = false
        let killedAt = sim.now
        sim.run(for: 15_000)
        #expect(sim.allSee(.dead, of: "n3", among: [0, 1, 2, 4]))
        let declared = sim.changes.filter { $0.2 == "n3" && $0.3 == .dead }.map(\.0).min() ?? .max
        // Detection (a probe period or two) plus the suspicion timeout (5 s at this size).
        #expect(declared - killedAt < 10_000, "dead after \(declared - killedAt) ms")
        #expect(sim.changes.filter { $0.2 != "n3" && $0.3 == .dead }.isEmpty)
    }

    /// Each node keeps knocking at a dead member's address (to heal a partition) with its own
    /// record only, not its whole member list (50 KB a second per dead member at 1,000 nodes);
    /// a member that comes back answers with its list and is alive again everywhere.
    @Test func reconnectsToTheDeadCarryOnlyTheSendersRecord() {
        var sim = Simulation(count: 8)
        sim.run(for: 10_000)
        sim.up[3] = false
        sim.run(for: 15_000)
        #expect(sim.allSee(.dead, of: "n3", among: [0, 1, 2, 4, 5, 6, 7]))
        sim.syncsAsking = []
        sim.run(for: 10_000)
        let toDead = sim.syncsAsking.filter { $0.to == sim.nodes[3].me.address }
        #expect(toDead.count >= 10, "the dead member was knocked at \(toDead.count) times")
        #expect(toDead.allSatisfy { $0.members == 1 }, "\(toDead.map(\.members))")
        sim.up[3] = true
        sim.run(for: 10_000)
        #expect(sim.allSee(.alive, of: "n3", among: [0, 1, 2, 4, 5, 6, 7]))
    }

    @Test func wideAreaLinksWithLossDoNotCauseFalseDeaths() {
        var sim = Simulation(count: 5)
        // Three regions: 15 ms within a region, 30, 80 and 150 ms one way between them, 5 % loss.
        let region = [0, 0, 1, 1, 2]
        let between: [[Int64]] = [[15, 30, 150], [30, 15, 80], [150, 80, 15]]
        sim.latency = { a, b in between[region[a]][region[b]] }
        sim.loss = 0.05
        sim.run(for: 10 * 60_000, step: 25)
        #expect(sim.changes.filter { $0.3 == .dead }.isEmpty, "false deaths: \(sim.changes.filter { $0.3 == .dead })")
        for i in 0..<5 { #expect(sim.view(i).values.allSatisfy { $0 == .alive }, "node \(i): \(sim.view(i))") }
    }

    /// A reload changes a node's config digest; a new incarnation carries it to every member.
    @Test func aChangedConfigDigestReachesEveryMember() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        let before = sim.nodes[2].incarnation
        sim.nodes[2].setConfigDigest("0123456789abcdef")
        #expect(sim.nodes[2].incarnation == before + 1)
        sim.nodes[2].setConfigDigest("0123456789abcdef")
        #expect(sim.nodes[2].incarnation == before + 1, "the same digest again changes nothing")
        sim.run(for: 3000)
        for i in [0, 1, 3, 4] {
            #expect(sim.nodes[i].members["n2"]?.info.configDigest == "0123456789abcdef", "node \(i)")
            #expect(sim.nodes[i].members["n2"]?.state == .alive)
        }
        #expect(sim.changes.filter { $0.3 != .alive }.isEmpty)
    }

    @Test func aGracefulLeaveIsSeenAsLeftNotDead() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        let actions = sim.nodes[2].leave(now: sim.now)
        sim.handle(actions, from: 2)
        sim.up[2] = false
        sim.run(for: 3000)
        #expect(sim.allSee(.left, of: "n2", among: [0, 1, 3, 4]))
        #expect(sim.changes.filter { $0.2 == "n2" && $0.3 == .dead }.isEmpty)
    }

    /// An operator marks a dead node as gone for good on one node; the others learn it by gossip.
    /// Live members, unknown names and the node itself are refused; a marked node that comes back
    /// after all rejoins with a higher incarnation.
    @Test func anOperatorMarksADeadMemberAsLeftAndEveryoneLearnsIt() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        #expect(sim.nodes[0].markLeft(name: "n1", now: sim.now) == .live(.alive))
        #expect(sim.nodes[0].markLeft(name: "n0", now: sim.now) == .isMe)
        #expect(sim.nodes[0].markLeft(name: "nope", now: sim.now) == .unknown)
        sim.up[3] = false
        sim.run(for: 15_000)
        #expect(sim.allSee(.dead, of: "n3", among: [0, 1, 2, 4]))
        guard case .marked(let m) = sim.nodes[0].markLeft(name: "n3", now: sim.now) else {
            Issue.record("a dead member is marked")
            return
        }
        #expect(m.state == .left)
        #expect(sim.nodes[0].markLeft(name: "n3", now: sim.now) == .alreadyLeft)
        sim.run(for: 3000)
        #expect(sim.allSee(.left, of: "n3", among: [0, 1, 2, 4]))
        // It comes back after all: a restart's higher incarnation makes it a member again.
        sim.nodes[3] = Membership(me: sim.nodes[3].me, seeds: [sim.nodes[0].me.address], seed: 99,
                                  startIncarnation: sim.nodes[3].incarnation + 1_000)
        sim.up[3] = true
        sim.run(for: 5000)
        #expect(sim.allSee(.alive, of: "n3", among: [0, 1, 2, 4]))
    }

    @Test func aSuspectThatIsAliveRefutesWithAHigherIncarnation() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        // n4 stops answering for 2.5 s (a GC pause, a slow link): suspected, never declared dead.
        sim.up[4] = false
        sim.run(for: 2500)
        sim.up[4] = true
        sim.run(for: 8000)
        #expect(sim.nodes[4].incarnation >= 1)
        #expect(sim.allSee(.alive, of: "n4", among: [0, 1, 2, 3]))
        #expect(sim.changes.filter { $0.2 == "n4" && $0.3 == .dead }.isEmpty)
    }

    @Test func aPartitionHealsAndEveryoneAgreesAgain() {
        var sim = Simulation(count: 5)
        sim.run(for: 5000)
        sim.partition = [0, 1]
        sim.run(for: 30_000)
        #expect(sim.allSee(.dead, of: "n0", among: [2, 3, 4]) && sim.allSee(.dead, of: "n3", among: [0, 1]))
        sim.partition = nil
        let healedAt = sim.now
        var agreedAt: Int64?
        while sim.now - healedAt < 30_000 {
            sim.run(for: 250)
            if (0..<5).allSatisfy({ i in sim.view(i).count == 4 && sim.view(i).values.allSatisfy { $0 == .alive } }) {
                agreedAt = sim.now
                break
            }
        }
        #expect(agreedAt != nil, "views after healing: \((0..<5).map { sim.view($0) })")
        #expect((agreedAt ?? .max) - healedAt <= 10_000)
    }

    @Test(.onOwnThread) func aThousandNodesConvergeFromThreeSeeds() {
        var config = Membership.Config()
        config.syncIntervalMs = 5000
        var sim = Simulation(count: 1000, seeds: 3, config: config)
        sim.latency = { a, b in 5 + Int64((a * 31 + b * 17) % 40) }
        var convergedAt: Int64?
        while sim.now < 30_000 {
            sim.run(for: 1000, step: 200)
            if (0..<1000).allSatisfy({ sim.nodes[$0].aliveCount == 999 }) {
                convergedAt = sim.now
                break
            }
        }
        #expect(convergedAt != nil)
        let complete = (0..<1000).filter { sim.nodes[$0].aliveCount == 999 }.count
        #expect(complete == 1000, "\(complete) of 1000 nodes see everyone")
        #expect(sim.changes.filter { $0.3 == .dead }.isEmpty)
    }
}
