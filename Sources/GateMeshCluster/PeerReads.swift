import GateMeshCore

/// Reads of another node's request log over the peer link (`readAsk`, `readAnswer` frames): the
/// operator API on one node answers for the whole cluster by asking every live member for its
/// part and adding the parts up. An ask names what it reads (`Read`) and carries the operator's
/// query as a JSON object of strings; an answer carries its ask's id and either the part (JSON)
/// or why there is none.
public enum ReadCodec {
    public enum Read: UInt8, Sendable, CaseIterable {
        /// `/api/analytics`: the node's `AnalyticsPartial`.
        case analytics = 1
        /// `/api/logs`: a page of the node's rows, `{"data": [...], "next_cursor": ...}`.
        case logs = 2
        /// `/api/logs/{id}`: the node's row with that id, or `null`.
        case log = 3
    }

    /// The longest query an ask carries (its JSON text).
    public static let maxQueryBytes = 16 * 1024

    public static func ask(id: UInt64, _ read: Read, query: [String: String]) -> Frame {
        var w = BinaryWriter()
        w.uint(id)
        w.byte(read.rawValue)
        let object = JSONObject(query.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
        w.blob(JSONValue.object(object).bytes)
        return Frame(kind: .readAsk, payload: w.bytes)
    }

    public static func decodeAsk(_ payload: [UInt8]) throws(DecodeError) -> (id: UInt64, read: Read, query: [String: String]) {
        var r = BinaryReader(payload)
        let id = try r.uint()
        let b = try r.byte()
        guard let read = Read(rawValue: b) else { throw DecodeError("unknown read \(b)") }
        guard case .object(let object)? = JSONValue.parse(try r.blob(max: maxQueryBytes)) else {
            throw DecodeError("a read's query is not a JSON object")
        }
        var query: [String: String] = [:]
        for (key, value) in object.pairs {
            guard let text = value.stringValue else { throw DecodeError("a read's query value is not a string") }
            query[key] = text
        }
        return (id, read, query)
    }

    /// What a node answers: its part, or why it has none (a bad query, a store that failed).
    public enum Answer: Sendable, Equatable {
        case part([UInt8])
        case failed(String)
    }

    public static func answer(id: UInt64, _ a: Answer) -> Frame {
        var w = BinaryWriter()
        w.uint(id)
        switch a {
        case .part(let bytes):
            w.byte(0)
            w.blob(bytes)
        case .failed(let why):
            w.byte(1)
            w.string(String(why.utf8.prefix(1000)) ?? "failed")
        }
        return Frame(kind: .readAnswer, payload: w.bytes)
    }

    public static func decodeAnswer(_ payload: [UInt8], max: Int) throws(DecodeError) -> (id: UInt64, answer: Answer) {
        var r = BinaryReader(payload)
        let id = try r.uint()
        switch try r.byte() {
        case 0: return (id, .part(try r.blob(max: max)))
        case 1: return (id, .failed(try r.string()))
        case let b: throw DecodeError("unknown read answer \(b)")
        }
    }

    /// The bytes an answer adds around its part.
    public static let answerOverhead = 32
}

/// The asking side of peer reads: each ask waits for its member's answer until its deadline, or
/// until the member is gone. Pure: the caller passes the time (monotonic), keeps what wakes the
/// asker (`Waiter`), and resumes the waiters it gets back, with the answer or with nothing.
public struct PeerAsks<Waiter> {
    public struct Ask {
        public var waiter: Waiter
        public var member: String
        public var deadline: Int64
    }

    public private(set) var waiting: [UInt64: Ask] = [:]
    private var next: UInt64 = 1

    public init() {}

    public mutating func nextID() -> UInt64 {
        defer { next += 1 }
        return next
    }

    public mutating func start(_ id: UInt64, member: String, waiter: Waiter, deadline: Int64) {
        waiting[id] = Ask(waiter: waiter, member: member, deadline: deadline)
    }

    /// The answer to ask `id` arrived from `member`: its waiter (nil when the ask is over, or when
    /// another member answers in its place: the answer is dropped).
    public mutating func answer(_ id: UInt64, from member: String) -> Waiter? {
        guard waiting[id]?.member == member else { return nil }
        return waiting.removeValue(forKey: id)?.waiter
    }

    /// Asks past their deadline: their waiters, to resume with nothing.
    public mutating func expire(now: Int64) -> [Waiter] {
        let due = waiting.filter { $0.value.deadline <= now }.map(\.key)
        return due.compactMap { waiting.removeValue(forKey: $0)?.waiter }
    }

    /// `member` died or left: its asks' waiters, to resume with nothing.
    public mutating func memberGone(_ member: String) -> [Waiter] {
        let gone = waiting.filter { $0.value.member == member }.map(\.key)
        return gone.compactMap { waiting.removeValue(forKey: $0)?.waiter }
    }

    /// The asker gave up on ask `id`: its waiter (nil when it is over).
    public mutating func cancel(_ id: UInt64) -> Waiter? {
        waiting.removeValue(forKey: id)?.waiter
    }
}

extension PeerAsks: Sendable where Waiter: Sendable {}
extension PeerAsks.Ask: Sendable where Waiter: Sendable {}
