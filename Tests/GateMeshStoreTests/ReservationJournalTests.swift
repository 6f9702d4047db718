import Foundation
import GateMeshLimits
import GateMeshStore
import Testing

/// The journal on real files: what a run leaves is what the next one reads, whatever point the
/// writer was killed at.
@Suite final class ReservationJournalTests {
    private let dir = NSTemporaryDirectory() + "gatemesh-journal-test-\(UUID().uuidString)"
    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func held(_ amount: Int64, scope: String = "") -> [JournalRecord.Held] {
        [.init(key: .init(rule: "daily", scope: scope, bucket: 9), amount: amount)]
    }

    @Test func aKilledRunLeavesItsOpenReservationsForTheNextRun() throws {
        do {
            let run = try ReservationJournal(directory: dir, epoch: 1)
            run.open(id: 1, held: held(100))
            run.open(id: 2, held: held(200))
            run.open(id: 3, held: held(300))
            run.close(id: 2)
            let mark = run.settling(ids: [3])
            #expect(mark == SpendBatchMark(epoch: 1, batch: 1))
            // No `committed`, no deinit flush: the process dies here.
        }
        let next = try ReservationJournal(directory: dir, epoch: 2)
        // Batch 1 of run 1 was not committed: reservation 3's charge is not on disk either.
        #expect(next.previous.unsettled(committed: nil, recoveredThrough: 0).map(\.ref.id) == [1, 3])
        #expect(next.previous.unsettled(committed: .init(epoch: 1, batch: 1), recoveredThrough: 0).map(\.ref.id) == [1])
        #expect(next.previous.unsettled(committed: nil, recoveredThrough: 1).isEmpty)
        next.forgetPrevious()
        let third = try ReservationJournal(directory: dir, epoch: 3)
        #expect(third.previous.open.isEmpty)
    }

    @Test func aTornLastRecordIsIgnored() throws {
        do {
            let run = try ReservationJournal(directory: dir, epoch: 1)
            run.open(id: 1, held: held(100))
            run.open(id: 2, held: held(200))
        }
        // Cut the last record in half, as a write killed midway would.
        let path = dir + "/journal-1.log"
        let bytes = try #require(FileManager.default.contents(atPath: path))
        try bytes.prefix(bytes.count - 5).write(to: URL(fileURLWithPath: path))
        let next = try ReservationJournal(directory: dir, epoch: 2)
        #expect(next.previous.open.keys.map(\.id) == [1])
        #expect(next.tornBytes > 0)
    }

    @Test func rotationKeepsOnlyWhatIsOpenAndLosesNothing() throws {
        do {
            let run = try ReservationJournal(directory: dir, epoch: 5, rotateBytes: 4096)
            for id in UInt64(1)...2000 {
                run.open(id: id, held: held(Int64(id), scope: "team=t\(id % 7)"))
                if id % 10 != 0 { run.close(id: id) }
            }
            let mark = run.settling(ids: [10, 20])
            run.committed(mark)
            _ = run.settling(ids: [30])
            #expect(run.segmentBytes < 4096 + 200 * 64)
            #expect(run.openCount == 198)
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("journal-") }
        #expect(segments.count == 1, "rotation deletes the segment it replaced")
        let next = try ReservationJournal(directory: dir, epoch: 6)
        let open = next.previous.unsettled(committed: .init(epoch: 5, batch: 1), recoveredThrough: 0)
        #expect(open.count == 198)
        #expect(open.first?.ref == ReservationRef(epoch: 5, id: 30) && open.first?.held == held(30, scope: "team=t2"))
        #expect(next.previous.unsettled(committed: .init(epoch: 5, batch: 2), recoveredThrough: 0).count == 197)
    }

    /// The rights a run used are in the `open` records of its reservations; rotation drops the
    /// records of closed ones, so it carries the run's latest own figures of each counter on.
    @Test func rotationKeepsTheRightsTheRunUsed() throws {
        let key = CounterMap.Key(rule: "daily", scope: "", bucket: 9)
        do {
            let run = try ReservationJournal(directory: dir, epoch: 7, rotateBytes: 4096)
            for id in UInt64(1)...2000 {
                let own = JournalRecord.OwnRights(used: Int64(id) * 10, refunded: Int64(id), returned: 0)
                run.open(id: id, held: [.init(key: key, amount: 10, own: own)])
                run.close(id: id)
            }
            // Then only reservations without rights, enough for rotations to drop every record
            // that carried the figures.
            for id in UInt64(2001)...4000 {
                run.open(id: id, held: held(10, scope: "team=x"))
                run.close(id: id)
            }
            #expect(run.segmentBytes < 4096 + 200)
        }
        let next = try ReservationJournal(directory: dir, epoch: 8)
        let rights = try #require(next.previous.rights(node: "n")[key])
        #expect(rights.used["n/7"] == 20_000 && rights.refunded["n/7"] == 2_000)
    }
}
