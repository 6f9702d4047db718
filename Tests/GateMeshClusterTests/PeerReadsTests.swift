import GateMeshCluster
import GateMeshCore
import Testing

/// Reads of other nodes' logs: the frames, the asks' bookkeeping, and one cursor that pages
/// through every node's log.
@Suite struct PeerReadsTests {
    @Test func asksAndAnswersRoundTripAndBadOnesFail() throws {
        let ask = ReadCodec.ask(id: 7, .logs, query: ["limit": "5", "cursor": "0190"])
        #expect(ask.kind == .readAsk)
        let (id, read, query) = try ReadCodec.decodeAsk(ask.payload)
        #expect(id == 7 && read == .logs && query == ["limit": "5", "cursor": "0190"])
        for answer in [ReadCodec.Answer.part(Array("{}".utf8)), .failed("no")] {
            let frame = ReadCodec.answer(id: 9, answer)
            let decoded = try ReadCodec.decodeAnswer(frame.payload, max: 1 << 20)
            #expect(decoded.id == 9 && decoded.answer == answer)
        }
        #expect(throws: DecodeError.self) { try ReadCodec.decodeAnswer(ReadCodec.answer(id: 1, .part([UInt8](repeating: 1, count: 100))).payload, max: 50) }
        var unknown = ask.payload
        unknown[1] = 99
        #expect(throws: DecodeError.self) { try ReadCodec.decodeAsk(unknown) }
        var w = BinaryWriter()
        w.uint(1)
        w.byte(1)
        w.blob(Array(#"{"limit": 5}"#.utf8))
        #expect(throws: DecodeError.self) { try ReadCodec.decodeAsk(w.bytes) }
    }

    @Test func anAskEndsWithItsMembersAnswerItsDeadlineOrTheMembersEnd() {
        var asks = PeerAsks<String>()
        let a = asks.nextID(), b = asks.nextID(), c = asks.nextID()
        asks.start(a, member: "n2", waiter: "a", deadline: 100)
        asks.start(b, member: "n3", waiter: "b", deadline: 100)
        asks.start(c, member: "n3", waiter: "c", deadline: 500)
        // Another member cannot answer in n2's place.
        #expect(asks.answer(a, from: "n3") == nil)
        #expect(asks.answer(a, from: "n2") == "a")
        #expect(asks.answer(a, from: "n2") == nil)
        #expect(asks.expire(now: 99).isEmpty)
        #expect(asks.expire(now: 100) == ["b"])
        #expect(asks.memberGone("n3") == ["c"])
        #expect(asks.waiting.isEmpty)
    }

    typealias Page = LogPageMerge.Page<String>
    static func page(_ ids: [String], more: Bool) -> Page { Page(rows: ids.map { ($0, $0) }, more: more) }

    @Test func oneCursorPagesThroughEveryNodesLogOnceEach() {
        // Three nodes' logs, ids in time order (as UUIDv7 text is).
        let logs = [["a01", "a04", "a07", "a08"], ["a02", "a05"], ["a03", "a06", "a09", "a10", "a11"]]
        var cursor: String?
        var seen: [String] = []
        repeat {
            let pages = logs.map { log -> Page in
                let below = log.filter { cursor == nil || $0 < cursor! }.sorted(by: >)
                return Self.page(Array(below.prefix(3)), more: below.count > 3)
            }
            let (rows, next) = LogPageMerge.merge(pages, limit: 3)
            #expect(rows.count <= 3)
            seen += rows
            cursor = next
        } while cursor != nil
        #expect(seen == logs.flatMap { $0 }.sorted(by: >))
    }

    /// A node that sent fewer rows than asked (its answer had to fit a frame): nothing older than
    /// its last row is shown, since its unsent rows may come first.
    @Test func aNodeThatSentLessHoldsThePageAtItsLastRow() {
        let (rows, next) = LogPageMerge.merge([Self.page(["a09", "a08"], more: true), Self.page(["a07", "a06", "a05"], more: false)], limit: 4)
        #expect(rows == ["a09", "a08"])
        #expect(next == "a08")
        let (all, end) = LogPageMerge.merge([Self.page(["a02"], more: false), Self.page([], more: false)], limit: 4)
        #expect(all == ["a02"] && end == nil)
    }
}
