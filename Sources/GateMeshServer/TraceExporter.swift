import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Sends a span per request to an OpenTelemetry collector (`telemetry.otlp`) over OTLP/HTTP
/// (protobuf, `OTLPTraces`), off the request path: a finished request only appends its row to a
/// bounded queue (`queueSize`; past it the span is dropped and counted); the service sends what
/// waits every second, or at once when 512 wait, 512 spans a request. A batch the collector
/// refuses or does not answer is tried three times (1 s, then 2 s apart) and then dropped and
/// counted: traces are best effort, the request log is the record.
final class TraceExporter: Service, Sendable {
    let config: OTLPConfig
    let client: UpstreamClient
    let node: String
    let logger: Logger

    static let batchSpans = 512

    struct State {
        var queue: [RequestRecord] = []
        /// Fallback chains' spans, sent with the first batch after them (the queue's bound counts them).
        var chains: [ChainSpan] = []
        var exported = 0
        var dropped = 0
        var failedBatches = 0
    }

    let state = NIOLockedValueBox(State())
    private let wake = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    init(config: OTLPConfig, client: UpstreamClient, node: String, logger: Logger) {
        self.config = config
        self.client = client
        self.node = node
        self.logger = logger
    }

    /// The trace a request belongs to: the client's (`traceparent`, which also decides whether it
    /// is sampled), continued with a span of the gateway's, or a new one.
    func trace(_ headers: HTTPFields) -> TraceContext {
        var rng = SystemRandomNumberGenerator()
        return TraceContext.continuing(headers[Self.traceparent], traceState: headers[Self.tracestate], using: &rng)
            ?? TraceContext.start(sampleRatio: config.sampleRatio, using: &rng)
    }

    static let traceparent = HTTPField.Name("traceparent")!
    static let tracestate = HTTPField.Name("tracestate")!

    /// A finished request (called on the request path: never waits).
    func record(_ r: RequestRecord) {
        guard r.trace?.sampled == true else { return }
        enqueue { $0.queue.append(r) }
    }

    /// A fallback chain's span, once its answer is chosen (on the request path: never waits).
    func record(_ c: ChainSpan) {
        guard c.trace.sampled else { return }
        enqueue { $0.chains.append(c) }
    }

    private func enqueue(_ add: (inout State) -> Void) {
        let full = state.withLockedValue { s -> Bool in
            guard s.queue.count + s.chains.count < config.queueSize else {
                s.dropped += 1
                return false
            }
            add(&s)
            return s.queue.count + s.chains.count >= Self.batchSpans
        }
        if full { wake.continuation.yield() }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [wake] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        wake.continuation.yield()
                    }
                }
                for await _ in wake.stream { await flush() }
                group.cancelAll()
            }
        } onGracefulShutdown: { [wake] in
            wake.continuation.finish()
        }
        // What is left, once: a collector that is down must not hold the node's shutdown.
        await flush(attempts: 1)
    }

    /// Sends everything queued, each batch tried up to `attempts` times.
    func flush(attempts: Int = 3) async {
        let (taken, chains) = state.withLockedValue { s -> ([RequestRecord], [ChainSpan]) in
            defer { (s.queue, s.chains) = ([], []) }
            return (s.queue, s.chains)
        }
        var start = 0
        var first = true
        while start < taken.count || first && !chains.isEmpty {
            let batch = Array(taken[start..<min(taken.count, start + Self.batchSpans)])
            start += batch.count
            let batchChains = first ? chains : []
            first = false
            let body = OTLPTraces.export(batch, chains: batchChains, serviceName: "gatemesh", node: node, version: GateMeshVersion.current)
            var sent = false
            for attempt in 0..<attempts {
                if attempt > 0 { try? await Task.sleep(for: .seconds(attempt)) }
                if let failure = await send(body) {
                    if attempt == attempts - 1 { logger.warning("the OTLP collector refused a batch of spans; dropped", metadata: ["error": "\(failure)", "spans": "\(batch.count)"]) }
                    continue
                }
                sent = true
                break
            }
            state.withLockedValue { s in
                if sent { s.exported += batch.count + batchChains.count } else {
                    s.dropped += batch.count + batchChains.count
                    s.failedBatches += 1
                }
            }
        }
    }

    private func send(_ body: [UInt8]) async -> String? {
        await client.post(config.endpoint, headers: [("content-type", "application/x-protobuf"), ("user-agent", "gatemesh-otlp")],
                          configured: config.headers, body: body,
                                 timeouts: UpstreamTimeouts(connectMs: 5000, firstByteMs: 10_000, totalMs: 30_000))
    }
}
