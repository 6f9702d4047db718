import NIOConcurrencyHelpers

/// Counters the mock exposes at `GET /_mock/stats`, so tests can see what reached the provider.
public final class MockStats: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var requests = 0
        public var streamsStarted = 0
        public var streamsCompleted = 0
        /// Streams whose client went away before the last event was written.
        public var streamsAborted = 0
        /// Streams the mock cut on purpose (`x-mock-drop-after`).
        public var streamsDropped = 0
        public var hangs = 0
        public var inFlight = 0
        /// The usage of every answer the mock began (as its usage fields report it), whether or
        /// not the client read it to the end: what a gateway should be charged for.
        public var inputTokens = 0
        public var outputTokens = 0
    }

    private let state = NIOLockedValueBox((Snapshot(), [String: Int]()))

    public init() {}

    public var snapshot: Snapshot { state.withLockedValue { $0.0 } }

    func update(_ body: (inout Snapshot) -> Void) {
        state.withLockedValue { body(&$0.0) }
    }

    /// Counts one more request for `key` and returns the new count.
    func countFailKey(_ key: String) -> Int {
        state.withLockedValue { s in
            s.1[key, default: 0] += 1
            return s.1[key]!
        }
    }

    func reset() {
        state.withLockedValue { $0 = (Snapshot(), [:]) }
    }

    var json: String {
        let s = snapshot
        return """
        {"requests":\(s.requests),"streams_started":\(s.streamsStarted),"streams_completed":\(s.streamsCompleted),\
        "streams_aborted":\(s.streamsAborted),"streams_dropped":\(s.streamsDropped),"hangs":\(s.hangs),"in_flight":\(s.inFlight),\
        "input_tokens":\(s.inputTokens),"output_tokens":\(s.outputTokens)}
        """
    }
}
