@testable import GateMeshCluster
import Synchronization
import Testing

/// A stand-in for members' keys: a member's "signature" of a record is derived from its name and
/// the record. `known` is the set of members whose keys this node holds (nil: all of them).
final class TestKeys: RecordSigner {
    let name: String
    let known: Mutex<Set<String>?>
    init(_ name: String, known: Set<String>? = nil) {
        self.name = name
        self.known = Mutex(known)
    }
    static func signature(_ record: [UInt8], by member: String) -> [UInt8] {
        var fnv = FNV1a()
        fnv.add(member)
        fnv.add(0 as UInt8)
        fnv.add(record)
        return (0..<8).map { UInt8(truncatingIfNeeded: fnv.value >> (8 * UInt64($0))) }
    }
    func sign(_ record: [UInt8]) -> [UInt8] { Self.signature(record, by: name) }
    func check(_ record: [UInt8], signature: [UInt8], by member: String) -> RecordCheck {
        guard known.withLock({ $0?.contains(member) ?? true }) else { return .unknownSigner }
        return signature == Self.signature(record, by: member) ? .valid : .invalid
    }
    func learn(_ member: String) { known.withLock { _ = $0?.insert(member) } }
}

/// Issue 17: a node writes only its own membership record. Records about a member carry its
/// signature; one passed on by a peer is believed only with that signature.
struct SignedRecordsTests {
    let a = Membership.Info(name: "a", address: "10.0.0.1:7946", id: "id-a")
    let b = Membership.Info(name: "b", address: "10.0.0.2:7946", id: "id-b")
    let c = Membership.Info(name: "c", address: "10.0.0.3:7946", id: "id-c")

    func signed(_ info: Membership.Info, _ state: Membership.State, _ incarnation: UInt64, by signer: String) -> Membership.Update {
        .init(info: info, state: state, incarnation: incarnation,
              signature: TestKeys.signature(Membership.record(info, incarnation: incarnation), by: signer))
    }

    /// A message from `from` (at incarnation 1) carrying `updates`.
    func from(_ from: Membership.Info, _ updates: [Membership.Update]) -> Membership.Envelope {
        .init(from: from, incarnation: 1, signature: TestKeys.signature(Membership.record(from, incarnation: 1), by: from.name),
              message: .ping(seq: 1, target: ""), updates: updates)
    }

    /// Node `a`, which has heard `b` and `c` directly.
    func nodeA(keys: TestKeys = TestKeys("a")) -> Membership {
        var m = Membership(me: a, seeds: [], startIncarnation: 10, signer: keys)
        _ = m.receive(from(b, []), now: 0)
        _ = m.receive(from(c, []), now: 0)
        return m
    }

    @Test func aPeerCannotMoveAnotherMemberOrRaiseItsIncarnation() {
        var m = nodeA()
        var moved = b
        moved.address = "10.6.6.6:7946"
        // c passes on "b is alive at 10.6.6.6, incarnation 99", signed by c: dropped, counted.
        _ = m.receive(from(c, [signed(moved, .alive, 99, by: "c")]), now: 1)
        // Unsigned (as in a sync list): dropped, and asked of c signed.
        let unsigned = m.receive(from(c, [.init(info: moved, state: .alive, incarnation: 99)]), now: 1)
        #expect(unsigned.contains { if case .send(c.address, let e) = $0, case .recordsAsk(["b"]) = e.message { true } else { false } })
        #expect(m.members["b"]?.info.address == b.address && m.members["b"]?.incarnation == 1)
        #expect(m.forgedRecords == 1)
        // The same record signed by b (b moved, restarted, and said so): taken.
        _ = m.receive(from(c, [signed(moved, .alive, 99, by: "b")]), now: 2)
        #expect(m.members["b"]?.info.address == moved.address && m.members["b"]?.incarnation == 99)
        // Passed on again, it is the record held: nothing checked, nothing counted.
        _ = m.receive(from(c, [signed(moved, .alive, 99, by: "b")]), now: 3)
        #expect(m.forgedRecords == 1)
        // b's certificate, asked of c for the forged records (b may have a new key), comes: the
        // forged record held is checked again, dropped, and not counted twice.
        _ = m.certificatesLearned(["b"], now: 4)
        #expect(m.forgedRecords == 1 && m.held.isEmpty && m.members["b"]?.incarnation == 99)
    }

    /// A suspicion or death carries the signature of the record it is about: one at an incarnation
    /// the member never signed is dropped (it would make the member refute past any incarnation it
    /// could reach), while one about the record held is taken as SWIM takes it.
    @Test func aSuspicionMustBeAboutARecordTheMemberSigned() {
        var m = nodeA()
        _ = m.receive(from(c, [signed(b, .dead, 1_000_000, by: "c")]), now: 1)
        #expect(m.members["b"]?.state == .alive)
        // Of a: a does not refute (its incarnation stays), even at the largest incarnation.
        _ = m.receive(from(c, [signed(a, .suspect, 1_000_000, by: "c"), .init(info: a, state: .dead, incarnation: .max)]), now: 1)
        #expect(m.incarnation == 10)
        // About the record held: a suspicion, which a refutes with its next incarnation.
        let suspicion = m.members["b"].map { Membership.Update(info: $0.info, state: .suspect, incarnation: $0.incarnation, accuser: "c",
                                                               signature: $0.signature) }!
        _ = m.receive(from(c, [suspicion]), now: 2)
        #expect(m.members["b"]?.state == .suspect)
        _ = m.receive(from(c, [signed(a, .suspect, 10, by: "a")]), now: 2)
        #expect(m.incarnation == 11)
    }

