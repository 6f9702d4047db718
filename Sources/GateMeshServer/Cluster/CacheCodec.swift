import GateMeshCore
import GateMeshCache
import GateMeshCluster

/// Cache entries on the peer link (`cacheGet`, `cacheAnswer`, `cachePut` frames). Bounded like
/// every peer payload; the entry itself is `CachedResponseCodec`'s.
enum CacheCodec {
    static func entry(_ r: CachedResponse, _ w: inout BinaryWriter) { CachedResponseCodec.encode(r, into: &w) }

    static func entry(_ r: inout BinaryReader) throws(DecodeError) -> CachedResponse { try CachedResponseCodec.decode(from: &r) }

    static func get(id: UInt64, key: String) -> Frame {
        var w = BinaryWriter()
        w.uint(id)
        w.string(key)
        return Frame(kind: .cacheGet, payload: w.bytes)
    }

    /// An owner's answer to `cacheGet`.
    enum Answer {
        /// Not here, fetch it yourself (without the owner waiting for it).
        case miss
        case entry(CachedResponse)
        /// Not here: you fetch it, and the requests for it anywhere in the cluster wait for you.
        case lead
        /// Another node is fetching it: the answer follows under the same id when it is done.
        case pending
    }

    static func answer(id: UInt64, _ a: Answer) -> Frame {
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

    static func answer(_ r: inout BinaryReader) throws(DecodeError) -> (id: UInt64, answer: Answer) {
        let id = try r.uint()
        switch try r.byte() {
        case 0: return (id, .miss)
        case 1: return (id, .entry(try entry(&r)))
        case 2: return (id, .lead)
        case 3: return (id, .pending)
        case let b: throw DecodeError("unknown cache answer \(b)")
        }
    }

    static func release(key: String) -> Frame {
        var w = BinaryWriter()
        w.string(key)
        return Frame(kind: .cacheRelease, payload: w.bytes)
    }

    static func put(key: String, entry r: CachedResponse) -> Frame {
        var w = BinaryWriter()
        w.string(key)
        entry(r, &w)
        return Frame(kind: .cachePut, payload: w.bytes)
    }
}
