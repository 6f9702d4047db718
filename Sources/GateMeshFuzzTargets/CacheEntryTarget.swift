import GateMeshCache
import GateMeshCluster
import GateMeshCore

extension FuzzTargets {
    /// Cached answers on the peer link (`CachedResponseCodec`): whatever decodes re-encodes to
    /// something that decodes the same, with a status an HTTP response can carry. The input is
    /// one entry; the frame decoder's target also reads the four cache frames' payloads.
    public static let cacheEntry = FuzzTarget(
        name: "cache-entry",
        summary: "CachedResponseCodec decode → encode → decode",
        run: { data in
            var r = BinaryReader(data)
            guard let entry = try? CachedResponseCodec.decode(from: &r) else { return }
            FuzzCheck.require((100...999).contains(entry.status), "a cached answer decoded with status \(entry.status)")
            _ = entry.chunks
            var w = BinaryWriter()
            CachedResponseCodec.encode(entry, into: &w)
            var again = BinaryReader(w.bytes)
            FuzzCheck.require((try? CachedResponseCodec.decode(from: &again)) == entry && again.atEnd,
                              "a cached answer does not survive encode → decode")
        },
        seeds: { cacheEntrySamples.map { entry in
            var w = BinaryWriter()
            CachedResponseCodec.encode(entry, into: &w)
            return w.bytes
        } }
    )

    static let cacheEntrySamples = [
        CachedResponse(gateway: "default", provider: "openai", status: 200, headers: [.init(name: "content-type", value: "application/json")],
                       body: Array(#"{"id":"x","usage":{"prompt_tokens":3}}"#.utf8), chunkEnds: [10, 38], streamed: false,
                       createdAtMs: 1_700_000_000_000, expiresAtMs: 1_700_000_300_000, costNanos: 1234, servedModel: "gpt-4o-mini"),
        CachedResponse(gateway: "g", provider: "anthropic", status: 200, headers: [], body: Array("event: ping\ndata: {}\n\n".utf8),
                       chunkEnds: [0, 5, 1 << 40], streamed: true, createdAtMs: 0, expiresAtMs: -1, costNanos: nil, servedModel: nil),
    ]

    /// The cache frames' payloads, read as the node reads them (`CacheCodec` in the server): an
    /// id and a key (`cacheGet`), an id and an answer (`cacheAnswer`), a key and an entry
    /// (`cachePut`), a key (`cacheRelease`).
    static func cachePayload(_ kind: Frame.Kind, _ payload: [UInt8]) {
        var r = BinaryReader(payload)
        switch kind {
        case .cacheGet:
            _ = try? r.uint()
            _ = try? r.string()
        case .cacheAnswer:
            _ = try? r.uint()
            if (try? r.byte()) == 1 { _ = try? CachedResponseCodec.decode(from: &r) }
        case .cachePut:
            _ = try? r.string()
            _ = try? CachedResponseCodec.decode(from: &r)
        default:
            _ = try? r.string()
        }
    }
}
