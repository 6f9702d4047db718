import GateMeshCore

/// One reservation as the journal names it: the run of its node (the epoch, which grows with
/// every start of the node) and its id within that run.
public struct ReservationRef: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var epoch: UInt64
    public var id: UInt64

    public init(epoch: UInt64, id: UInt64) {
        self.epoch = epoch
        self.id = id
    }

    public static func < (a: Self, b: Self) -> Bool { (a.epoch, a.id) < (b.epoch, b.id) }
    public var description: String { "\(epoch).\(id)" }
}

/// A spend batch of one run: the store records the highest one it committed, in the same
/// transaction as the batch's spend.
public struct SpendBatchMark: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var epoch: UInt64
    public var batch: UInt64

    public init(epoch: UInt64, batch: UInt64) {
        self.epoch = epoch
        self.batch = batch
    }

    public static func < (a: Self, b: Self) -> Bool { (a.epoch, a.batch) < (b.epoch, b.batch) }
    /// The form kept in the store: `epoch:batch`.
    public var description: String { "\(epoch):\(batch)" }

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let e = UInt64(parts[0]), let b = UInt64(parts[1]) else { return nil }
        self.init(epoch: e, batch: b)
    }
}

/// A record of the reservation journal, the durable trace that lets a node killed with requests
/// in flight charge them after it restarts.
///
/// A reservation is `open` from its admission until either a `close` (it ended with nothing to
/// charge, or its charge is already durable) or a `settling` record whose batch the store then
/// committed (its actual charge went to disk with that batch's spend).
public enum JournalRecord: Sendable, Equatable {
    /// What an admitted reservation holds on each counter.
    public struct Held: Sendable, Equatable {
        public var key: CounterMap.Key
        public var amount: Int64
        /// For an amount taken from the node's rights: what its run had used, got back and given
        /// back of the counter's rights once this admission took them (the journal's record of
        /// the use, written before the request is sent).
        public var own: OwnRights?

        public init(key: CounterMap.Key, amount: Int64, own: OwnRights? = nil) {
            self.key = key
            self.amount = amount
            self.own = own
        }
    }

    /// A run's own figures of a counter's rights (`RightsEntry.used`, `refunded`, `returned`).
    public struct OwnRights: Sendable, Equatable {
        public var used: Int64
        public var refunded: Int64
        public var returned: Int64

        public init(used: Int64, refunded: Int64, returned: Int64) {
            self.used = used
            self.refunded = refunded
            self.returned = returned
        }

        /// The figures as the rights of the run `epoch`, under the holder name `/epoch` that the
        /// replay gives a run's own figures until the node's id is known (`JournalReplay.rights(node:)`).
        public func entry(epoch: UInt64) -> RightsEntry {
            let holder = "/\(epoch)"
            return RightsEntry(used: [holder: used], refunded: [holder: refunded], returned: [holder: returned])
        }
    }

    case open(ReservationRef, [Held])
    case close(ReservationRef)
    /// The actual charges of these reservations (all of the batch's run) are in spend batch `mark`.
    case settling(SpendBatchMark, ids: [UInt64])
    /// The rights figures this node's runs wrote for a counter (grants and leases as an owner;
    /// used, refunded and returned as a holder), as they stood: a later record of the same key
    /// holds them all again, and replaying takes the larger of each.
    case rights(CounterMap.Key, RightsEntry)
}

/// The journal's byte format: each record is a frame of a 4-byte little-endian payload length, a
/// 4-byte little-endian FNV-1a checksum of the payload, and the payload. A process killed in the
/// middle of a write leaves a torn last frame, which reading detects and stops at.
public enum JournalCodec {
    /// A frame larger than this is corruption, not a record (a reservation holds one entry per
    /// matching rule; rules and scopes are bounded in size).
    public static let maxPayload = 16 * 1024 * 1024
    public static let maxEntries = 100_000

    public static func frame(_ record: JournalRecord) -> [UInt8] {
        // Room for the record as it usually is (a key is some 30 bytes, rights some 100).
        var w: BinaryWriter
        switch record {
        case .open(_, let held): w = BinaryWriter(capacity: 32 + 64 * held.count)
        case .settling(_, let ids): w = BinaryWriter(capacity: 32 + 10 * ids.count)
        case .rights: w = BinaryWriter(capacity: 256)
        case .close: w = BinaryWriter(capacity: 32)
        }
        // Room for the header, filled in below.
        for _ in 0..<8 { w.byte(0) }
        switch record {
        case .open(let ref, let held):
            // Kind 5 carries each entry's own rights figures; kind 1 (no rights) is kept for
            // journals written before them, and for reservations without rights.
            let rights = held.contains { $0.own != nil }
            w.byte(rights ? 5 : 1)
            w.uint(ref.epoch)
            w.uint(ref.id)
            w.uint(UInt64(held.count))
            for h in held {
                w.counterKey(h.key)
                w.int(h.amount)
                guard rights else { continue }
                if let own = h.own {
                    w.byte(1)
                    w.int(own.used)
                    w.int(own.refunded)
                    w.int(own.returned)
                } else {
                    w.byte(0)
                }
            }
        case .close(let ref):
            w.byte(2)
            w.uint(ref.epoch)
            w.uint(ref.id)
        case .settling(let mark, let ids):
            w.byte(3)
            w.uint(mark.epoch)
            w.uint(mark.batch)
            w.uint(UInt64(ids.count))
            for id in ids { w.uint(id) }
        case .rights(let key, let rights):
            w.byte(4)
            w.counterKey(key)
            w.rights(rights)
        }
        // Filled in through the writer: a copy of its bytes changed here would copy them all.
        let length = UInt32(w.bytes.count - 8)
        let sum = checksum(w.bytes[8...])
        for i in 0..<4 {
            w.set(UInt8(truncatingIfNeeded: length >> (8 * UInt32(i))), at: i)
            w.set(UInt8(truncatingIfNeeded: sum >> (8 * UInt32(i))), at: 4 + i)
        }
        return w.bytes
    }

