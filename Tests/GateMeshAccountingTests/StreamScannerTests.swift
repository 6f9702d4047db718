@testable import GateMeshAccounting
import Testing

@Suite struct SSEScannerTests {
    func events(_ text: String, splitEvery n: Int) -> [SSEScanner.Event] {
        var scanner = SSEScanner()
        var out: [SSEScanner.Event] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            scanner.feed(bytes[i..<min(i + n, bytes.count)]) { out.append($0) }
            i += n
        }
        scanner.finish { out.append($0) }
        return out.filter { !$0.data.isEmpty || $0.name != nil }
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func eventsSurviveAnySplit(_ n: Int) {
        let stream = "event: message_start\ndata: {\"a\":1}\n\n: comment\ndata: line1\ndata: line2\n\nevent: ping\ndata: {}\r\n\r\ndata: cr\r\rdata: last\n\n"
        let got = events(stream, splitEvery: n)
        #expect(got.map(\.name) == ["message_start", nil, "ping", nil, nil])
        #expect(got.map(\.dataString) == ["{\"a\":1}", "line1\nline2", "{}", "cr", "last"])
    }

    @Test func rawBytesCoverTheWholeStream() {
        let stream = "data: a\r\n\r\n\n: c\ndata: b\n\n"
        var scanner = SSEScanner()
        var raw: [UInt8] = []
        scanner.feed(Array(stream.utf8)) { raw += $0.raw }
        scanner.finish { raw += $0.raw }
        #expect(String(decoding: raw, as: UTF8.self) == stream)
    }

    @Test func overlongLinesAreSkippedNotBuffered() {
        var scanner = SSEScanner(maxLineBytes: 16)
        var got: [String] = []
        scanner.feed(Array(("data: " + String(repeating: "x", count: 100) + "\n\ndata: ok\n\n").utf8)) { got.append($0.dataString) }
        #expect(got == ["", "ok"])
    }
}

@Suite struct JSONArrayScannerTests {
    @Test(arguments: [1, 5, 4096])
    func elementsOfAStreamedArray(_ n: Int) {
        let text = "[{\"a\":\"}{\\\"\",\"b\":[1,{\"c\":2}]}\n,\r\n{\"d\":3}\n]"
        var scanner = JSONArrayScanner()
        var got: [String] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            scanner.feed(bytes[i..<min(i + n, bytes.count)]) { got.append(String(decoding: $0, as: UTF8.self)) }
            i += n
        }
        #expect(got == ["{\"a\":\"}{\\\"\",\"b\":[1,{\"c\":2}]}", "{\"d\":3}"])
    }
}
