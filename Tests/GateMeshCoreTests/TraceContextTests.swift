import GateMeshCore
import Testing

/// W3C Trace Context: a client's `traceparent` is continued with the gateway's own span; a
/// malformed one starts a new trace.
@Suite struct TraceContextTests {
    @Test func aClientsTraceIsContinuedWithANewSpan() throws {
        var rng = SystemRandomNumberGenerator()
        let t = try #require(TraceContext.continuing("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", traceState: "a=1", using: &rng))
        #expect(t.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736" && t.parentSpanID.map(TraceContext.hex) == "00f067aa0ba902b7")
        #expect(t.sampled && t.traceState == "a=1" && t.spanID.count == 8 && t.spanID != t.parentSpanID)
        #expect(t.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-\(TraceContext.hex(t.spanID))-01")
        let unsampled = try #require(TraceContext.continuing("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", traceState: nil, using: &rng))
        #expect(!unsampled.sampled && unsampled.traceparent.hasSuffix("-00"))
        // A later version may add fields; it is read as version 00.
        #expect(TraceContext.continuing("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", traceState: nil, using: &rng) != nil)
    }

    @Test(arguments: [
        "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
    ])
    func aMalformedTraceparentIsNotContinued(_ header: String) {
        var rng = SystemRandomNumberGenerator()
        #expect(TraceContext.continuing(header, traceState: nil, using: &rng) == nil)
    }

    @Test func aNewTraceIsSampledByTheRatio() {
        var rng = SystemRandomNumberGenerator()
        #expect(TraceContext.start(sampleRatio: 1, using: &rng).sampled)
        #expect(!TraceContext.start(sampleRatio: 0, using: &rng).sampled)
        let sampled = (0..<2000).filter { _ in TraceContext.start(sampleRatio: 0.25, using: &rng).sampled }.count
        #expect((300...700).contains(sampled))
        let t = TraceContext.start(sampleRatio: 1, using: &rng)
        #expect(t.parentSpanID == nil && t.traceID.count == 16 && t.traceID.contains { $0 != 0 })
    }

    @Test func aStepOfAChainIsAChildOfTheChainsSpanInTheSameTrace() {
        var rng = SystemRandomNumberGenerator()
        var chain = TraceContext.start(sampleRatio: 1, using: &rng)
        chain.traceState = "a=1"
        let step = chain.child(using: &rng)
        #expect(step.traceID == chain.traceID && step.parentSpanID == chain.spanID && step.spanID != chain.spanID)
        #expect(step.parentInGateway && !chain.parentInGateway && step.sampled && step.traceState == "a=1")
    }
}
