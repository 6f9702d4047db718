import GateMeshCache
import GateMeshCore
import Testing

@Suite struct CachedResponseCodecTests {
    static let entry = CachedResponse(
        gateway: "default", provider: "openai", status: 200, headers: [.init(name: "content-type", value: "text/event-stream")],
        body: Array("data: {}\n\ndata: [DONE]\n\n".utf8), chunkEnds: [10, 24], streamed: true,
        createdAtMs: 1_700_000_000_000, expiresAtMs: 1_700_000_300_000, costNanos: 1234, servedModel: "gpt-4o-mini"
    )

    func decode(_ bytes: [UInt8]) throws(DecodeError) -> CachedResponse {
        var r = BinaryReader(bytes)
        return try CachedResponseCodec.decode(from: &r)
    }

    /// The fields up to the status, then whatever `rest` writes.
    func payload(status: UInt64, _ rest: (inout BinaryWriter) -> Void = { _ in }) -> [UInt8] {
        var w = BinaryWriter()
        w.string("g")
        w.string("p")
        w.uint(status)
        rest(&w)
        return w.bytes
    }

    @Test func anEntryDecodesAsItWasEncoded() throws {
        var w = BinaryWriter()
        CachedResponseCodec.encode(Self.entry, into: &w)
        #expect(try decode(w.bytes) == Self.entry)
    }

    /// Found while writing the fuzz target: a peer's status or chunk end above `Int.max` trapped,
    /// a status above 999 would have trapped when the hit was served, and a few bytes claiming a
    /// 256 MiB body made the node reserve 256 MiB.
    @Test func hostileEntriesAreDecodeErrors() {
        for status: UInt64 in [.max, 1 << 63, 1000, 99, 0] {
            #expect(throws: DecodeError.self, "status \(status)") { try decode(payload(status: status)) }
        }
        let claimsAHugeBody = payload(status: 200) { w in
            w.uint(0)
            w.uint(UInt64(CachedResponseCodec.maxBodyBytes))
        }
        #expect(throws: DecodeError.self) { try decode(claimsAHugeBody) }
        let chunkEndPastIntMax = payload(status: 200) { w in
            w.uint(0)
            w.uint(0)
            w.uint(1)
            w.uint(.max)
        }
        #expect(throws: DecodeError.self) { try decode(chunkEndPastIntMax) }
    }
}
