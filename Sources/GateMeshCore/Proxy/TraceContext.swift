/// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` a client sends,
/// and the one the gateway sends upstream with its own span as the parent. Pure.
public struct TraceContext: Sendable, Equatable {
    /// 16 bytes, not all zero.
    public var traceID: [UInt8]
    /// This request's span in the gateway: 8 bytes, not all zero.
    public var spanID: [UInt8]
    /// The client's span (from its `traceparent`); nil when the trace starts here.
    public var parentSpanID: [UInt8]?
    public var sampled: Bool
    /// The client's `tracestate`, passed on unchanged.
    public var traceState: String?
    /// The parent is a span of the gateway's own (a fallback chain's), not the client's: this
    /// span is then `INTERNAL`, not `SERVER`.
    public var parentInGateway = false

    public init(traceID: [UInt8], spanID: [UInt8], parentSpanID: [UInt8]?, sampled: Bool, traceState: String? = nil) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.sampled = sampled
        self.traceState = traceState
    }

    /// The client's trace, continued with a new span of the gateway's: nil when `traceparent` is
    /// absent or malformed (the trace then starts here: `start`).
    public static func continuing(_ traceparent: String?, traceState: String?, using rng: inout some RandomNumberGenerator) -> TraceContext? {
        guard let header = traceparent else { return nil }
        // version "-" trace-id "-" parent-id "-" flags; a version other than 00 may add fields after.
        let parts = header.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, let version = hex(parts[0], bytes: 1), version != [0xFF], version == [0] ? parts.count == 4 : true,
              let trace = hex(parts[1], bytes: 16), trace.contains(where: { $0 != 0 }),
              let parent = hex(parts[2], bytes: 8), parent.contains(where: { $0 != 0 }),
              let flags = hex(parts[3], bytes: 1) else { return nil }
        return TraceContext(traceID: trace, spanID: newSpanID(using: &rng), parentSpanID: parent, sampled: flags[0] & 1 == 1,
                            traceState: traceState.flatMap { $0.isEmpty || $0.utf8.count > 512 ? nil : $0 })
    }

    /// A new trace, sampled with probability `ratio`.
    public static func start(sampleRatio ratio: Double, using rng: inout some RandomNumberGenerator) -> TraceContext {
        var trace = [UInt8](repeating: 0, count: 16)
        repeat { for i in trace.indices { trace[i] = UInt8.random(in: 0...255, using: &rng) } } while trace.allSatisfy { $0 == 0 }
        return TraceContext(traceID: trace, spanID: newSpanID(using: &rng), parentSpanID: nil,
                            sampled: ratio >= 1 || (ratio > 0 && Double.random(in: 0..<1, using: &rng) < ratio))
    }

    static func newSpanID(using rng: inout some RandomNumberGenerator) -> [UInt8] {
        var id = [UInt8](repeating: 0, count: 8)
        repeat { for i in id.indices { id[i] = UInt8.random(in: 0...255, using: &rng) } } while id.allSatisfy { $0 == 0 }
        return id
    }

    /// A span of this trace whose parent is this one (a fallback chain's step).
    public func child(using rng: inout some RandomNumberGenerator) -> TraceContext {
        var c = TraceContext(traceID: traceID, spanID: Self.newSpanID(using: &rng), parentSpanID: spanID, sampled: sampled, traceState: traceState)
        c.parentInGateway = true
        return c
    }

    /// The `traceparent` to send upstream: this trace, with the gateway's span as the parent.
    public var traceparent: String { "00-\(Self.hex(traceID))-\(Self.hex(spanID))-\(sampled ? "01" : "00")" }

    public var traceIDHex: String { Self.hex(traceID) }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lowercase hex of exactly `bytes` bytes (W3C forbids uppercase).
    static func hex(_ text: Substring, bytes: Int) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count == bytes * 2 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var out = [UInt8]()
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
        }
        return out
    }
}
