import Glibc
import Foundation
import GateMeshLimits
import NIOConcurrencyHelpers

/// The reservation journal: an append-only file in the data directory in which every budget and
/// rate-limit reservation is recorded when it is admitted and when it ends, so that a node killed
/// with requests in flight charges them after it restarts.
///
/// Contract: `open` returns only after the record is in the file (one `write(2)` into the page
/// cache, which outlives the process: a SIGKILL loses nothing; a power cut may lose what the
/// kernel had not flushed). Each run writes segments of its own (`journal-N.log`, N growing);
/// when the current one passes `rotateBytes` it is replaced by a new one holding only what is
/// still open (and the latest rights figures of each current counter), so the journal stays as
/// small as the requests in flight. What earlier runs left is
/// read at start (`previous`) and deleted by `forgetPrevious()` once its charges are on disk.
public final class ReservationJournal: Sendable {
    public let directory: String
    /// This run's epoch: every reservation and batch it journals carries it.
    public let epoch: UInt64
    /// What earlier runs left in the journal (read at start).
    public let previous: JournalReplay
    /// Bytes of a torn last record that a killed write left (ignored).
    public let tornBytes: Int
    let rotateBytes: Int
    private let state: NIOLockedValueBox<State>

    struct State {
        var fd: Int32
        var segment: UInt64
        var size = 0
        /// This run's open reservations and their `open` frames (rewritten on rotation).
        var open: [UInt64: [UInt8]] = [:]
        /// The latest rights frame of each counter (rewritten on rotation).
        var rights: [CounterMap.Key: [UInt8]] = [:]
        /// This run's own rights figures of each counter as its latest `open` record carried them
        /// (rewritten on rotation, when the `open` records of closed reservations are dropped).
        var own: [CounterMap.Key: JournalRecord.OwnRights] = [:]
        /// Settling batches written but not yet committed by the store.
        var settling: [(mark: SpendBatchMark, ids: [UInt64], frame: [UInt8])] = []
        var nextBatch: UInt64 = 1
        var previousSegments: [String]
        var writeFailures = 0
    }

