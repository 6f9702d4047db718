import GateMeshCache
import GateMeshCluster
import GateMeshCore
import Testing

/// The cache protocol's frames on the peer link: each decodes to what was encoded, and a payload
/// that is cut short or names an unknown answer is an error, not a crash.
@Suite struct CacheCodecTests {
    static let entry = CachedResponse(
        gateway: "default", provider: "openai", status: 200, headers: [HeaderField("content-type", "text/event-stream")],
        body: Array("data: hi\n\ndata: [DONE]\n\n".utf8), chunkEnds: [10, 24], streamed: true, createdAtMs: 1_000,
        expiresAtMs: 61_000, costNanos: 1_234, servedModel: "gpt-4o-mini")

    @Test func everyFrameDecodesToWhatWasEncoded() throws {
        let get = CacheCodec.get(id: 7, key: "k1")
        #expect(get.kind == .cacheGet)
        let (id, gotKey) = try CacheCodec.decodeGet(get.payload)
        #expect(id == 7 && gotKey == "k1")
        for answer in [CacheCodec.Answer.miss, .lead, .pending, .entry(Self.entry)] {
            let frame = CacheCodec.answer(id: 9, answer)
            #expect(frame.kind == .cacheAnswer)
            let decoded = try CacheCodec.decodeAnswer(frame.payload)
            #expect(decoded.id == 9 && decoded.answer == answer)
        }
        let put = CacheCodec.put(key: "k2", entry: Self.entry)
        #expect(put.kind == .cachePut)
        let (key, entry) = try CacheCodec.decodePut(put.payload)
        #expect(key == "k2" && entry == Self.entry)
        let release = CacheCodec.release(key: "k3")
        let released = try CacheCodec.decodeRelease(release.payload)
        #expect(release.kind == .cacheRelease && released == "k3")
    }

    @Test func aCutOrUnknownPayloadIsAnError() {
        let put = CacheCodec.put(key: "k2", entry: Self.entry).payload
        #expect(throws: DecodeError.self) { try CacheCodec.decodePut(Array(put.dropLast(3))) }
        var unknown = CacheCodec.answer(id: 1, .miss).payload
        unknown[unknown.count - 1] = 9
        #expect(throws: DecodeError.self) { try CacheCodec.decodeAnswer(unknown) }
        #expect(throws: DecodeError.self) { try CacheCodec.decodeGet([]) }
    }
}
