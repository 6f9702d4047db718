import GateMeshCore

/// The admin-API rules as a last-writer-wins map of `RuleRecord`s (in GateMeshCore, which the
/// store shares). Pure.
public struct RuleRecords: Sendable {
    /// How often each node sends its digest to one live peer (anti-entropy for the records).
    public static let digestIntervalMs: Int64 = 2000

    public private(set) var byID: [String: RuleRecord] = [:]
    private var cachedDigest: UInt64?

    public init(_ records: [RuleRecord] = []) {
        for r in records { _ = apply(r) }
    }

    /// Keeps `record` if it is newer than the one held; returns whether it was.
    public mutating func apply(_ record: RuleRecord) -> Bool {
        if let current = byID[record.id], !record.supersedes(current) { return false }
        byID[record.id] = record
        cachedDigest = nil
        return true
    }

    /// The records that are newer than those held, in the order given (each kept).
    public mutating func merge(_ records: [RuleRecord]) -> [RuleRecord] {
        records.filter { apply($0) }
    }

    /// A hash of every record's id and version, the same on nodes that hold the same records.
    public mutating func digest() -> UInt64 {
        if let d = cachedDigest { return d }
        var total: UInt64 = 0
        for r in byID.values {
            var fnv = FNV1a()
            fnv.add(r.id)
            fnv.add(0xff as UInt8)
            fnv.add(r.origin)
            fnv.add(UInt64(bitPattern: r.updatedTs))
            fnv.add(UInt8(r.deleted ? 1 : 2))
            var h = fnv.value
            // Order-independent: the sum of well-mixed per-record hashes.
            h ^= h >> 31
            h = h &* 0x7fb5d329728ea185
            h ^= h >> 27
            total = total &+ h
        }
        cachedDigest = total
        return total
    }

    public var count: Int { byID.count }
}

/// The wire form of rule records (`.rules` frames) and of their digest (`.rulesDigest`).
public enum RulesCodec {
    public static let maxRecords = 100_000
    public static let maxDefinitionBytes = 1 << 20
    public static let frameBudgetBytes = 1 << 20

    /// The records in frames of about `budget` payload bytes at most (a record larger than that
    /// travels alone).
    public static func frames(_ records: [RuleRecord], budget: Int) -> [Frame] {
        var frames: [Frame] = []
        var batch: [RuleRecord] = []
        var size = 0
        for r in records {
            let s = r.id.utf8.count + r.gateway.utf8.count + r.definition.utf8.count + r.origin.utf8.count + 40
            if !batch.isEmpty && size + s > budget {
                frames.append(Frame(kind: .rules, payload: encode(batch)))
                batch = []
                size = 0
            }
            batch.append(r)
            size += s
        }
        if !batch.isEmpty { frames.append(Frame(kind: .rules, payload: encode(batch))) }
        return frames
    }

    public static func encode(_ records: [RuleRecord]) -> [UInt8] {
        var w = BinaryWriter()
        w.uint(UInt64(records.count))
        for r in records {
            w.string(r.id)
            w.string(r.gateway)
            w.string(r.definition)
            w.int(r.createdTs)
            w.int(r.updatedTs)
            w.string(r.origin)
            w.byte(r.deleted ? 1 : 0)
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [RuleRecord] {
        var r = BinaryReader(bytes)
        var out: [RuleRecord] = []
        for _ in 0..<(try r.count(max: maxRecords)) {
            let id = try r.string(), gateway = try r.string(), definition = try r.string(max: maxDefinitionBytes)
            let created = try r.int(), updated = try r.int()
            let origin = try r.string()
            let deleted = try r.byte()
            guard deleted <= 1 else { throw DecodeError("bad rule tombstone flag \(deleted)") }
            out.append(RuleRecord(id: id, gateway: gateway, definition: definition, createdTs: created, updatedTs: updated,
                                  origin: origin, deleted: deleted == 1))
        }
        guard r.atEnd else { throw DecodeError("trailing bytes after rules") }
        return out
    }

    /// A digest; `reply` marks one sent back to a digest that differed (not to be answered with
    /// another digest, only with records).
    public static func digest(_ value: UInt64, count: Int, reply: Bool) -> Frame {
        var w = BinaryWriter()
        w.uint(value)
        w.uint(UInt64(count))
        w.byte(reply ? 1 : 0)
        return Frame(kind: .rulesDigest, payload: w.bytes)
    }

    public static func decodeDigest(_ bytes: [UInt8]) throws(DecodeError) -> (digest: UInt64, count: Int, reply: Bool) {
        var r = BinaryReader(bytes)
        let d = try r.uint()
        let n = try r.count(max: maxRecords)
        let reply = try r.byte() == 1
        guard r.atEnd else { throw DecodeError("trailing bytes after a rules digest") }
        return (d, n, reply)
    }
}