    /// Opens the journal in `directory`, reading every segment earlier runs left, and starts a
    /// segment for this run.
    public init(directory: String, epoch: UInt64, rotateBytes: Int = 16 << 20) throws(StoreError) {
        self.directory = directory
        self.epoch = epoch
        self.rotateBytes = rotateBytes
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError(message: "cannot create the journal directory '\(directory)': \(error.localizedDescription)")
        }
        let segments = Self.segments(in: directory)
        var replay = JournalReplay()
        var torn = 0
        for (_, name) in segments {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw StoreError(message: "cannot read the reservation journal '\(path)'")
            }
            let bytes = [UInt8](data)
            let (records, valid) = JournalCodec.records(in: bytes)
            for r in records { replay.apply(r) }
            torn += bytes.count - valid
        }
        previous = replay
        tornBytes = torn
        let next = (segments.last?.number ?? 0) + 1
        let fd = try Self.create(directory: directory, segment: next)
        state = NIOLockedValueBox(State(fd: fd, segment: next, previousSegments: segments.map(\.name)))
    }

    deinit {
        state.withLockedValue { _ = Glibc.close($0.fd) }
    }

    static func name(_ segment: UInt64) -> String { "journal-\(segment).log" }

    /// The journal's segments, oldest first.
    static func segments(in directory: String) -> [(number: UInt64, name: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("journal-"), name.hasSuffix(".log"),
                  let n = UInt64(name.dropFirst("journal-".count).dropLast(".log".count)) else { return nil }
            return (n, name)
        }.sorted { $0.0 < $1.0 }
    }

    static func create(directory: String, segment: UInt64) throws(StoreError) -> Int32 {
        let path = (directory as NSString).appendingPathComponent(name(segment))
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(message: "cannot create the reservation journal '\(path)': errno \(errno)") }
        return fd
    }

    /// Deletes what earlier runs left: call once their unsettled reservations are charged on disk.
    public func forgetPrevious() {
        let names = state.withLockedValue { s -> [String] in
            defer { s.previousSegments = [] }
            return s.previousSegments
        }
        for name in names { unlink((directory as NSString).appendingPathComponent(name)) }
    }

    /// Records an admitted reservation, and the rights figures its admission changed, in one
    /// write (returns once they are in the file).
    public func open(id: UInt64, held: [JournalRecord.Held], rights: [(key: CounterMap.Key, rights: RightsEntry)] = []) {
        let frame = JournalCodec.frame(.open(ReservationRef(epoch: epoch, id: id), held))
        let rightsFrames = Self.frames(rights)
        state.withLockedValue { s in
            s.open[id] = frame
            for h in held { if let own = h.own { s.own[h.key] = own } }
            appendWithRights(frame, rightsFrames, &s)
        }
    }

    /// Records rights figures (returns once they are in the file): before a right this node
    /// granted or took is used, so a restarted node knows what its earlier runs granted and used.
    public func rights(_ changes: [(key: CounterMap.Key, rights: RightsEntry)]) {
        guard !changes.isEmpty else { return }
        let frames = Self.frames(changes)
        state.withLockedValue { s in appendWithRights([], frames, &s) }
    }

    static func frames(_ changes: [(key: CounterMap.Key, rights: RightsEntry)]) -> [(CounterMap.Key, [UInt8])] {
        changes.map { ($0.key, JournalCodec.frame(.rights($0.key, $0.rights))) }
    }

    /// Appends `bytes` and the rights frames in one write, each frame its counter's latest.
    private func appendWithRights(_ bytes: [UInt8], _ frames: [(CounterMap.Key, [UInt8])], _ s: inout State) {
        var bytes = bytes
        for (key, f) in frames {
            s.rights[key] = f
            bytes += f
        }
        append(bytes, &s)
    }

    /// Stops carrying the rights of the counters for which `isGone` holds into new segments (their
    /// bucket has passed).
    public func pruneRights(_ isGone: (CounterMap.Key) -> Bool) {
        state.withLockedValue { s in
            s.rights = s.rights.filter { !isGone($0.key) }
            s.own = s.own.filter { !isGone($0.key) }
        }
    }

    /// The counters whose rights the journal carries.
    public var rightsKeys: [CounterMap.Key] { state.withLockedValue { Array(Set($0.rights.keys).union($0.own.keys)) } }

    /// Records that a reservation ended with nothing left to charge (released, or dropped).
    public func close(id: UInt64) {
        state.withLockedValue { s in
            guard s.open.removeValue(forKey: id) != nil else { return }
            append(JournalCodec.frame(.close(ReservationRef(epoch: epoch, id: id))), &s)
        }
    }

    /// Records that the actual charges of `ids` go to disk with the next spend batch, and returns
    /// that batch's mark, which the store MUST commit in the same transaction as the spend.
    public func settling(ids: [UInt64]) -> SpendBatchMark {
        state.withLockedValue { s in
            let mark = SpendBatchMark(epoch: epoch, batch: s.nextBatch)
            s.nextBatch += 1
            guard !ids.isEmpty else { return mark }
            let frame = JournalCodec.frame(.settling(mark, ids: ids))
            s.settling.append((mark, ids, frame))
            append(frame, &s)
            return mark
        }
    }

    /// The store committed the batch `mark` (and so every earlier one): its reservations are
    /// settled on disk and leave the journal.
    public func committed(_ mark: SpendBatchMark) {
        state.withLockedValue { s in
            while let first = s.settling.first, first.mark <= mark {
                for id in first.ids { s.open[id] = nil }
                s.settling.removeFirst()
            }
        }
    }

    /// This run's reservations still open in the journal.
    public var openCount: Int { state.withLockedValue { $0.open.count } }
    /// Writes that failed (a full disk): those records are missing.
    public var writeFailures: Int { state.withLockedValue { $0.writeFailures } }
    /// The current segment's size in bytes.
    public var segmentBytes: Int { state.withLockedValue { $0.size } }

    private func append(_ bytes: [UInt8], _ s: inout State) {
        if !Self.writeAll(s.fd, bytes) { s.writeFailures += 1 }
        s.size += bytes.count
        if s.size >= rotateBytes { rotate(&s) }
    }

    /// Starts a new segment holding only what is open, then deletes the old one. A kill between
    /// the two leaves both, which replay the same (opens and settlings repeat; closes of what the
    /// new segment lacks are only in the old one).
    private func rotate(_ s: inout State) {
        let next = s.segment + 1
        guard let fd = try? Self.create(directory: directory, segment: next) else {
            s.writeFailures += 1
            return
        }
        var snapshot: [UInt8] = []
        for frame in s.open.values { snapshot += frame }
        for batch in s.settling { snapshot += batch.frame }
        for frame in s.rights.values { snapshot += frame }
        for (key, own) in s.own { snapshot += JournalCodec.frame(.rights(key, own.entry(epoch: epoch))) }
        if !Self.writeAll(fd, snapshot) { s.writeFailures += 1 }
        _ = Glibc.close(s.fd)
        unlink((directory as NSString).appendingPathComponent(Self.name(s.segment)))
        s.fd = fd
        s.segment = next
        s.size = snapshot.count
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                done += n
            }
            return true
        }
    }
}
