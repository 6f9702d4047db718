import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshStore
import GateMeshUpstream
import Hummingbird
import Logging
import ServiceLifecycle

/// One GateMesh node: the store, the upstream client and the HTTP server, wired from a config.
///
/// `run()` serves until SIGTERM or SIGINT, then stops accepting connections, lets in-flight
/// requests finish for up to `node.drain_timeout`, cancels what is left, and returns.
public final class GatewayNode: Sendable {
    public let config: Settings
    let store: NodeStore
    let client: UpstreamClient
    let state: NodeState
    let logger: Logger
    /// The request log; its writer runs as a service beside the HTTP server.
    public let requestLog: RequestLog
    let prices: PriceTable
    let metrics = NodeMetrics()
    let limits: LimitsService
    let alerts: AlertDispatcher?
    let exporter: LogExporter?
    let traces: TraceExporter?
    let cache: ResponseCache
    let cluster: ClusterService?
    let reloader: ConfigReloader

    /// Opens the data directory and starts the upstream client. Throws `StoreError` when the data
    /// directory cannot be used. `source` reads the config file again for a reload (SIGHUP,
    /// `POST /api/config/reload`); without one, a reload is refused.
    public init(config: Settings, logger: Logger, source: (@Sendable () throws -> Settings)? = nil) throws {
        self.config = config
        self.logger = logger
        self.store = try NodeStore(dataDir: config.node.dataDir)
        let identity = try store.recordStart(nodeName: config.node.name)
        var logConfig = RequestLog.Configuration()
        logConfig.queueCapacity = config.logging.queueSize
        logConfig.retention = config.logging.retentionMs == 0 ? nil : .milliseconds(config.logging.retentionMs)
        logConfig.maxRows = config.logging.maxRows == 0 ? nil : config.logging.maxRows
        if config.storage.maxBytes > 0 {
            logConfig.maxBytes = config.storage.maxBytes
            // A cap needs freed pages to go back to the file system: a file made before this build
            // is rewritten once (VACUUM) to allow it.
            if try !store.canReclaim() {
                logger.notice("rewriting the database once so that storage.max_bytes can give freed space back (VACUUM)",
                              metadata: ["path": "\(store.path)"])
                try store.enableReclaim()
            }
        }
        self.requestLog = try RequestLog(store: store, configuration: logConfig)
        requestLog.warnOnWriteErrors { [logger] error, rows in
            logger.warning("cannot write request log rows: the node serves on without logging them",
                           metadata: ["error": "\(error)", "rows_lost": "\(rows)"])
        }
        self.prices = try PriceTable.shipped().applying(config.providers.mapValues(\.models))
        self.state = NodeState(config: config, identity: identity, startedAtUnix: Int(Date().timeIntervalSince1970))
        let client = UpstreamClient(
            configuration: .init(http2: config.upstream.http2, caFile: config.upstream.caFile,
                                 responseBufferBytes: config.upstream.responseBufferBytes),
            logger: logger)
        self.client = client
        let log = self.requestLog
        let alerts = config.alerts.webhook.map {
            AlertDispatcher(url: $0, secret: config.alerts.secret, client: client, alerts: log.alerts, logger: logger)
        }
        self.alerts = alerts
        self.exporter = config.logging.export.map {
            LogExporter(config: $0, log: log, client: client, node: config.node.name, logger: logger)
        }
        self.traces = config.otlp.map { TraceExporter(config: $0, client: client, node: config.node.name, logger: logger) }
        self.cache = try ResponseCache(config: config.cache, store: store, logger: logger)
        // Each start is a new epoch of the journal: what earlier runs left open is charged now.
        let journal = try ReservationJournal(directory: (config.node.dataDir as NSString).appendingPathComponent("journal"),
                                             epoch: UInt64(identity.starts))
        self.limits = try LimitsService(node: identity.nodeID, nodeName: config.node.name, configRules: config.gateways.flatMap(\.limits),
                                        gateways: Set(config.gateways.map(\.id)), store: store, journal: journal,
                                        reservationTimeoutMs: config.reservations.timeoutMs,
                                        rightsWaitMs: config.reservations.rightsWaitMs, log: log, alerts: alerts, logger: logger)
        let limits = self.limits
        if let clusterConfig = config.cluster {
            self.cluster = try ClusterService(config: clusterConfig, nodeName: config.node.name, nodeID: identity.nodeID,
                                              region: config.node.region, configDigest: state.loaded.sharedDigest, limits: limits,
                                              cache: cache, store: store, logger: logger)
        } else {
            self.cluster = nil
        }
        self.reloader = ConfigReloader(source: source, state: state, limits: limits, cache: cache, cluster: cluster, logger: logger)
        let reloader = self.reloader
        let operatorAPI = OperatorAPI(state: state, reads: ClusterReads(local: LogAPI(log: requestLog), cluster: cluster, nodeName: config.node.name), metrics: metrics, client: client, limits: limits,
                                      cache: cache, cluster: cluster, reloader: reloader, exporter: exporter, traces: traces)
        let routeHealth = RouteHealth()
        let parts = (client: client, log: requestLog, metrics: metrics, limits: limits, cache: cache, state: state, logger: logger,
                     traces: traces)
        reloader.start(config: config, prices: prices) { config, prices in
            // At start and at every reload: the redaction rules apply from the next batch of rows.
            parts.log.redact(with: GatewayNode.redactor(config.logging.redact))
            let catalogue = ProviderCatalogue(overrides: config.providers)
            return GatewayResponder(
                router: PathRouter(catalogue: catalogue, gateways: Set(config.gateways.map(\.id))),
                proxy: ProxyHandler(config: config, catalogue: catalogue, client: parts.client, prices: prices, log: parts.log,
                                    metrics: parts.metrics, limits: parts.limits, cache: parts.cache, logger: parts.logger,
                                    traces: parts.traces),
                operatorAPI: operatorAPI, state: parts.state, routeHealth: routeHealth, logger: parts.logger)
        }
    }

