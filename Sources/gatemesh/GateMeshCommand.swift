import ArgumentParser
import Foundation
import GateMeshConfig
import GateMeshCore
import GateMeshMock
import GateMeshPeer
import GateMeshServer
import Logging

@main
struct GateMeshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatemesh",
        abstract: "A self-hosted AI gateway that runs as a cluster of peer nodes.",
        version: GateMeshVersion.current,
        subcommands: [Serve.self, CheckConfig.self, ReloadCommand.self, KeysCommand.self, MockProviderCommand.self, CertsCommand.self, StatusCommand.self, SimulateCommand.self],
        defaultSubcommand: Serve.self
    )

    static func main() async {
        OpenSSLProcess.initialize()
        await main(nil)
    }
}

/// Options shared by the commands that read a config.
struct ConfigOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The YAML config file. Without one, the embedded defaults are used.")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"

    /// The config file: `--config`, else `GATEMESH_CONFIG`; nil runs on the embedded defaults.
    var path: String? { config ?? ProcessInfo.processInfo.environment["GATEMESH_CONFIG"] }

    /// Loads and validates the config, or prints what is wrong and exits with status 2.
    func load() throws -> Settings {
        let environment = ProcessInfo.processInfo.environment
        guard let path else {
            var defaults = Settings()
            if let token = environment["GATEMESH_ADMIN_TOKEN"], !token.isEmpty { defaults.admin.token = token }
            return defaults
        }
        do {
            return try Self.read(path)
        } catch {
            FileHandle.standardError.write(Data("gatemesh: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// Reads and validates the config file at `path` (at start, and again for a reload).
    static func read(_ path: String) throws(ConfigFileError) -> Settings {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigFileError(description: "cannot read config file '\(path)': \(error.localizedDescription)")
        }
        do {
            return try ConfigLoader.parse(yaml: text, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ConfigFileError(description: "\(path): \(error)")
        }
    }

    func makeLogger(_ label: String) -> Logger {
        LoggingSystem.bootstrap { StderrLogHandler(label: $0) }
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }
}

struct ConfigFileError: Error, CustomStringConvertible {
    var description: String
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a gateway node.")

    @OptionGroup var options: ConfigOptions

    /// Raises the soft limit on open files to the hard one: every client and peer connection is a
    /// file, and the usual soft limit (1,024) is far below what a gateway serves.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(resource, &limit)
    }

    @Option(help: "Override node.listen, e.g. 127.0.0.1:8787.")
    var listen: String?

    @Option(help: "Override node.data_dir.")
    var dataDir: String?

    func run() async throws {
        var config = try options.load()
        let listenAddress = listen.flatMap(ListenAddress.parse)
        if let listen, listenAddress == nil {
            FileHandle.standardError.write(Data("gatemesh: --listen: expected host:port, got '\(listen)'\n".utf8))
            throw ExitCode(2)
        }
        let dataDir = self.dataDir
        // The command line's overrides hold for every reload too.
        let overrides: @Sendable (inout Settings) -> Void = { config in
            if let listenAddress { config.node.listen = listenAddress }
            if let dataDir { config.node.dataDir = dataDir }
        }
        overrides(&config)
        var source: (@Sendable () throws -> Settings)?
        if let path = options.path {
            source = {
                var config = try ConfigOptions.read(path)
                overrides(&config)
                return config
            }
        }
        let logger = options.makeLogger("gatemesh")
        for warning in config.exposureWarnings { logger.warning("\(warning)") }
        Self.raiseOpenFileLimit()
        // A file-size limit (ulimit -f, systemd's LimitFSIZE) reached by the database must fail
        // that write (EFBIG, as a full disk would: the log drops the rows, counts them and says
        // so), not kill the node with SIGXFSZ.
        signal(SIGXFSZ, SIG_IGN)
        let node: GatewayNode
        do {
            node = try GatewayNode(config: config, logger: logger, source: source)
        } catch {
            FileHandle.standardError.write(Data("gatemesh: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let name = config.node.name
        let listen = config.node.listen
        do {
            try await node.run { port in
                let address = ListenAddress(host: listen.host, port: port)
                FileHandle.standardOutput.write(Data("gatemesh node '\(name)' listening on http://\(address)\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("gatemesh: node '\(name)' on \(listen) stopped with an error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a config file and print the settings in force.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        print("config OK: node '\(config.node.name)' on \(config.node.listen), data in \(config.node.dataDir)")
        print("gateways: \(config.gateways.map { $0.authTokens.isEmpty ? $0.id : "\($0.id) (token)" }.joined(separator: ", "))")
        let providers = config.providers.keys.sorted()
        print("provider overrides: \(providers.isEmpty ? "none" : providers.joined(separator: ", "))")
        print("admin API: \(config.admin.token == nil ? "disabled (no admin.token)" : "enabled")")
        for warning in config.exposureWarnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
    }
}

struct MockProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-provider",
        abstract: "Run the mock AI provider (OpenAI, Anthropic and Google AI Studio formats) for tests and offline use.")

    @Option(help: "Address to listen on.")
    var listen: String = "127.0.0.1:9999"

    @Option(help: "Log level.")
    var logLevel: String = "warning"

    func run() async throws {
        guard let address = ListenAddress.parse(listen) else {
            FileHandle.standardError.write(Data("gatemesh: --listen: expected host:port, got '\(listen)'\n".utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { StderrLogHandler(label: $0) }
        var logger = Logger(label: "gatemesh-mock")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        try await MockProvider(host: address.host, port: address.port).run(logger: logger)
    }
}
