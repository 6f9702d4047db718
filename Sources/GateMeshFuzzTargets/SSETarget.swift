import GateMeshAccounting

extension FuzzTargets {
    /// The server-sent event scanner: the events do not depend on how the stream was split, and
    /// with raw bytes kept, the events' raw bytes and what is left unterminated are the stream.
    public static let sse = FuzzTarget(
        name: "sse",
        summary: "SSEScanner over split input: same events, raw bytes cover the stream",
        run: { data in
            var input = FuzzInput(data)
            let lengths = (0..<Int(input.byte() % 8)).map { _ in input.byte() }
            let maxLine = [1 << 20, 1, 7, 64][Int(input.byte() % 4)]
            let bytes = input.rest
            let whole = scanSSE([bytes[...]], maxLine: maxLine, keepsRaw: true)
            let split = scanSSE(chunks(bytes, lengths: lengths), maxLine: maxLine, keepsRaw: true)
            FuzzCheck.require(whole.events == split.events && whole.rest == split.rest, "SSE events depend on how the stream was split")
            FuzzCheck.require(whole.events.flatMap(\.raw) + whole.rest == bytes, "SSE raw bytes do not cover the stream")
            let lean = scanSSE(chunks(bytes, lengths: lengths), maxLine: maxLine, keepsRaw: false)
            FuzzCheck.require(lean.events.map(\.name) == whole.events.map(\.name) && lean.events.map(\.data) == whole.events.map(\.data),
                              "SSE events differ when raw bytes are not kept")
        },
        seeds: {
            [
                "\0data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n",
                "\u{3}\u{5}\u{1}\u{2}\u{3}\0event: message_start\r\ndata: {\"type\":\"message_start\"}\r\n\r\n: comment\r\rdata: a\rdata: b\r\r",
                "\u{1}\u{1}\u{2}event: ping\ndata:\ndata:x\nid: 1\nretry: 10\n\n\n\ndata: unterminated",
                "\0\u{1}" + String(repeating: "data: long line ", count: 8) + "\n\n",
            ].map { Array($0.utf8) }
        }
    )

    static func scanSSE(_ pieces: [ArraySlice<UInt8>], maxLine: Int, keepsRaw: Bool) -> (events: [SSEScanner.Event], rest: [UInt8]) {
        var scanner = SSEScanner(maxLineBytes: maxLine, keepsRaw: keepsRaw)
        var events: [SSEScanner.Event] = []
        for piece in pieces { scanner.feed(piece) { events.append($0) } }
        scanner.finish { events.append($0) }
        return (events, scanner.takeUnterminated())
    }
}
