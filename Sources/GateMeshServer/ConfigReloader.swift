import Foundation
import GateMeshAccounting
import GateMeshCore
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import UnixSignals

/// Re-reads the config file and puts what can change in place in force, all of it or nothing:
/// providers, gateways (tokens, rules, routes, retries, cache TTLs), the admin token, cache sizes,
/// upstream timeouts and the body limits. A file that does not load, or that changes a setting
/// read only at start (`Settings.restartOnlyChanges`), leaves the running config as it is
/// and says why. Triggered by SIGHUP and by `POST /api/config/reload` (`gatemesh reload`).
final class ConfigReloader: Sendable {
    /// Reads and validates the config file (nil: the node runs on its embedded defaults).
    let source: (@Sendable () throws -> Settings)?
    let state: NodeState
    let limits: LimitsService
    let cache: ResponseCache
    let cluster: ClusterService?
    let logger: Logger
    /// The responder in force, swapped whole so that each request sees one config.
    let responder = NIOLockedValueBox<GatewayResponder?>(nil)
    typealias Factory = @Sendable (Settings, PriceTable) -> GatewayResponder
    /// Builds a responder for a config (its catalogue, router and proxy); set by `start`.
    private let factory = NIOLockedValueBox<Factory?>(nil)
    /// One reload at a time.
    private let running = NIOLock()

    init(source: (@Sendable () throws -> Settings)?, state: NodeState, limits: LimitsService, cache: ResponseCache,
         cluster: ClusterService?, logger: Logger) {
        self.source = source
        self.state = state
        self.limits = limits
        self.cache = cache
        self.cluster = cluster
        self.logger = logger
    }

    /// Puts the first responder in force, and keeps `factory` to build those of reloaded configs.
    /// (The responder's operator API holds this reloader, so the factory comes after it.)
    func start(config: Settings, prices: PriceTable, factory: @escaping Factory) {
        self.factory.withLockedValue { $0 = factory }
        responder.withLockedValue { $0 = factory(config, prices) }
    }

    struct Outcome {
        /// The top-level sections that changed (empty: the file says what is in force already).
        var changed: [String]
        var digest: String
        var sharedDigest: String
    }

    /// Re-reads the file and applies it; `trigger` names what asked (for the log).
    func reload(trigger: String) throws(GatewayError) -> Outcome {
        guard let source else {
            throw GatewayError(status: 409, type: "invalid_request_error", code: "no_config_file",
                               message: "this node runs on its embedded defaults (no --config or GATEMESH_CONFIG): there is no file to reload")
        }
        running.lock()
        defer { running.unlock() }
        do throws(GatewayError) {
            let new: Settings
            do { new = try source() } catch {
                throw GatewayError.badRequest("the config file was not loaded, and the running config is unchanged: \(error)",
                                              code: "invalid_config")
            }
            return try apply(new, trigger: trigger)
        } catch {
            logger.error("config reload refused; the running config is unchanged", metadata: ["trigger": "\(trigger)", "reason": "\(error.message)"])
            throw error
        }
    }

    /// Puts `new` in force, or throws (changing nothing) when it cannot be.
    func apply(_ new: Settings, trigger: String) throws(GatewayError) -> Outcome {
        let old = state.config
        let restart = old.restartOnlyChanges(to: new)
        guard restart.isEmpty else {
            throw GatewayError(status: 409, type: "invalid_request_error", code: "config_needs_restart",
                               message: "the config changes \(restart.joined(separator: ", ")), which take a restart; nothing was reloaded. "
                                   + "Restart the node to change them, or put them back to reload the rest")
        }
        let prices: PriceTable
        do { prices = try PriceTable.shipped().applying(new.providers.mapValues(\.models)) } catch {
            throw GatewayError.badRequest("the config's prices cannot be used, and the running config is unchanged: \(error)", code: "invalid_config")
        }
        // The one step that can refuse (a config rule that takes an admin-API rule's id) goes first.
        try limits.reloadConfig(rules: new.gateways.flatMap(\.limits), gateways: Set(new.gateways.map(\.id)))
        cache.reconfigure(new.cache)
        state.reloaded(new, atMs: WallClock.nowMs())
        let next = factory.withLockedValue { $0! }(new, prices)
        responder.withLockedValue { $0 = next }
        let loaded = state.loaded
        cluster?.setConfigDigest(loaded.sharedDigest)
        let changed = old.changedSections(to: new)
        logger.info("config reloaded", metadata: [
            "trigger": "\(trigger)", "changed": "\(changed.isEmpty ? "nothing" : changed.joined(separator: ","))",
            "digest": "\(loaded.digest)", "gateways_digest": "\(loaded.sharedDigest)",
        ])
        for warning in new.exposureWarnings { logger.warning("\(warning)") }
        return Outcome(changed: changed, digest: loaded.digest, sharedDigest: loaded.sharedDigest)
    }
}

/// Reloads the config on SIGHUP, for as long as the node runs.
struct ReloadOnHangup: Service {
    let reloader: ConfigReloader

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            // The outcome is logged either way.
            _ = try? reloader.reload(trigger: "SIGHUP")
        }
    }
}

/// The responder Hummingbird calls: the `GatewayResponder` of the config in force.
struct LiveResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let reloader: ConfigReloader

    func respond(to request: Request, context: Context) async throws -> Response {
        try await reloader.responder.withLockedValue { $0! }.respond(to: request, context: context)
    }
}
