import CGateMeshCurl
@testable import GateMeshUpstream
import Testing

/// The request's header lines laid out by hand as libcurl's `curl_slist` (`RequestBlock`).
@Suite struct RequestBlockTests {
    /// The lines of the block's list, in order, as libcurl walks them.
    func lines(_ block: RequestBlock) -> [String] {
        var out: [String] = []
        var node = block.headers
        while let n = node {
            out.append(String(cString: n.pointee.data))
            node = n.pointee.next
        }
        return out
    }

    @Test func eachFieldIsOneLineThenTheBlanksAndAnEmptyValueIsSentAsNameSemicolon() {
        let block = RequestBlock(fields: [("content-type", "application/json"), ("x-empty", ""), ("authorization", "Bearer sk-é")],
                                 lines: ["Expect:", "Accept:"])
        defer { block.raw.deallocate() }
        #expect(lines(block) == ["content-type: application/json", "x-empty;", "authorization: Bearer sk-é", "Expect:", "Accept:"])
        #expect(block.errorBuffer.pointee == 0)
    }

    @Test func noLinesIsAnEmptyListWithAnErrorBuffer() {
        let block = RequestBlock(fields: [], lines: [])
        defer { block.raw.deallocate() }
        #expect(block.headers == nil)
        // The whole error buffer is there and zeroed (libcurl writes up to CURL_ERROR_SIZE bytes).
        #expect((0...Int(CURL_ERROR_SIZE)).allSatisfy { block.errorBuffer[$0] == 0 })
    }

    @Test func longValuesKeepEveryByte() {
        let value = String(repeating: "v", count: 10_000)
        let block = RequestBlock(fields: [("x-long", value)], lines: ["Expect:"])
        defer { block.raw.deallocate() }
        #expect(lines(block) == ["x-long: " + value, "Expect:"])
    }
}
