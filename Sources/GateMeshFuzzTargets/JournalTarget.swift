import GateMeshCore
import GateMeshLimits

extension FuzzTargets {
    /// A reservation journal file: reading stops at the first torn or corrupt frame, and the
    /// records read, written again, read back the same and cover every byte written.
    public static let journal = FuzzTarget(
        name: "journal",
        summary: "JournalCodec.records(in:), then re-framed records read back the same",
        run: { data in
            let (records, valid) = JournalCodec.records(in: data)
            FuzzCheck.require(valid <= data.count, "the journal's valid length is past its end")
            let rewritten = records.flatMap(JournalCodec.frame)
            let again = JournalCodec.records(in: rewritten)
            FuzzCheck.require(again.records == records && again.valid == rewritten.count, "journal records do not survive frame → read")
            var replay = JournalReplay()
            for record in records { replay.apply(record) }
            _ = replay.unsettled(committed: SpendBatchMark(epoch: 1, batch: 1), recoveredThrough: 0)
        },
        seeds: {
            let key = CounterMap.Key(rule: "budget", scope: "team=a", bucket: 1_700_000_000_000)
            let records: [JournalRecord] = [
                .open(ReservationRef(epoch: 3, id: 1), [.init(key: key, amount: 5_000)]),
                .open(ReservationRef(epoch: 3, id: 2), [.init(key: key, amount: 7, own: .init(used: 10, refunded: 1, returned: 2)),
                                                        .init(key: .init(rule: "rpm", scope: "", bucket: 0), amount: 1)]),
                .close(ReservationRef(epoch: 3, id: 1)),
                .settling(SpendBatchMark(epoch: 3, batch: 9), ids: [2, 5, 1 << 40]),
                .rights(key, rightsEntrySample),
            ]
            let frames = records.map(JournalCodec.frame)
            return frames + [frames.flatMap { $0 }, Array(frames.flatMap { $0 }.dropLast(3))]
        }
    )
}
