import GateMeshCore
import GateMeshCache

/// Cache entries on the peer link (`cacheGet`, `cacheAnswer`, `cachePut` frames). Bounded like
/// every peer payload; the entry itself is `CachedResponseCodec`'s.
public enum CacheCodec {
    private static func entry(_ r: CachedResponse, _ w: inout BinaryWriter) { CachedResponseCodec.encode(r, into: &w) }

    private static func entry(_ r: inout BinaryReader) throws(DecodeError) -> CachedResponse { try CachedResponseCodec.decode(from: &r) }

    public static func get(id: UInt64, key: String) -> Frame {
        var w = BinaryWriter()
        w.uint(id)
        w.string(key)
        return Frame(kind: .cacheGet, payload: w.bytes)
    }

    public static func decodeGet(_ payload: [UInt8]) throws(DecodeError) -> (id: UInt64, key: String) {
        var r = BinaryReader(payload)
        return (try r.uint(), try r.string())
    }

    /// An owner's answer to `cacheGet`.
    public enum Answer: Sendable, Equatable {
        /// Not here, fetch it yourself (without the owner waiting for it).
        case miss
        case entry(CachedResponse)
        /// Not here: you fetch it, and the requests for it anywhere in the cluster wait for you.
        case lead
        /// Another node is fetching it: the answer follows under the same id when it is done.
        case pending
    }

    public static func answer(id: UInt64, _ a: Answer) -> Frame {
        var w = BinaryWriter()
        w.uint(id)
        switch a {
        case .miss: w.byte(0)
        case .entry(let r):
            w.byte(1)
            entry(r, &w)
        case .lead: w.byte(2)
        case .pending: w.byte(3)
        }
        return Frame(kind: .cacheAnswer, payload: w.bytes)
    }

    public static func decodeAnswer(_ payload: [UInt8]) throws(DecodeError) -> (id: UInt64, answer: Answer) {
        var r = BinaryReader(payload)
        let id = try r.uint()
        switch try r.byte() {
        case 0: return (id, .miss)
        case 1: return (id, .entry(try entry(&r)))
        case 2: return (id, .lead)
        case 3: return (id, .pending)
        case let b: throw DecodeError("unknown cache answer \(b)")
        }
    }

    public static func release(key: String) -> Frame {
        var w = BinaryWriter()
        w.string(key)
        return Frame(kind: .cacheRelease, payload: w.bytes)
    }

    public static func decodeRelease(_ payload: [UInt8]) throws(DecodeError) -> String {
        var r = BinaryReader(payload)
        return try r.string()
    }

    public static func put(key: String, entry r: CachedResponse) -> Frame {
        var w = BinaryWriter()
        w.string(key)
        entry(r, &w)
        return Frame(kind: .cachePut, payload: w.bytes)
    }

    public static func decodePut(_ payload: [UInt8]) throws(DecodeError) -> (key: String, entry: CachedResponse) {
        var r = BinaryReader(payload)
        return (try r.string(), try entry(&r))
    }
}
