import GateMeshCore
import GateMeshStore
import NIOConcurrencyHelpers
import Synchronization

/// What the operator endpoints report about this node while it runs.
final class NodeState: Sendable {
    /// The config in force: the one the node started with, or the last one reloaded.
    var config: Settings { current.withLockedValue { $0.config } }
    /// When the config in force was loaded (Unix ms), and its digests.
    var loaded: (atMs: Int64, digest: String, sharedDigest: String) {
        current.withLockedValue { ($0.loadedAtMs, $0.digest, $0.sharedDigest) }
    }
    private let current: NIOLockedValueBox<Loaded>
    struct Loaded {
        var config: Settings
        var loadedAtMs: Int64
        var digest: String
        var sharedDigest: String
    }
    let identity: NodeStore.Identity
    let startedAt: ContinuousClock.Instant
    let startedAtUnix: Int
    private let inFlightCounter = Atomic<Int>(0)
    private let boundPortValue = Atomic<Int>(0)
    private let servedCounter = Atomic<Int>(0)

    init(config: Settings, identity: NodeStore.Identity, startedAtUnix: Int) {
        self.current = NIOLockedValueBox(Loaded(config: config, loadedAtMs: Int64(startedAtUnix) * 1000,
                                                digest: ConfigDigest.whole(config), sharedDigest: ConfigDigest.shared(config)))
        self.identity = identity
        self.startedAt = .now
        self.startedAtUnix = startedAtUnix
    }

    var inFlight: Int { inFlightCounter.load(ordering: .relaxed) }

    /// The address clients reach this node on: the configured host with the port actually bound.
    var address: ListenAddress {
        var address = config.node.listen
        let bound = boundPortValue.load(ordering: .relaxed)
        if bound != 0 { address.port = bound }
        return address
    }

    /// A reloaded config is in force from now.
    func reloaded(_ config: Settings, atMs: Int64) {
        current.withLockedValue {
            $0 = Loaded(config: config, loadedAtMs: atMs, digest: ConfigDigest.whole(config), sharedDigest: ConfigDigest.shared(config))
        }
    }

    func bound(port: Int) { boundPortValue.store(port, ordering: .relaxed) }
    var served: Int { servedCounter.load(ordering: .relaxed) }

    func begin() { inFlightCounter.add(1, ordering: .relaxed) }
    func end() {
        inFlightCounter.subtract(1, ordering: .relaxed)
        servedCounter.add(1, ordering: .relaxed)
    }
}
