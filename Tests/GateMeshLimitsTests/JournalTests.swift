@testable import GateMeshLimits
import Testing

/// The reservation journal's format and replay, on generated inputs.
@Suite struct JournalTests {
    func record(_ rng: inout SplitMix, epoch: UInt64) -> JournalRecord {
        let id = UInt64.random(in: 1...40, using: &rng)
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            let held = (0..<Int.random(in: 0...3, using: &rng)).map { i in
                JournalRecord.Held(key: .init(rule: "r\(i)", scope: Bool.random(using: &rng) ? "" : "team=é\(id)", bucket: Int64.random(in: -5...5, using: &rng)),
                                   amount: Int64.random(in: 0...1_000_000_000, using: &rng))
            }
            return .open(.init(epoch: epoch, id: id), held)
        case 1:
            return .close(.init(epoch: epoch, id: id))
        default:
            return .settling(.init(epoch: epoch, batch: UInt64.random(in: 1...5, using: &rng)),
                             ids: (0..<Int.random(in: 0...4, using: &rng)).map { _ in UInt64.random(in: 1...40, using: &rng) })
        }
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
