import Foundation
import GateMeshMock
import Hummingbird
import Logging

/// Runs the mock provider on a free loopback port for the duration of `body`.
func withMockProvider<T: Sendable>(_ body: @Sendable (_ port: Int, _ stats: MockStats) async throws -> T) async throws -> T {
    let mock = MockProvider(host: "127.0.0.1", port: 0)
    var logger = Logger(label: "mock")
    logger.logLevel = .critical
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = mock.application(logger: logger) { port in continuation.yield(port) }
    let server = Task { try await app.run() }
    defer { server.cancel() }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else { throw CancellationError() }
    return try await body(port, mock.stats)
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(within seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}
