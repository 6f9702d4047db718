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
