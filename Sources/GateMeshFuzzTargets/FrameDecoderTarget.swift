import GateMeshCluster
import GateMeshCore

extension FuzzTargets {
    /// The peer frame decoder, fed the input in network-sized pieces: the frames it yields do
    /// not depend on how the bytes were split, each re-encodes to the bytes it was read from, and
    /// each payload goes to the codec its kind names (as the node's dispatch does).
    public static let frameDecoder = FuzzTarget(
        name: "frame-decoder",
        summary: "FrameDecoder over split input, then each payload's codec",
        run: { data in
            var input = FuzzInput(data)
            let lengths = (0..<Int(input.byte() % 8)).map { _ in input.byte() }
            let bytes = input.rest
            let max = 1 << 16
            let whole = decodeAll([bytes[...]], maxPayload: max)
            let split = decodeAll(chunks(bytes, lengths: lengths), maxPayload: max)
            FuzzCheck.require(whole.frames == split.frames && whole.error == split.error && whole.skipped == split.skipped,
                              "frames depend on how the bytes were split")
            var at = 0
            for frame in whole.frames {
                // Frames of a kind the decoder does not know were skipped whole.
                while at + Frame.headerSize <= bytes.count, Frame.Kind(rawValue: bytes[at + 3]) == nil {
                    let i = bytes.startIndex + at
                    at += Frame.headerSize + (Int(bytes[i + 4]) << 24 | Int(bytes[i + 5]) << 16 | Int(bytes[i + 6]) << 8 | Int(bytes[i + 7]))
                }
                let encoded = frame.encoded()
                FuzzCheck.require(at + encoded.count <= bytes.count, "a frame past the end of its bytes")
                FuzzCheck.require(bytes[at..<(at + encoded.count)].elementsEqual(encoded), "a frame does not re-encode to its bytes")
                at += encoded.count
                decodePayload(frame)
            }
        },
        seeds: {
            Frame.Kind.allCases.map { Frame(kind: $0, payload: []).encoded() } + [
                [0] + Frame(kind: .membership, payload: MembershipCodec.encode(membershipSample)).encoded(),
                [3, 1, 5, 9] + Frame(kind: .counters, payload: CountersCodec.encode(countersSample)).encoded()
                    + Frame(kind: .digest, payload: CountersCodec.encodeDigest(["r": 7])).encoded(),
                [0] + AlertsCodec.encode(alertsSample).encoded() + RightsCodec.encode(holder: "n1", rightsSample).encoded(),
                [0] + Frame(kind: .rules, payload: RulesCodec.encode(rulesSample)).encoded()
                    + RulesCodec.digest(42, count: 1, reply: true).encoded(),
                [2, 3] + MemberAgreement(members: ["a", "b"], alone: false).frame(to: "b").encoded(),
                [0] + Array("GM\u{2}\u{1}\0\0\0\0".utf8),
                [0] + Array("GM\u{1}\u{63}\0\0\0\0".utf8),
                [0] + [0x47, 0x4D, Frame.version, 99, 0, 0, 0, 2, 7, 7] + Frame(kind: .digest, payload: []).encoded(),
                [0] + Array("GM\u{1}\u{1}\u{7f}\u{ff}\u{ff}\u{ff}".utf8),
                [0] + Array("HTTP/1.1 200 OK\r\n".utf8),
            ]
        }
    )

    static func decodeAll(_ pieces: [ArraySlice<UInt8>], maxPayload: Int) -> (frames: [Frame], error: FrameError?, skipped: Int) {
        var decoder = FrameDecoder(maxPayload: maxPayload)
        var frames: [Frame] = []
        for piece in pieces {
            decoder.feed(piece)
            do {
                while let frame = try decoder.next() { frames.append(frame) }
            } catch {
                return (frames, error, decoder.skippedUnknown)
            }
        }
        return (frames, nil, decoder.skippedUnknown)
    }

    /// Decodes a frame's payload as the node would; a decode error is an answer, not a failure.
    static func decodePayload(_ frame: Frame) {
        switch frame.kind {
        case .membership: _ = try? MembershipCodec.decode(frame.payload)
        case .counters: _ = try? CountersCodec.decode(frame.payload)
        case .digest: _ = try? CountersCodec.decodeDigest(frame.payload)
        case .rules: _ = try? RulesCodec.decode(frame.payload)
        case .rulesDigest: _ = try? RulesCodec.decodeDigest(frame.payload)
        case .alertsFired: _ = try? AlertsCodec.decode(frame.payload)
        case .rightsAsk: _ = try? RightsCodec.decode(frame.payload)
        case .members: _ = try? MemberAgreement.decode(frame.payload)
        case .certificateAsk: _ = try? CertificatesCodec.decodeAsk(frame.payload)
        case .certificates: _ = try? CertificatesCodec.decodeAnswer(frame.payload)
        case .cacheGet, .cacheAnswer, .cachePut, .cacheRelease: cachePayload(frame.kind, frame.payload)
        case .readAsk: _ = try? ReadCodec.decodeAsk(frame.payload)
        case .readAnswer: _ = try? ReadCodec.decodeAnswer(frame.payload, max: 1 << 20)
        case .hello: break
        }
    }
}
