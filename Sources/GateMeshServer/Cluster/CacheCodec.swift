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

    static func answer(id: UInt64, entry r: CachedResponse?) -> Frame {
        var w = BinaryWriter()
        w.uint(id)
        w.byte(r == nil ? 0 : 1)
        if let r { entry(r, &w) }
        return Frame(kind: .cacheAnswer, payload: w.bytes)
    }

    static func put(key: String, entry r: CachedResponse) -> Frame {
        var w = BinaryWriter()
        w.string(key)
        entry(r, &w)
        return Frame(kind: .cachePut, payload: w.bytes)
    }
}
