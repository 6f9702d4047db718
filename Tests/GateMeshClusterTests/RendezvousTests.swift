import GateMeshCluster
import Testing

@Suite struct RendezvousTests {
    let keys = (0..<20_000).map { "key-\($0)" }

    @Test func everyMemberOwnsAboutAnEqualShare() {
        let members = (1...5).map { "node-\($0)" }
        var counts: [String: Int] = [:]
        for k in keys { counts[Rendezvous.owner(of: k, among: members)!, default: 0] += 1 }
        #expect(counts.count == 5)
        for (_, n) in counts { #expect(abs(n - 4000) < 400, "\(counts)") }
        #expect(Rendezvous.owner(of: "x", among: []) == nil)
        #expect(Rendezvous.owner(of: "x", among: members) == Rendezvous.owner(of: "x", among: members.reversed()), "order does not matter")
    }

    @Test func onlyTheLeaversKeysMoveAndAJoinerTakesOnlyItsShare() {
        let before = (1...5).map { "node-\($0)" }
        let after = before.filter { $0 != "node-3" }
        var moved = 0
        for k in keys {
            let a = Rendezvous.owner(of: k, among: before)!, b = Rendezvous.owner(of: k, among: after)!
            if a != b {
                moved += 1
                #expect(a == "node-3", "a key moved that node-3 did not own")
            }
        }
        #expect(abs(moved - 4000) < 400)
        let joined = before + ["node-6"]
        let taken = keys.filter { Rendezvous.owner(of: $0, among: before) != Rendezvous.owner(of: $0, among: joined) }
        #expect(taken.allSatisfy { Rendezvous.owner(of: $0, among: joined) == "node-6" })
        #expect(abs(taken.count - keys.count / 6) < 400)
        let shares = Rendezvous.shares(among: before)
        #expect(shares.values.allSatisfy { abs($0 - 0.2) < 0.03 })
    }
}
