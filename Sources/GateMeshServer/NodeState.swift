import GateMeshCore
import GateMeshStore
import Synchronization

/// What the operator endpoints report about this node while it runs.
final class NodeState: Sendable {
    let config: GateMeshConfig
    let identity: NodeStore.Identity
    let startedAt: ContinuousClock.Instant
    let startedAtUnix: Int
    private let inFlightCounter = Atomic<Int>(0)
    private let boundPortValue = Atomic<Int>(0)
    private let servedCounter = Atomic<Int>(0)

    init(config: GateMeshConfig, identity: NodeStore.Identity, startedAtUnix: Int) {
        self.config = config
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

    func bound(port: Int) { boundPortValue.store(port, ordering: .relaxed) }
    var served: Int { servedCounter.load(ordering: .relaxed) }

    func begin() { inFlightCounter.add(1, ordering: .relaxed) }
    func end() {
        inFlightCounter.subtract(1, ordering: .relaxed)
        servedCounter.add(1, ordering: .relaxed)
    }
}
