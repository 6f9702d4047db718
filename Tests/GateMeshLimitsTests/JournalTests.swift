@testable import GateMeshLimits
import Testing

/// The reservation journal's format and replay, on generated inputs.
@Suite struct JournalTests {
    func record(_ rng: inout SplitMix, epoch: UInt64) -> JournalRecord {
        let id = UInt64.random(in: 1...40, using: &rng)
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:
            let held = (0..<Int.random(in: 0...3, using: &rng)).map { i in
                JournalRecord.Held(key: .init(rule: "r\(i)", scope: Bool.random(using: &rng) ? "" : "team=é\(id)", bucket: Int64.random(in: -5...5, using: &rng)),
                                   amount: Int64.random(in: 0...1_000_000_000, using: &rng),
                                   own: Bool.random(using: &rng) ? nil : .init(used: Int64.random(in: 0...500, using: &rng), refunded: 3, returned: 0))
            }
            return .open(.init(epoch: epoch, id: id), held)
        case 1:
            return .close(.init(epoch: epoch, id: id))
        case 2:
            return .rights(.init(rule: "r", scope: "team=\(id % 3)", bucket: 7), rights(&rng))
        default:
            return .settling(.init(epoch: epoch, batch: UInt64.random(in: 1...5, using: &rng)),
                             ids: (0..<Int.random(in: 0...4, using: &rng)).map { _ in UInt64.random(in: 1...40, using: &rng) })
        }
    }

    func rights(_ rng: inout SplitMix) -> RightsEntry {
        func counts() -> [String: Int64] {
            Dictionary(uniqueKeysWithValues: (0..<Int.random(in: 0...2, using: &rng)).map { i in ("a/\(i)", Int64.random(in: 0...500, using: &rng)) })
        }
        var granted: [RightsEntry.Pair: Int64] = [:], leases: [RightsEntry.Pair: Int64] = [:]
        for i in 0..<Int.random(in: 0...2, using: &rng) {
            granted[.init(from: "a/1", to: "b/\(i)")] = Int64.random(in: 0...500, using: &rng)
            leases[.init(from: "a/1", to: "b/\(i)")] = Int64.random(in: 0...1_000_000, using: &rng)
        }
        return RightsEntry(granted: granted, used: counts(), refunded: counts(), returned: counts(), leases: leases)
    }

    /// Replaying rights records keeps each figure's largest value, whatever their order: records
    /// written outside the admission lock may land in the file out of order.
    @Test(arguments: 0..<20)
    func replayKeepsTheLargestOfEachRightsFigureWhateverTheOrder(_ seed: UInt64) {
        var rng = SplitMix(state: seed)
        let key = CounterMap.Key(rule: "r", scope: "", bucket: 1)
        let records = (0..<12).map { _ in rights(&rng) }
        var expected = RightsEntry()
        for r in records { expected.merge(r) }
        var replay = JournalReplay(), shuffled = JournalReplay()
        for r in records { replay.apply(.rights(key, r)) }
        for r in records.shuffled(using: &rng) { shuffled.apply(.rights(key, r)) }
        #expect(replay.rights[key] == expected && shuffled.rights[key] == expected)
        // The own figures an admission writes are filed under the run's epoch and named with the
        // node's id when read.
        var withOpen = replay
        withOpen.apply(.open(.init(epoch: 9, id: 1), [.init(key: key, amount: 5, own: .init(used: 700, refunded: 20, returned: 1))]))
        withOpen.apply(.open(.init(epoch: 9, id: 2), [.init(key: key, amount: 5, own: .init(used: 650, refunded: 30, returned: 1))]))
        let named = withOpen.rights(node: "n")[key]!
        #expect(named.used["n/9"] == 700 && named.refunded["n/9"] == 30 && named.returned["n/9"] == 1)
        #expect(named.used.keys.allSatisfy { !$0.hasPrefix("/") })
    }

    @Test(arguments: 0..<20)
    func framesRoundTripAndATruncatedJournalReadsAsAPrefix(_ seed: UInt64) {
        var rng = SplitMix(state: seed)
        let records = (0..<30).map { _ in record(&rng, epoch: 3) }
        var bytes: [UInt8] = []
        var ends: [Int] = []
        for r in records {
            bytes += JournalCodec.frame(r)
            ends.append(bytes.count)
        }
        let whole = JournalCodec.records(in: bytes)
        #expect(whole.records == records && whole.valid == bytes.count)
        // Cut anywhere: the records read are exactly those whose frames are whole.
        for _ in 0..<20 {
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            let read = JournalCodec.records(in: Array(bytes.prefix(cut)))
            let whole = ends.filter { $0 <= cut }.count
            #expect(read.records == Array(records.prefix(whole)))
            #expect(read.valid == (whole == 0 ? 0 : ends[whole - 1]))
        }
        // A flipped byte ends the read at the frame it damaged, never reads garbage.
        var damaged = bytes
        let at = Int.random(in: 0..<bytes.count, using: &rng)
        damaged[at] ^= 0x5A
        let read = JournalCodec.records(in: damaged)
        let before = ends.filter { $0 <= at }.count
        #expect(read.records.count == before && read.records == Array(records.prefix(before)))
    }

    @Test(arguments: 0..<20)
    func replayChargesExactlyTheOpenReservationsWhoseBatchWasNotCommitted(_ seed: UInt64) {
        var rng = SplitMix(state: seed)
        let records = (0..<60).map { _ in record(&rng, epoch: 4) }
        var replay = JournalReplay()
        for r in records { replay.apply(r) }
        let committed = SpendBatchMark(epoch: 4, batch: UInt64.random(in: 0...5, using: &rng))
        // A model: per id, the last open after which no close came, and whether a committed
        // settling batch named it after that open.
        var expected: [UInt64] = []
        for id in UInt64(1)...40 {
            var open = false, settled = false
            for r in records {
                switch r {
                case .open(let ref, _) where ref.id == id: open = true; settled = false
                case .close(let ref) where ref.id == id: open = false; settled = false
                case .settling(let mark, let ids) where ids.contains(id): if mark <= committed { settled = true }
                default: break
                }
            }
            if open && !settled { expected.append(id) }
        }
        #expect(replay.unsettled(committed: committed, recoveredThrough: 3).map(\.ref.id) == expected)
        #expect(replay.unsettled(committed: committed, recoveredThrough: 4).isEmpty)
    }
}