    /// Without signing (the protocol alone), a suspicion at the largest incarnation is not refuted
    /// (one more would overflow), rather than stopping the node.
    @Test func theLargestIncarnationIsNotRefuted() {
        var m = Membership(me: a, seeds: [], startIncarnation: 10)
        _ = m.receive(.init(from: c, incarnation: 1, message: .ping(seq: 1, target: ""), updates: [.init(info: a, state: .suspect, incarnation: .max)]), now: 0)
        #expect(m.incarnation == 10)
    }

    /// A member made up by a peer, with this node's id, would make this node stop as a copy of it:
    /// without a signature of that member (a certificate the CA issued for it), it is dropped.
    @Test func aMadeUpMemberWithThisNodesIDDoesNotStopIt() {
        var m = nodeA()
        let ghost = Membership.Info(name: "ghost", address: "10.0.0.9:7946", id: "id-a")
        let forged = m.receive(from(c, [signed(ghost, .alive, 1, by: "c")]), now: 1)
        #expect(!forged.contains { if case .duplicateID = $0 { true } else { false } })
        #expect(m.members["ghost"] == nil)
        // Signed by a real member of that name (a copy of a's data directory with its own
        // certificate), it is the copy that a hears of: the later of the two stops, as before.
        let copy = m.receive(from(c, [signed(ghost, .alive, 1, by: "ghost")]), now: 1)
        #expect(copy.contains(.duplicateID(of: ghost)))
    }

    /// A record whose member's key this node does not hold waits while its certificate is asked
    /// of the peer that passed it on (once a second), and is applied when it arrives; a forged one
    /// is dropped then.
    @Test func aRecordWaitsForItsMembersCertificate() {
        let keys = TestKeys("a", known: ["a", "c"])
        var m = nodeA(keys: keys)
        let d = Membership.Info(name: "d", address: "10.0.0.4:7946", id: "id-d")
        let e = Membership.Info(name: "e", address: "10.0.0.5:7946", id: "id-e")
        let first = m.receive(from(c, [signed(d, .alive, 5, by: "d"), signed(e, .alive, 5, by: "c")]), now: 0)
        #expect(first.contains(.askCertificates(names: ["d", "e"], from: c.address)))
        #expect(m.members["d"] == nil && m.members["e"] == nil)
        // Passed on again within the second: not asked again.
        let again = m.receive(from(c, [signed(d, .alive, 5, by: "d")]), now: 500)
        #expect(!again.contains { if case .askCertificates = $0 { true } else { false } })
        let later = m.receive(from(c, [signed(d, .alive, 5, by: "d")]), now: 1_000)
        #expect(later.contains(.askCertificates(names: ["d"], from: c.address)))
        keys.learn("d")
        keys.learn("e")
        let learned = m.certificatesLearned(["d", "e"], now: 1_100)
        #expect(m.members["d"]?.state == .alive && m.members["d"]?.incarnation == 5)
        #expect(learned.contains { if case .changed(let member) = $0 { member.info.name == "d" } else { false } })
        #expect(m.members["e"] == nil && m.forgedRecords == 1)
        #expect(!learned.contains { if case .askCertificates = $0 { true } else { false } })
    }

    /// A node signs its record again at each new incarnation. A sync list signs only its sender's
    /// record (signatures of 1,000 members every 10 s would triple the bytes): a record in it that
    /// the receiver does not hold is asked for signed, and gossip passes records on signed.
    @Test func recordsTravelWithTheirSignatures() {
        var m = nodeA()
        m.setConfigDigest("new")
        let mine = Membership.record(m.me, incarnation: m.incarnation)
        #expect(m.mySignature == TestKeys.signature(mine, by: "a"))
        let snapshot = m.snapshot()
        #expect(snapshot.map(\.info.name) == ["a", "b", "c"])
        #expect(snapshot[0].signature == m.mySignature && snapshot.dropFirst().allSatisfy(\.signature.isEmpty))
        var z = Membership(me: .init(name: "z", address: "10.0.0.26:7946"), seeds: [], signer: TestKeys("z"))
        let got = z.receive(.init(from: m.me, incarnation: m.incarnation, signature: m.mySignature,
                                  message: .sync(members: snapshot, reply: true), updates: []), now: 0)
        #expect(z.members.keys.sorted() == ["a"] && z.forgedRecords == 0)
        let ask = got.compactMap { action -> Membership.Envelope? in
            if case .send(let to, let e) = action, to == a.address, case .recordsAsk(["b", "c"]) = e.message { return e }
            return nil
        }
        #expect(ask.count == 1)
        // a answers with the records signed; z takes them.
        let answer = m.receive(ask[0], now: 1).compactMap { action -> Membership.Envelope? in
            if case .send(let to, let e) = action, to == z.me.address, case .sync(_, true) = e.message { return e }
            return nil
        }
        #expect(answer.count == 1)
        _ = z.receive(answer[0], now: 2)
        #expect(z.members.keys.sorted() == ["a", "b", "c"] && z.forgedRecords == 0)
        // A sync list of records z holds changes nothing and asks nothing.
        let again = z.receive(.init(from: m.me, incarnation: m.incarnation, signature: m.mySignature,
                                    message: .sync(members: snapshot, reply: true), updates: []), now: 3)
        #expect(!again.contains { if case .send(_, let e) = $0, case .recordsAsk = e.message { true } else { false } })
        // What z passes on of b (a suspicion from its own probe, say) carries b's signature.
        let b1 = z.members["b"]!
        #expect(z.update(b1, .suspect).signature == TestKeys.signature(Membership.record(b, incarnation: 1), by: "b"))
    }
}
