import GateMeshLimits
import Testing

/// What a peer's counter frame may bring (`FigureAuthority`), and what a delta carries.
@Suite struct FigureAuthorityTests {
    let key = CounterMap.Key(rule: "budget", scope: "", bucket: 1)

    /// An entry with figures written by a (this node, run 2, earlier run 1), b (the sender), c (live)
    /// and d (not live here).
    func entry() -> CounterMap.Entry {
        CounterMap.Entry(
            spent: GCounter(slots: ["a": 1, "b": 2, "c": 3, "d": 4]),
            reserved: VersionedSlots(slots: ["b": .init(value: 5, version: 1), "c": .init(value: 0, version: 1 << 60)]),
            rights: RightsEntry(granted: [.init(from: "b/1", to: "a/2"): 10, .init(from: "c/1", to: "a/2"): 99],
                                used: ["a/2": 7, "a/1": 3, "c/1": 1],
                                returned: ["a/2": 1_000, "c/1": 1_000, "d/4": 6],
                                leases: [.init(from: "c/1", to: "a/2"): 5]))
    }

    @Test func aPeerBringsItsOwnFiguresAndThoseOfNodesNotLiveHere() {
        let authority = FigureAuthority(me: "a", myRun: "a/2", live: ["b", "c"])
        let (entries, dropped) = authority.admit([key: entry()], from: "b")
        let e = try! #require(entries[key])
        // Spend: its own, this node's (a restarted node learns its slot back), and d's (dead).
        #expect(e.spent.slots == ["a": 1, "b": 2, "d": 4])
        // A higher version of c's reservation would hide it: not taken from b.
        #expect(e.reserved.slots.keys.sorted() == ["b"])
        // b's grant to a stands; c's grant, use, return and lease come from c only; this node's
        // current run's figures from nobody else; its earlier run's from anyone.
        #expect(e.rights.granted == [.init(from: "b/1", to: "a/2"): 10])
        #expect(e.rights.used == ["a/1": 3])
        #expect(e.rights.returned == ["d/4": 6])
        #expect(e.rights.leases.isEmpty)
        #expect(dropped == 8)
    }

    /// An entry that holds only what the sender may bring passes as it is; one with nothing
    /// left is dropped; an unknown sender brings only the figures of nodes not live here.
    @Test func cleanEntriesPassAndEmptyOnesGo() {
        let authority = FigureAuthority(me: "a", myRun: "a/2", live: ["b", "c"])
        let own = CounterMap.Entry(spent: GCounter(slots: ["b": 2]))
        #expect(authority.admit([key: own], from: "b") == ([key: own], 0))
        #expect(authority.admit([key: CounterMap.Entry(spent: GCounter(slots: ["c": 9]))], from: "b").entries.isEmpty)
        #expect(authority.admit([key: entry()], from: nil).entries[key]?.spent.slots == ["a": 1, "d": 4])
    }

    /// A delta carries this node's figures only, of every run; entries with none are left out.
    @Test func ownEntriesCarryOnlyThisNodesFigures() {
        var counters = CounterMap(node: "a", epoch: 2)
        counters.merge([key: entry()])
        let other = CounterMap.Key(rule: "budget", scope: "x", bucket: 1)
        counters.merge([other: CounterMap.Entry(spent: GCounter(slots: ["c": 1]))])
        let own = counters.ownEntries([key, other])
        #expect(Array(own.keys) == [key])
        let e = try! #require(own[key])
        #expect(e.spent.slots == ["a": 1])
        #expect(e.reserved.slots.isEmpty)
        #expect(e.rights.granted.isEmpty && e.rights.leases.isEmpty)
        #expect(e.rights.used == ["a/2": 7, "a/1": 3] && e.rights.returned == ["a/2": 1_000])
        #expect(e == entry().filtered { node, _ in node == "a" })
    }
}

extension FigureAuthorityTests {
    /// A whole table or a digest's answer carries what the peer would take from this node: this
    /// node's figures, the peer's own, and those of writers not live here.
    @Test func whatIsSentToAPeerIsWhatItWouldTake() {
        // This node is b (the sender of `entry()`); a is the peer; c is live here, d is not.
        let sender = FigureAuthority(me: "b", myRun: "b/1", live: ["a", "c"])
        let sent = sender.forPeer([key: entry()], peer: "a")
        let e = try! #require(sent[key])
        #expect(e.spent.slots == ["a": 1, "b": 2, "d": 4])
        #expect(e.reserved.slots.keys.sorted() == ["b"])
        #expect(e.rights.granted == [.init(from: "b/1", to: "a/2"): 10])
        #expect(e.rights.used == ["a/2": 7, "a/1": 3] && e.rights.returned == ["a/2": 1_000, "d/4": 6])
        #expect(e.rights.leases.isEmpty)
        // The receiver takes all of it (its own current run's rights figures aside).
        let receiver = FigureAuthority(me: "a", myRun: "a/3", live: ["b", "c"])
        #expect(receiver.admit(sent, from: "b").dropped == 0)
    }
}

