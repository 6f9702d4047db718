import GateMeshCore
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

@Suite struct SeedTests {
    @Test func namesWithSeveralAddressesStandForThemAll() {
        let seeds = ["peers.gatemesh.internal:7946", "10.0.0.9:7946", "one.internal:7000", "[fd00::1]:7946"]
        #expect(Seeds.names(in: seeds) == ["peers.gatemesh.internal", "one.internal"])
        let out = Seeds.expand(seeds, resolved: [
            "peers.gatemesh.internal": ["10.0.0.5", "10.0.0.6", "fd00::7", "10.0.0.9"],
            "one.internal": ["10.0.0.8"],
        ])
        #expect(out == ["10.0.0.5:7946", "10.0.0.6:7946", "[fd00::7]:7946", "10.0.0.9:7946", "one.internal:7000", "[fd00::1]:7946"])
    }

    @Test func anUnresolvedNameIsKeptAsWritten() {
        #expect(Seeds.expand(["peers.internal:7946"], resolved: [:]) == ["peers.internal:7946"])
        #expect(Seeds.expand(["peers.internal:7946"], resolved: ["peers.internal": []]) == ["peers.internal:7946"])
    }

    @Test func addressesAreToldFromNames() {
        #expect(Seeds.isAddress("127.0.0.1"))
        #expect(Seeds.isAddress("::1"))
        #expect(!Seeds.isAddress("node-1.internal"))
        #expect(!Seeds.isAddress("1.2.3.4.example"))
        #expect(!Seeds.isAddress("300.1.1.1"))
        #expect(Seeds.split("[::1]:7946")! == ("::1", 7946))
        #expect(Seeds.split("nohost") == nil)
        #expect(Seeds.split(":7946") == nil)
    }

    @Test func membershipDropsItsOwnAddressFromNewSeeds() {
        var m = Membership(me: .init(name: "a", address: "10.0.0.5:7946", region: "r"), seeds: [])
        m.setSeeds(["10.0.0.5:7946", "10.0.0.6:7946"])
        #expect(m.seeds == ["10.0.0.6:7946"])
    }
}
