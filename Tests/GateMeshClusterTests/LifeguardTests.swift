@testable import GateMeshCluster
import Testing

/// Lifeguard's refinements of SWIM (local health, nacks, suspicion that shrinks with confirmations),
/// the member-naming pings and acks, and the WAN profile.
@Suite struct LifeguardTests {
    @Test func suspicionShrinksLogarithmicallyWithConfirmations() {
        func t(_ n: Int) -> Int64 { Membership.suspicionTimeout(confirmations: n, expected: 3, minMs: 5_000, maxMs: 30_000) }
        #expect(t(0) == 30_000)
        #expect(t(1) == 17_500, "max − (max − min) × ln 2 / ln 4")
        #expect(t(3) == 5_000)
        #expect(t(9) == 5_000, "never under the minimum")
        #expect(Membership.suspicionTimeout(confirmations: 0, expected: 0, minMs: 5_000, maxMs: 30_000) == 5_000,
                "with no confirmations to expect, the minimum from the start")
    }

    /// Five nodes: every survivor suspects the dead one on its own, so the suspicion is confirmed
    /// and lasts the minimum, not the 30 s it starts at.
    @Test func independentSuspicionsConfirmEachOther() {
        var sim = Simulation(count: 5)
        sim.run(for: 5_000)
        sim.up[3] = false
        let killedAt = sim.now
        sim.run(for: 40_000)
        let suspected = sim.changes.filter { $0.2 == "n3" && $0.3 == .suspect }.map(\.0).min() ?? .max
        let dead = sim.changes.filter { $0.2 == "n3" && $0.3 == .dead }.map(\.0).min() ?? .max
        #expect(sim.allSee(.dead, of: "n3", among: [0, 1, 2, 4]))
        #expect(dead - suspected < 12_000, "suspected at +\(suspected - killedAt) ms, dead at +\(dead - killedAt) ms")
        for i in [0, 1, 2, 4] {
            #expect((sim.nodes[i].suspicions["n3"] == nil), "node \(i) still holds a suspicion of a dead member")
        }
    }

    /// A member asked to ping one that does not answer says so (a nack): the prober's failed probe
    /// then is the target's fault, and its own health score stays at 0.
    @Test func aRelayThatGetsNoAckSendsANackAndTheProberStaysHealthy() {
        var sim = Simulation(count: 3)
        sim.run(for: 5_000)
        sim.up[2] = false
        var nacks = 0, worst = 0
        // Watch n1 answer n0's ping-reqs with nacks while n2 is down, and n0's score meanwhile:
        // each nack arrives before n0's probe ends, so no failed probe counts against n0.
        let end = sim.now + 4_000
        while sim.now < end {
            sim.run(for: 50)
            nacks += sim.queue.items.filter { $0.1 == 0 && { if case .nack = $0.message { true } else { false } }($0.2) }.count
            worst = max(worst, sim.nodes[0].awareness, sim.nodes[1].awareness)
        }
        #expect(nacks > 0, "no nack reached n0")
        #expect(worst == 0, "a health score rose to \(worst)")
    }

    /// A node that hears nothing (its inbound traffic lost) fails every probe and gets no nack: its
    /// health score rises to the top and it probes a fifth as often as without local health
    /// awareness (in 60 s: 27 probes against 132), so a sick node loads the others less. The
    /// members it suspects refute, and no one else ever declares them dead.
    @Test func aDeafNodeBacksOff() {
        func run(awarenessMax: Int) -> (suspicions: Int, score: Int, othersDead: Int, probes: Int, refutes: UInt64) {
            var config = Membership.Config()
            config.awarenessMax = awarenessMax
            var sim = Simulation(count: 5, config: config)
            sim.run(for: 5_000)
            sim.deaf = [0]
            sim.probesSent = [:]
            sim.run(for: 60_000)
            let raised = sim.changes.filter { $0.1 == 0 && $0.3 == .suspect }.count
            let othersDead = sim.changes.filter { $0.1 != 0 && $0.2 != "n0" && $0.3 == .dead }.count
            let refutes = (1..<5).map { sim.nodes[$0].incarnation }.reduce(0, +)
            return (raised, sim.nodes[0].awareness, othersDead, sim.probesSent[0] ?? 0, refutes)
        }
        let plain = run(awarenessMax: 1)
        let lifeguard = run(awarenessMax: 8)
        #expect(plain.score == 0)
        #expect(lifeguard.score == 7, "score \(lifeguard.score)")
        #expect(lifeguard.probes * 3 <= plain.probes, "probes sent: \(lifeguard.probes) with, \(plain.probes) without")
        #expect(lifeguard.suspicions <= plain.suspicions)
        #expect(plain.othersDead == 0 && lifeguard.othersDead == 0)
    }

    /// A new node that takes a dead node's address refuses pings meant for the dead one, so the
    /// dead node is declared dead and the new one joins under its own name.
    @Test func aNewNodeOnADeadNodesAddressIsNotTakenForIt() {
        var sim = Simulation(count: 5)
        sim.run(for: 5_000)
        sim.up[3] = false
        let n5 = sim.add(name: "n5", address: sim.nodes[3].me.address)
        sim.run(for: 30_000)
        #expect(sim.allSee(.dead, of: "n3", among: [0, 1, 2, 4]), "views: \([0, 1, 2, 4].map { sim.nodes[$0].members["n3"]?.state.description ?? "-" })")
        #expect(sim.allSee(.alive, of: "n5", among: [0, 1, 2, 4]))
        #expect(sim.nodes[n5].members["n3"]?.state != .alive)
    }

    /// A ping for another member gets no ack; a ping for this node, or for whoever is at the
    /// address, does; an ack naming another member does not end a probe.
    @Test func pingsAndAcksNameTheMember() {
        let a = Membership.Info(name: "a", address: "10.0.0.1:1"), b = Membership.Info(name: "b", address: "10.0.0.2:1")
        var nodeB = Membership(me: b, seeds: [])
        func acks(_ actions: [Membership.Action]) -> [String] {
            actions.compactMap { if case .send(_, let e) = $0, case .ack(_, let of) = e.message { of } else { nil } }
        }
        #expect(acks(nodeB.receive(.init(from: a, incarnation: 1, message: .ping(seq: 1, target: "c"), updates: []), now: 10)).isEmpty)
        #expect(acks(nodeB.receive(.init(from: a, incarnation: 1, message: .ping(seq: 2, target: "b"), updates: []), now: 20)) == ["b"])
        #expect(acks(nodeB.receive(.init(from: a, incarnation: 1, message: .ping(seq: 3, target: ""), updates: []), now: 30)) == ["b"])

        var nodeA = Membership(me: a, seeds: [])
        _ = nodeA.receive(.init(from: b, incarnation: 1, message: .ping(seq: 9, target: "a"), updates: []), now: 0)
        var probeSeq: UInt64 = 0
        for action in nodeA.tick(now: 1) {
            if case .send(_, let e) = action, case .ping(let s, "b") = e.message { probeSeq = s }
        }
        #expect(probeSeq != 0)
        _ = nodeA.receive(.init(from: .init(name: "c", address: "10.0.0.2:1"), incarnation: 1, message: .ack(seq: probeSeq, of: "c"), updates: []), now: 5)
        #expect(nodeA.probe != nil, "an ack of another member ended the probe")
        _ = nodeA.receive(.init(from: b, incarnation: 1, message: .ack(seq: probeSeq, of: "b"), updates: []), now: 6)
        #expect(nodeA.probe == nil)
    }

    /// The WAN profile at 150 ms one way with 5 % loss: ten minutes without a false death, and a
    /// node that dies is found dead within its probe interval plus suspicion.
    @Test func wanProfileAt150msWithLossHasNoFalseDeaths() {
        var sim = Simulation(count: 3, config: .wan)
        sim.latency = { _, _ in 150 }
        sim.loss = 0.05
        sim.run(for: 10 * 60_000, step: 50)
        #expect(sim.changes.filter { $0.3 == .dead }.isEmpty, "false deaths: \(sim.changes.filter { $0.3 == .dead })")
        sim.up[2] = false
        let killedAt = sim.now
        sim.run(for: 60_000, step: 50)
        let dead = sim.changes.filter { $0.2 == "n2" && $0.3 == .dead }.map(\.0).min() ?? .max
        #expect(sim.allSee(.dead, of: "n2", among: [0, 1]))
        #expect(dead - killedAt <= 2 * Membership.Config.wan.probeIntervalMs + 15_000 + 5_000, "dead after \(dead - killedAt) ms")
    }

    /// Cache keys move only when a member is dead: a suspect keeps its share.
    @Test func aSuspectStillOwnsItsShareOfTheKeys() {
        var sim = Simulation(count: 3)
        sim.run(for: 5_000)
        sim.up[2] = false
        var sawSuspect = false
        for _ in 0..<400 {
            sim.run(for: 50)
            if sim.nodes[0].members["n2"]?.state == .suspect {
                sawSuspect = true
                #expect(sim.nodes[0].owners.contains("n2"))
            }
        }
        #expect(sawSuspect)
        #expect(sim.nodes[0].members["n2"]?.state == .dead)
        #expect(!sim.nodes[0].owners.contains("n2") && sim.nodes[0].owners.sorted() == ["n0", "n1"])
    }

    /// A member with a valid certificate cannot evict another by saying it left: a `left` about a
    /// live member from anyone but that member is a suspicion, which the member refutes.
    @Test func aPeerCannotEvictAnotherWithAForgedLeave() {
        var sim = Simulation(count: 5)
        sim.run(for: 5_000)
        let victim = sim.nodes[3].me, forger = sim.nodes[1].me
        let forged = Membership.Update(info: victim, state: .left, incarnation: sim.nodes[3].incarnation + 5)
        for to in [0, 2, 4] {
            sim.queue.push((sim.now + 10, to, .init(from: forger, incarnation: sim.nodes[1].incarnation, message: .ping(seq: 0, target: ""),
                                                    updates: [forged])))
        }
        sim.run(for: 15_000)
        #expect(sim.changes.filter { $0.2 == "n3" && ($0.3 == .left || $0.3 == .dead) }.isEmpty,
                "\(sim.changes.filter { $0.2 == "n3" })")
        #expect(sim.allSee(.alive, of: "n3", among: [0, 1, 2, 4]))
        #expect(sim.nodes[3].incarnation > forged.incarnation, "n3 refuted above the forged incarnation")
    }

    /// The node that leaves tells every live member itself, so all see it as left, none as dead.
    @Test func aGracefulLeaveReachesEveryMemberDirectly() {
        var sim = Simulation(count: 8)
        sim.run(for: 5_000)
        let actions = sim.nodes[5].leave(now: sim.now)
        #expect(actions.count == 7)
        sim.handle(actions, from: 5)
        sim.up[5] = false
        sim.run(for: 3_000)
        #expect(sim.allSee(.left, of: "n5", among: [0, 1, 2, 3, 4, 6, 7]))
    }
}