extension FigureAuthorityTests {
    /// A counter's owner writes a grant and a lease per holder; a delta carries only those that
    /// changed since what the peer was sent, so a hot counter's owner does not resend one figure
    /// per holder on every grant. Since 0 (a whole table) carries all of them.
    @Test func anOwnersDeltaCarriesOnlyTheGrantsThatChanged() {
        var owner = CounterMap(node: "o", epoch: 1)
        for h in 0..<100 { _ = owner.grantRights(key, 10, to: "n\(h)/1", limit: 1_000_000, now: 0) }
        let since = owner.version
        _ = owner.grantRights(key, 5, to: "n7/1", limit: 1_000_000, now: 1)
        _ = owner.takeRights(key, 0, now: 1)
        let delta = try! #require(owner.ownEntries(owner.changedKeys(since: since)!, since: since)[key])
        #expect(delta.rights.granted == [.init(from: "o/1", to: "n7/1"): 15])
        #expect(delta.rights.leases.keys.map(\.to) == ["n7/1"])
        let all = try! #require(owner.ownEntries([key])[key])
        #expect(all.rights.granted.count == 100 && all.rights.leases.count == 100)
        #expect(all == owner.entry(key)!.written(by: "o"))
        // The answer to n7's ask: the owner's figures with its grant and lease to n7 only.
        let answer = try! #require(owner.ownEntries([key], pairsTo: "n7/1")[key])
        #expect(answer.rights.granted == [.init(from: "o/1", to: "n7/1"): 15] && answer.rights.leases.count == 1)
        #expect(answer.rights.used == all.rights.used)
        // Renewed leases travel too (with their grant), and only the renewed ones.
        let before = owner.version
        owner.renewRightsLeases(now: 6_000, live: ["n3"], owns: { _ in true })
        let renewed = try! #require(owner.ownEntries([key], since: before)[key])
        #expect(renewed.rights.leases.keys.map(\.to) == ["n3/1"] && renewed.rights.granted.keys.map(\.to) == ["n3/1"])
    }

    /// A restarted owner's grants of an earlier run, learnt back from a peer or its journal, are
    /// its own figures: a whole table carries them, whatever path they came by.
    @Test func earlierRunsGrantsLearntBackAreOwnFigures() {
        var owner = CounterMap(node: "o", epoch: 2)
        // Learnt from a peer: what run 1 granted p. From the journal: run 1 was granted 3 by q and
        // used none of it (a holder by q's grant only).
        owner.merge([key: CounterMap.Entry(rights: RightsEntry(granted: [.init(from: "o/1", to: "p/1"): 4],
                                                                leases: [.init(from: "o/1", to: "p/1"): 9]))])
        #expect(owner.ownEntries([key])[key] == owner.entry(key)!.written(by: "o"))
        #expect(owner.ownEntries([key])[key]?.rights.granted.count == 1)
        var restored = CounterMap(node: "o", epoch: 2)
        restored.restoreRights(key, RightsEntry(granted: [.init(from: "q/1", to: "o/1"): 3]))
        restored.returnEarlierRuns()
        #expect(restored.ownEntries([key])[key] == restored.entry(key)!.written(by: "o"))
        #expect(restored.ownEntries([key])[key]?.rights.returned == ["o/1": 3])
    }
}

extension FigureAuthorityTests {
    /// A peer that needs every entry gets this node's figures, and those of members this node
    /// holds as gone; not those of live writers, of writers not heard of yet, or its own.
    @Test func aNewPeerGetsThisNodesFiguresAndTheGones() {
        var counters = CounterMap(node: "b", epoch: 1)
        counters.merge([key: entry()])
        var sender = FigureAuthority(me: "b", myRun: "b/1", live: ["a", "c"])
        let own = counters.ownEntries(counters.keys)
        var read = false
        #expect(sender.forNewPeer(own: own, entries: { read = true; return counters.entries }) == own)
        #expect(!read, "the table was read with nobody gone")
        sender.gone = ["d"]
        let sent = try! #require(sender.forNewPeer(own: own, entries: { counters.entries })[key])
        #expect(sent.spent.slots == ["b": 2, "d": 4])
        #expect(sent.rights.returned == ["d/4": 6] && sent.rights.granted == [.init(from: "b/1", to: "a/2"): 10])
        #expect(sent.rights.used.isEmpty)
    }
}
