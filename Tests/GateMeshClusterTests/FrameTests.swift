import GateMeshCore
import GateMeshCluster
import Testing

@Suite struct FrameTests {
    @Test func framesRoundTripFedAByteAtATime() throws {
        let frames = [Frame(kind: .membership, payload: Array("hello".utf8)), Frame(kind: .counters, payload: []),
                      Frame(kind: .digest, payload: (0..<70_000).map { UInt8($0 & 0xFF) })]
        let wire = frames.flatMap { $0.encoded() }
        var decoder = FrameDecoder()
        var got: [Frame] = []
        for b in wire {
            decoder.feed([b])
            while let f = try decoder.next() { got.append(f) }
        }
        #expect(got == frames && decoder.buffered == 0)
    }

    @Test func badFramesAreErrorsNotCrashes() {
        func first(_ bytes: [UInt8], max: Int = 1024) -> FrameError? {
            var d = FrameDecoder(maxPayload: max)
            d.feed(bytes)
            do {
                _ = try d.next()
                return nil
            } catch {
                return error
            }
        }
        #expect(first(Array("GET / HTTP/1.1\r\n".utf8)) == .badMagic)
        #expect(first([0x47, 0x4D, 9, 1, 0, 0, 0, 0]) == .unsupportedVersion(9))
        #expect(first([0x47, 0x4D, 1, 1, 0, 0, 0, 0]) == .unsupportedVersion(1), "an earlier build's frames")
        #expect(first([0x47, 0x4D, Frame.version, 1, 0xFF, 0xFF, 0xFF, 0xFF]) == .tooLarge(0xFFFF_FFFF, max: 1024))
        #expect(first([0x47, 0x4D, Frame.version]) == nil, "incomplete header: wait for more")
    }

    @Test func aFrameOfAnUnknownTypeIsSkippedWholeAndTheNextOneRead() throws {
        var d = FrameDecoder(maxPayload: 1024)
        let known = Frame(kind: .counters, payload: [7, 8])
        let unknown: [UInt8] = [0x47, 0x4D, Frame.version, 99, 0, 0, 0, 3, 1, 2, 3]
        for b in unknown + known.encoded() + unknown {
            d.feed([b])
            if let f = try d.next() { #expect(f == known) }
        }
        #expect(try d.next() == nil)
        #expect(d.skippedUnknown == 2 && d.lastUnknownKind == 99 && d.buffered == 0)
        // Its length is still bounded.
        var big = FrameDecoder(maxPayload: 4)
        big.feed([0x47, 0x4D, Frame.version, 99, 0, 0, 0, 5])
        #expect(throws: FrameError.tooLarge(5, max: 4)) { try big.next() }
    }

    @Test func membershipEnvelopesRoundTripAndHostilePayloadsFailCleanly() throws {
        let a = Membership.Info(name: "eu-1", address: "10.0.0.1:7946", region: "eu-west", id: "id-1", configDigest: "0123456789abcdef")
        let b = Membership.Info(name: "us-1", address: "[fd00::1]:7946", region: "us-east")
        let updates = [Membership.Update(info: b, state: .suspect, incarnation: 7, signature: Array(repeating: 0xA5, count: 71)),
                       .init(info: a, state: .alive, incarnation: 1 << 40)]
        for message in [Membership.Message.ping(seq: 1, target: "b"), .ack(seq: .max, of: "b"), .nack(seq: 7), .pingRequest(seq: 3, target: b),
                        .sync(members: updates, reply: false), .sync(members: [], reply: true), .recordsAsk(names: ["a", "b"])] {
            let e = Membership.Envelope(from: a, incarnation: 42, signature: [1, 2, 3], message: message, updates: updates)
            #expect(try MembershipCodec.decode(MembershipCodec.encode(e)) == e)
        }
        let good = MembershipCodec.encode(Membership.Envelope(from: a, incarnation: 1, message: .sync(members: updates, reply: false), updates: []))
        for cut in 0..<good.count {
            #expect(throws: DecodeError.self) { try MembershipCodec.decode(Array(good.prefix(cut))) }
        }
        var huge = BinaryWriter()
        huge.string("x"); huge.string(""); huge.string(""); huge.string(""); huge.string(""); huge.uint(0); huge.blob([]); huge.byte(4); huge.uint(UInt64.max)
        #expect(throws: DecodeError.self) { try MembershipCodec.decode(huge.bytes) }
        #expect(throws: DecodeError.self) { try MembershipCodec.decode(good + [0]) }
    }
}
