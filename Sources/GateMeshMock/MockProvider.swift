import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The mock provider as a runnable server: `gatemesh mock-provider --listen 127.0.0.1:9999`.
public struct MockProvider: Sendable {
    public let host: String
    public let port: Int
    public let stats = MockStats()

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Builds the Hummingbird application; `onRunning` receives the bound port (useful with port 0).
    public func application(logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            responder: MockResponder(stats: stats),
            configuration: .init(address: .hostname(host, port: port), serverName: "gatemesh-mock"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// Runs until SIGTERM or SIGINT; in-flight responses get one second to finish.
    public func run(logger: Logger) async throws {
        let app = application(logger: logger) { port in
            FileHandle.standardOutput.write(Data("gatemesh mock provider listening on http://\(host):\(port)\n".utf8))
        }
        var config = ServiceGroupConfiguration(services: [app], logger: logger)
        config.gracefulShutdownSignals = [.sigterm, .sigint]
        config.maximumGracefulShutdownDuration = .seconds(1)
        try await ServiceGroup(configuration: config).run()
    }
}
