import GateMeshCore

/// The wire form of a cached answer, inside the cache's peer frames (`cacheAnswer`, `cachePut`).
/// Bounded like every peer payload: a malformed or hostile entry is a `DecodeError`, never a
/// crash or an allocation larger than the payload; a decoded entry has a status an HTTP response
/// can carry (100 to 999). Pure.
public enum CachedResponseCodec {
    public static let maxHeaders = 1000
    public static let maxBodyBytes = 256 << 20
    public static let maxChunks = 1 << 20

    public static func encode(_ r: CachedResponse, into w: inout BinaryWriter) {
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

    public static func decode(from r: inout BinaryReader) throws(DecodeError) -> CachedResponse {
        let gateway = try r.string(), provider = try r.string()
        let status = try r.count(max: 999)
        guard status >= 100 else { throw DecodeError("cached answer with HTTP status \(status)") }
        var headers: [HeaderField] = []
        for _ in 0..<(try r.count(max: maxHeaders)) { headers.append(.init(name: try r.string(), value: try r.string(max: 65_536))) }
        let n = try r.count(max: maxBodyBytes)
        // Checked before reserving, so a short payload cannot make the node allocate its maximum.
        guard r.remaining >= n else { throw DecodeError("truncated cached body") }
        var body: [UInt8] = []
        body.reserveCapacity(n)
        for _ in 0..<n { body.append(try r.byte()) }
        var ends: [Int] = []
        for _ in 0..<(try r.count(max: maxChunks)) {
            guard let end = Int(exactly: try r.uint()) else { throw DecodeError("chunk end out of range") }
            ends.append(end)
        }
        let streamed = try r.byte() == 1
        let created = try r.int(), expires = try r.int()
        let hasCost = try r.byte() == 1
        let cost = try r.int()
        let model = try r.string()
        return CachedResponse(gateway: gateway, provider: provider, status: status, headers: headers, body: body, chunkEnds: ends,
                              streamed: streamed, createdAtMs: created, expiresAtMs: expires, costNanos: hasCost ? cost : nil,
                              servedModel: model.isEmpty ? nil : model)
    }
}