    /// The records in `bytes`, in order, up to the first torn or corrupt frame; and how many bytes
    /// they cover (the rest, if any, is what a killed write left).
    public static func records(in bytes: [UInt8]) -> (records: [JournalRecord], valid: Int) {
        var out: [JournalRecord] = []
        var at = 0
        while bytes.count - at >= 8 {
            var length = 0, sum: UInt32 = 0
            for i in 0..<4 {
                length |= Int(bytes[at + i]) << (8 * i)
                sum |= UInt32(bytes[at + 4 + i]) << (8 * UInt32(i))
            }
            guard length <= maxPayload, bytes.count - at - 8 >= length else { break }
            let payload = bytes[(at + 8)..<(at + 8 + length)]
            guard checksum(payload) == sum, let record = try? decode(Array(payload)) else { break }
            out.append(record)
            at += 8 + length
        }
        return (out, at)
    }

    static func decode(_ payload: [UInt8]) throws(DecodeError) -> JournalRecord {
        var r = BinaryReader(payload)
        let record: JournalRecord
        switch try r.byte() {
        case let kind where kind == 1 || kind == 5:
            let ref = ReservationRef(epoch: try r.uint(), id: try r.uint())
            var held: [JournalRecord.Held] = []
            for _ in 0..<(try r.count(max: maxEntries)) {
                let key = try r.counterKey(maxScope: 65_536)
                var h = JournalRecord.Held(key: key, amount: try r.int())
                if kind == 5, try r.byte() == 1 {
                    h.own = .init(used: try r.int(), refunded: try r.int(), returned: try r.int())
                }
                held.append(h)
            }
            record = .open(ref, held)
        case 2:
            record = .close(ReservationRef(epoch: try r.uint(), id: try r.uint()))
        case 3:
            let mark = SpendBatchMark(epoch: try r.uint(), batch: try r.uint())
            var ids: [UInt64] = []
            for _ in 0..<(try r.count(max: maxEntries * 10)) { ids.append(try r.uint()) }
            record = .settling(mark, ids: ids)
        case 4:
            let key = try r.counterKey(maxScope: 65_536)
            record = .rights(key, try r.rights(maxSlots: maxEntries))
        case let kind:
            throw DecodeError("unknown journal record kind \(kind)")
        }
        guard r.atEnd else { throw DecodeError("trailing bytes in a journal record") }
        return record
    }

    /// 32-bit FNV-1a.
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var h: UInt32 = 0x811c9dc5
        for b in bytes { h = (h ^ UInt32(b)) &* 0x01000193 }
        return h
    }
}

/// Replays journal records into the reservations whose charge is not on disk. Pure.
///
/// Contract: feed every record of the journal in the order written (`apply`); `unsettled` then
/// names each reservation that was opened, never closed, and not in a settling batch the store
/// committed: exactly those whose cost a killed run never persisted. Records of runs up to
/// `recoveredThrough` were charged by an earlier recovery and are skipped, so a recovery that
/// is itself killed before the journal is cleared never charges twice.
public struct JournalReplay: Sendable {
    public private(set) var open: [ReservationRef: [JournalRecord.Held]] = [:]
    private var settling: [ReservationRef: SpendBatchMark] = [:]
    public private(set) var records = 0
    /// The latest rights figures of each counter (each figure the largest written). The figures
    /// `open` records carry are a run's own: they are filed under the holder `"/\(epoch)"`, to be
    /// named with the node's id (`rights(node:)`).
    public private(set) var rights: [CounterMap.Key: RightsEntry] = [:]

    /// `rights`, with the holders of the `open` records' own figures named `node/epoch`.
    public func rights(node: String) -> [CounterMap.Key: RightsEntry] {
        rights.mapValues { $0.renamingHolders { $0.hasPrefix("/") ? node + $0 : $0 } }
    }

    public init() {}

    public mutating func apply(_ record: JournalRecord) {
        records += 1
        switch record {
        case .open(let ref, let held):
            open[ref] = held
            settling[ref] = nil
            for h in held {
                if let own = h.own { rights[h.key, default: RightsEntry()].merge(own.entry(epoch: ref.epoch)) }
            }
        case .close(let ref):
            open[ref] = nil
            settling[ref] = nil
        case .settling(let mark, let ids):
            // A reservation settles in one batch; should it be named twice, the earlier batch counts.
            for id in ids {
                let ref = ReservationRef(epoch: mark.epoch, id: id)
                settling[ref] = min(settling[ref] ?? mark, mark)
            }
        case .rights(let key, let figures):
            rights[key, default: RightsEntry()].merge(figures)
        }
    }

    /// The reservations to charge at their estimate, oldest first.
    public func unsettled(committed: SpendBatchMark?, recoveredThrough: UInt64) -> [(ref: ReservationRef, held: [JournalRecord.Held])] {
        open.filter { ref, _ in
            guard ref.epoch > recoveredThrough else { return false }
            if let mark = settling[ref], let committed, mark <= committed { return false }
            return true
        }
        .map { (ref: $0.key, held: $0.value) }
        .sorted { $0.ref < $1.ref }
    }
}
