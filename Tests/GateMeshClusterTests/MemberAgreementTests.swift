import GateMeshCluster
import GateMeshCore
import Testing

@Suite struct MemberAgreementTests {
    /// The digest is the set's, whatever the order or repeats, and differs for another set.
    @Test func theDigestIsTheSets() {
        #expect(MemberAgreement.digest(of: ["b", "a", "a"]) == MemberAgreement.digest(of: ["a", "b"]))
        #expect(MemberAgreement.digest(of: ["a", "b"]).count == 2)
        // Pinned (FNV-1a over "id0", 0x1F, "id1", 0x1F, computed outside Swift): nodes of
        // different versions compare digests.
        #expect(MemberAgreement.digest(of: ["id1", "id0"]).digest == 0x983b_0bd6_2e80_748c)
        #expect(MemberAgreement.digest(of: ["a", "b"]).digest != MemberAgreement.digest(of: ["a", "b", "c"]).digest)
        // Ids are separated: "ab" is not "a" then "b".
        #expect(MemberAgreement.digest(of: ["ab"]).digest != MemberAgreement.digest(of: ["a", "b"]).digest)
    }

    /// Agreement needs every live peer's digest to be this node's, for `settleMs`; a peer that
    /// learns of another member breaks it until this node holds the same set.
    @Test func agreementNeedsEveryLivePeerAndHoldsForTheSettlingTime() throws {
        var a = MemberAgreement(members: ["a", "b", "c"], alone: false)
        let r1 = a.agrees(live: [], now: 0)
        #expect(!r1, "never agreed with anyone: a node whose seeds do not answer grants nothing")
        _ = a.heard(MemberAgreement.digest(of: ["a", "b", "c"]).digest, from: "b")
        let r2 = a.agrees(live: ["b", "c"], now: 0)
        #expect(!r2, "c has not said")
        _ = a.heard(MemberAgreement.digest(of: ["a", "b"]).digest, from: "c")
        let r3 = a.agrees(live: ["b", "c"], now: 100)
        #expect(!r3, "c holds another set")
        _ = a.heard(MemberAgreement.digest(of: ["a", "b", "c"]).digest, from: "c")
        let r4 = a.agrees(live: ["b", "c"], now: 200)
        #expect(!r4)
        let r5 = a.agrees(live: ["b", "c"], now: 1_199)
        #expect(!r5, "not yet for a second")
        let r6 = a.agrees(live: ["b", "c"], now: 1_200)
        #expect(r6)
        // b hears of d: until a holds d too, and then for a second, no agreement.
        _ = a.heard(MemberAgreement.digest(of: ["a", "b", "c", "d"]).digest, from: "b")
        let r7 = a.agrees(live: ["b", "c"], now: 1_300)
        #expect(!r7)
        a.setMembers(["a", "b", "c", "d"])
        _ = a.heard(MemberAgreement.digest(of: ["a", "b", "c", "d"]).digest, from: "c")
        _ = a.heard(MemberAgreement.digest(of: ["a", "b", "c", "d"]).digest, from: "d")
        let r8 = a.agrees(live: ["b", "c", "d"], now: 1_400)
        #expect(!r8)
        let r9 = a.agrees(live: ["b", "c", "d"], now: 2_400)
        #expect(r9)
        // Every peer gone: the set last agreed on stands.
        let r10 = a.agrees(live: [], now: 3_000)
        #expect(r10)
        // A node with no peers configured agrees with itself.
        var alone = MemberAgreement(members: ["a"], alone: true)
        let r11 = alone.agrees(live: [], now: 0)
        #expect(r11)
        let r12 = alone.due(live: ["b"], now: 0)
        #expect(r12.isEmpty)
    }

    /// The digest goes to each live peer once per change (spaced), and again every `resendMs` to a
    /// peer that holds another set; the frame decodes to what was sent, and a bad one is an error.
    @Test func theDigestGoesWhereItIsNeeded() throws {
        var a = MemberAgreement(members: ["a", "b"], alone: false)
        let r13 = a.due(live: ["b"], now: 0)
        #expect(r13 == ["b"])
        let r14 = a.due(live: ["b"], now: 10)
        #expect(r14.isEmpty)
        a.setMembers(["a", "b", "c"])
        let r15 = a.due(live: ["b", "c"], now: 50)
        #expect(r15 == ["c"], "b had one 50 ms ago: it waits for the spacing")
        let r16 = a.due(live: ["b", "c"], now: 200)
        #expect(r16 == ["b"])
        // b holds another set: it gets the digest again after resendMs; c said it holds ours.
        _ = a.heard(a.digest, from: "c")
        _ = a.heard(1, from: "b")
        let r17 = a.due(live: ["b", "c"], now: 1_000)
        #expect(r17.isEmpty)
        let r18 = a.due(live: ["b", "c"], now: 1_200)
        #expect(r18 == ["b"])
        // A peer that is gone and comes back gets it again.
        a.forget("c")
        let r19 = a.due(live: ["c"], now: 1_300)
        #expect(r19 == ["c"])
        // The frame decodes to what was sent, and asks for the peer's digest when none came.
        let toC = try MemberAgreement.decode(a.frame(to: "c").payload), toB = try MemberAgreement.decode(a.frame(to: "b").payload)
        #expect(toC.digest == a.digest && toC.count == 3 && toC.wantsReply)
        #expect(!toB.wantsReply)
        #expect(throws: DecodeError.self) { try MemberAgreement.decode(a.frame(to: "b").payload + [0]) }
        #expect(throws: DecodeError.self) { try MemberAgreement.decode(Array(a.frame(to: "b").payload.prefix(5))) }
        var bad = a.frame(to: "b").payload
        bad[bad.count - 1] = 2
        #expect(throws: DecodeError.self) { try MemberAgreement.decode(bad) }
    }

    /// A node restarted before its peers noticed it was gone has forgotten their digests, and they
    /// still hold its (the same set): its frames ask for theirs back, and they answer.
    @Test func aRestartedNodeGetsItsPeersDigestsBack() throws {
        let set = ["a", "b"]
        var a = MemberAgreement(members: set, alone: false), b = MemberAgreement(members: set, alone: false)
        _ = a.due(live: ["b"], now: 0)
        _ = b.due(live: ["a"], now: 0)
        _ = a.heard(b.digest, from: "b")
        _ = b.heard(a.digest, from: "a")
        let before = a.agrees(live: ["b"], now: 0), agreed = a.agrees(live: ["b"], now: 1_000)
        #expect(!before && agreed)
        // a restarts; b never saw it gone and sends nothing (its digest went, and a's is the same).
        a = MemberAgreement(members: set, alone: false)
        let bSends = b.due(live: ["a"], now: 2_000)
        #expect(bSends.isEmpty)
        let sent = a.due(live: ["b"], now: 2_000)
        #expect(sent == ["b"])
        let frame = try MemberAgreement.decode(a.frame(to: "b").payload)
        #expect(frame.wantsReply)
        let reply = b.heard(frame.digest, from: "a", wantsReply: frame.wantsReply)
        #expect(reply)
        let back = try MemberAgreement.decode(b.frame(to: "a").payload)
        #expect(!back.wantsReply)
        _ = a.heard(back.digest, from: "b", wantsReply: back.wantsReply)
        _ = a.agrees(live: ["b"], now: 2_100)
        let again = a.agrees(live: ["b"], now: 3_100)
        #expect(again)
    }
}
