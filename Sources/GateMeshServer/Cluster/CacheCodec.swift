import GateMeshCore
import GateMeshCache
import GateMeshCluster

/// Cache entries on the peer link (`cacheGet`, `cacheAnswer`, `cachePut` frames). Bounded like
/// every peer payload.
enum CacheCodec {
    static func entry(_ r: CachedResponse, _ w: inout BinaryWriter) {
        w.string(r.gateway)
        w.string(r.provider)
        w.uint(UInt64(r.status))
        w.uint(UInt64(r.headers.count))
        for h in r.headers {
            w.string(h.name)
            w.string(h.value)
        }
        w.uint(UInt64(r.body.count))
        for b in r.body { w.byte(b) }
        w.uint(UInt64(r.chunkEnds.count))
        for e in r.chunkEnds { w.uint(UInt64(e)) }
        w.byte(r.streamed ? 1 : 0)
        w.int(r.createdAtMs)
        w.int(r.expiresAtMs)
        w.byte(r.costNanos == nil ? 0 : 1)
        w.int(r.costNanos ?? 0)
        w.string(r.servedModel ?? "")
    }

    static func entry(_ r: inout BinaryReader) throws(DecodeError) -> CachedResponse {
        let gateway = try r.string(), provider = try r.string()
        let status = Int(try r.uint())
        var headers: [CachedResponse.Header] = []
        for _ in 0..<(try r.count(max: 1000)) { headers.append(.init(name: try r.string(), value: try r.string(max: 65_536))) }
        let n = try r.count(max: 256 << 20)
        var body: [UInt8] = []
        body.reserveCapacity(n)
        for _ in 0..<n { body.append(try r.byte()) }
        var ends: [Int] = []
        for _ in 0..<(try r.count(max: 1 << 20)) { ends.append(Int(try r.uint())) }
        let streamed = try r.byte() == 1
        let created = try r.int(), expires = try r.int()
        let hasCost = try r.byte() == 1
        let cost = try r.int()
        let model = try r.string()
        return CachedResponse(gateway: gateway, provider: provider, status: status, headers: headers, body: body, chunkEnds: ends,
                              streamed: streamed, createdAtMs: created, expiresAtMs: expires, costNanos: hasCost ? cost : nil,
                              servedModel: model.isEmpty ? nil : model)
    }

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
