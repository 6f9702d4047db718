@testable import GateMeshCluster
import GateMeshCore
import GateMeshLimits
import Testing

@Suite struct ReplicationTests {
    @Test func countersRoundTripAndBadPayloadsFail() throws {
        var map = CounterMap(node: "a")
        map.spend(.init(rule: "daily", scope: "team=red", bucket: 20_000), 5)
        map.addReserved(.init(rule: "daily", scope: "team=red", bucket: 20_000), 3)
        map.merge([.init(rule: "rpm", scope: "", bucket: -1): CounterMap.Entry(spent: GCounter(slots: ["b": 9]))])
        let entries = map.entries
        #expect(try CountersCodec.decode(CountersCodec.encode(entries)) == entries)
        let wire = CountersCodec.encode(entries)
        for cut in 0..<wire.count { #expect(throws: DecodeError.self) { try CountersCodec.decode(Array(wire.prefix(cut))) } }
        let d = CountersCodec.digest(map)
        #expect(try CountersCodec.decodeDigest(CountersCodec.encodeDigest(d)) == d)
    }

    @Test func largeDeltasAreCutIntoFrames() throws {
        var map = CounterMap(node: "a")
        for i in 0..<1234 { map.spend(.init(rule: "r", scope: "s\(i)", bucket: 1), 1) }
        let frames = Replicator.frames(map.delta(since: 0))
        #expect(frames.count == 3)
        var merged = CounterMap(node: "b")
        for f in frames { merged.merge(try CountersCodec.decode(f.payload)) }
        #expect(merged.entries == map.entries)
    }

    /// A node's reservations hold for the others while their lease does (renewed while they are
    /// in flight); a dead node's stop counting after the lease and the drift, and no other node
    /// ever writes its figures.
    @Test func reservationsOfANodeThatStopsRenewingLapseByLease() throws {
        let k = CounterMap.Key(rule: "r", scope: "", bucket: 1)
        var a = CounterMap(node: "a"), b = CounterMap(node: "b")
        a.renewLeases(now: 0)
        b.renewLeases(now: 0)
        a.addReserved(k, 40)
        b.merge(try CountersCodec.decode(CountersCodec.encode(a.delta(since: 0))))
        #expect(b.total(k, now: 10_000) == 40)
        // a renews at 10 s (its figure would lapse within half a lease): still counted at 20 s.
        a.renewLeases(now: 10_000)
        b.merge(a.delta(since: 0))
        #expect(b.total(k, now: 20_000) == 40)
        // a dies at 10 s: its lease ran to 25 s, plus 1 s of drift.
        #expect(b.total(k, now: 26_000) == 40)
        #expect(b.total(k, now: 26_001) == 0)
        #expect(a.total(k, now: 1_000_000) == 40, "a node's own figure never lapses for itself")
        // A lapsed figure is still a's: if a comes back to life, its next write counts again.
        a.renewLeases(now: 30_000)
        a.addReserved(k, 2)
        b.merge(a.delta(since: 0))
        #expect(b.total(k, now: 30_001) == 42)
        // Nobody else's version of a's slot is taken by a, whatever its version.
        var forged = a.entries
        forged[k]?.reserved.set(node: "a", value: 0, version: a.version + 100)
        a.merge(forged)
        #expect(a.total(k, now: 30_001) == 42 && a.entry(k)?.reserved.slots["a"]?.value == 42)
    }

    /// The digests kept up to date from the change log equal digests computed from scratch, and
    /// deltas read from the log carry every change (a replica fed only deltas ends up equal),
    /// through spending, reservations, rights, merges, dropped buckets and a log cut short.
    @Test func incrementalDigestsAndLoggedDeltasMatchTheWholeTable() {
        var a = CounterMap(node: "a", startVersion: 10)
        var c = CounterMap(node: "c")
        var rng = SplitMix64(seed: 5)
        var sent: UInt64 = 0
        for step in 0..<20_000 {
            let key = CounterMap.Key(rule: "r\(rng.next() % 3)", scope: "s\(rng.next() % 50)", bucket: Int64(rng.next() % 4))
            switch rng.next() % 6 {
            case 0: a.spend(key, Int64(rng.next() % 10) + 1)
            case 1: a.addReserved(key, Int64(rng.next() % 10) - 3)
            case 2: a.merge([key: CounterMap.Entry(spent: GCounter(slots: ["b": Int64(step)]))])
            case 3: a.updateRights(key) { $0.grant(5, from: "a/0", to: "b/0", limit: 1_000_000) }
            case 4: a.settle(key, unreserve: 1, spend: 2)
            default:
                if step % 97 == 0 {
                    let gone = Int64(rng.next() % 4)
                    a.removeBuckets { _, bucket in bucket == gone }
                    c.removeBuckets { _, bucket in bucket == gone }
                }
            }
            if step % 500 == 0 {
                #expect(a.digests() == CountersCodec.digest(a), "at step \(step)")
                // Now and then from far back (the log no longer reaches: the whole table is read).
                c.merge(a.delta(since: step % 3000 == 0 ? 11 : sent))
                sent = a.version
            }
        }
        c.merge(a.delta(since: sent))
        #expect(a.digests() == CountersCodec.digest(a))
        #expect(c.entries.filter { a.entry($0.key) != nil } == a.entries)
    }

    @Test func eachRunStartsAboveEveryEarlierRunsVersions() {
        #expect(CounterMap.startVersion(epoch: 1) > UInt64(4_102_444_800_000) << 10, "above the clock-based versions of earlier releases (to 2100)")
        for epoch in [UInt64(1), 2, 1000, 500_000] {
            #expect(CounterMap.startVersion(epoch: epoch + 1) - CounterMap.startVersion(epoch: epoch) == 1 << 44)
        }
        #expect(CounterMap.startVersion(epoch: 1 << 30) == CounterMap.startVersion(epoch: (1 << 20) - 257), "no overflow")
    }

    @Test func theDigestSeesEveryFigure() throws {
        let k = CounterMap.Key(rule: "r", scope: "", bucket: 1)
        var a = CounterMap(node: "a")
        a.addReserved(k, 5)
        #expect(CountersCodec.digest(a) == CountersCodec.digest(a))
        // Same version, another value: a divergence only the values show.
        let slot = try #require(a.entry(k)?.reserved.slots["a"])
        var b = CounterMap(node: "c"), c = CounterMap(node: "c")
        b.merge([k: CounterMap.Entry(reserved: VersionedSlots(slots: ["a": .init(value: 6, version: slot.version, leaseUntil: slot.leaseUntil)]))])
        c.merge(a.entries)
        #expect(CountersCodec.digest(b) != CountersCodec.digest(c))
    }

    @Test func aRestartedNodeDropsItsOldReservationsWhenPeersSendThemBack() {
        var before = CounterMap(node: "a", startVersion: 100)
        let k = CounterMap.Key(rule: "r", scope: "", bucket: 1)
        before.addReserved(k, 7)
        before.spend(k, 3)
        var after = CounterMap(node: "a", startVersion: 1_000_000)
        after.merge(before.entries)
        #expect(after.entry(k)?.reserved.value == 0 && after.entry(k)?.spent.value == 3)
        #expect(after.delta(since: 0)[k]?.reserved.slots["a"]?.version == 1_000_000, "the zero is gossiped")
    }

    /// Five replicas spend concurrently; deltas go out every 150 ms with 20 % of frames lost and
    /// random delays; digests repair the rest. All converge to the same state, whose total is the
    /// sum of what each spent: nothing lost, nothing counted twice.
    @Test func replicasConvergeDespiteLossDuplicatesAndReordering() throws {
        let names = (0..<5).map { "n\($0)" }
        var maps = names.map { CounterMap(node: $0) }
        var replicators = names.indices.map { Replicator(seed: UInt64($0)) }
        var rng = SplitMix64(seed: 99)
        var inFlight: [(at: Int64, to: Int, from: Int, frame: Frame)] = []
        var spentBy = Array(repeating: Int64(0), count: 5)
        let keys = (0..<4).map { CounterMap.Key(rule: "r\($0 % 2)", scope: "team=\($0)", bucket: 1) }
        var now: Int64 = 0
        func deliver(_ f: Frame, to i: Int, from j: Int) throws {
            switch f.kind {
            case .counters: maps[i].merge(try CountersCodec.decode(f.payload))
            case .digest:
                for reply in replicators[i].answer(digest: try CountersCodec.decodeDigest(f.payload), counters: &maps[i]) ?? [] {
                    inFlight.append((now + 30, j, i, reply))
                }
            default: break
            }
        }
        for step in 0..<400 {
            now += 25
            if step < 200 {
                let i = Int(rng.next() % 5)
                let amount = Int64(rng.next() % 100) + 1
                maps[i].spend(keys[Int(rng.next() % 4)], amount)
                spentBy[i] += amount
            }
            for i in 0..<5 {
                let peers = names.indices.filter { $0 != i }.map { names[$0] }
                for (peer, frame) in replicators[i].tick(now: now, counters: &maps[i], peers: peers) {
                    guard rng.next() % 100 >= 20 else { continue }
                    let to = names.firstIndex(of: peer)!
                    inFlight.append((now + Int64(rng.next() % 200), to, i, frame))
                    if rng.next() % 10 == 0 { inFlight.append((now + 300, to, i, frame)) }  // a duplicate, late
                }
            }
            let due = inFlight.indices.filter { inFlight[$0].at <= now }
            for k in due.reversed() {
                let m = inFlight.remove(at: k)
                try deliver(m.frame, to: m.to, from: m.from)
            }
        }
        for i in 1..<5 { #expect(maps[i].entries == maps[0].entries, "replica \(i) differs") }
        let total = keys.reduce(Int64(0)) { $0 + (maps[0].entry($1)?.spent.value ?? 0) }
        #expect(total == spentBy.reduce(0, +))
    }
}

extension ReplicationTests {
    /// With more peers than the fanout, a change still reaches every peer within `everyPeerMs`
    /// (plus a delta interval): no peer forwards it, so random picks alone would leave some peer
    /// unheard for seconds. With nothing new, the sweep sends nothing.
    @Test func everyPeerHearsOfAChangeWithinTheSweepInterval() {
        let config = Replicator.Config()
        var replicator = Replicator(config: config, seed: 7)
        var counters = CounterMap(node: "a")
        let peers = (0..<300).map { "p\($0)" }
        var heard: [String: Int64] = [:]
        func run(from: Int64, to: Int64) {
            for now in stride(from: from, through: to, by: 10) {
                for (peer, _) in replicator.tick(now: now, counters: &counters, peers: peers) where heard[peer] == nil { heard[peer] = now }
            }
        }
        counters.spend(CounterMap.Key(rule: "r", scope: "", bucket: 1), 5)
        run(from: 0, to: 10_000)
        #expect(heard.count == peers.count)
        // A later change: every peer within a sweep and a delta interval of it.
        heard = [:]
        counters.spend(CounterMap.Key(rule: "r", scope: "", bucket: 1), 5)
        run(from: 10_010, to: 10_010 + config.everyPeerMs + config.deltaIntervalMs)
        #expect(heard.count == peers.count, "\(peers.count - heard.count) peers not reached")
        // Nothing new: no frames at all, digests aside.
        var sent = 0
        for now in stride(from: Int64(11_000), through: 13_000, by: 10) {
            sent += replicator.tick(now: now, counters: &counters, peers: peers).count { $0.1.kind == .counters }
        }
        #expect(sent == 0)
    }
}