    /// The Hummingbird application serving this node; `onRunning` gets the bound port.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let responder = LiveResponder(reloader: reloader)
        let limits = config.limits
        var rlimit = rlimit()
        let openFiles = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rlimit) == 0 && rlimit.rlim_cur < rlim_t(Int.max) ? Int(rlimit.rlim_cur) : 65_536
        let connectionCap = limits.connectionCap(openFiles: openFiles)
        logger.debug("client connections capped", metadata: ["max": "\(connectionCap)", "open_files": "\(openFiles)"])
        return Application(
            responder: responder,
            server: .http1(configuration: .init(
                idleTimeout: .seconds(120),
                httpDecoderConfiguration: .init(maxHeaderFieldSize: limits.maxHeaderBytes, maxHeaderListSize: limits.maxHeaderBytes,
                                                maxHeaderFieldCount: limits.maxHeaderCount))),
            configuration: .init(address: .hostname(config.node.listen.host, port: config.node.listen.port), serverName: nil,
                                 availableConnectionsDelegate: .maximum(connectionCap, logger: logger)),
            onServerRunning: { [state] channel in
                let port = channel.localAddress?.port ?? 0
                state.bound(port: port)
                await onRunning(port)
            },
            logger: logger)
    }

    /// Serves until SIGTERM/SIGINT, drains, and shuts the upstream client down.
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = application(onRunning: onRunning)
        // Shut down in reverse: the server drains first, then the log writes what is still queued.
        var services: [any Service] = [requestLog, limits, cache]
        if let cluster { services.append(cluster) }
        if let alerts { services.append(alerts) }
        if let exporter { services.append(exporter) }
        if let traces { services.append(traces) }
        services += [ReloadOnHangup(reloader: reloader), app]
        var groupConfig = ServiceGroupConfiguration(services: services, logger: logger)
        groupConfig.gracefulShutdownSignals = [.sigterm, .sigint]
        groupConfig.maximumGracefulShutdownDuration = .milliseconds(config.node.drainTimeoutMs)
        // After the drain timeout, cancelled services get this long to finish (the log writes what
        // is still queued); past it, ServiceLifecycle stops the process with a fatal error.
        groupConfig.maximumCancellationDuration = .seconds(30)
        defer { client.shutdown() }
        try await ServiceGroup(configuration: groupConfig).run()
        logger.info("stopped", metadata: ["node": "\(config.node.name)"])
    }

    /// Stops the upstream client (for tests that run the application themselves).
    public func shutdown() {
        client.shutdown()
    }
}

extension GatewayNode {
    /// `logging.redact` as rules (the config loader has checked every name and pattern).
    static func redactor(_ rules: [RedactRule]) -> Redactor {
        Redactor(rules: rules.compactMap { r in
            if let pattern = r.pattern { return try? Redactor.rule(r.name, pattern: pattern, replace: r.replace ?? "[REDACTED]") }
            return Redactor.builtIn(r.name)
        })
    }
}
