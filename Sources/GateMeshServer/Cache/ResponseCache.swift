import CGateMeshOpenSSL
import Foundation
import GateMeshCache
import GateMeshCluster
import GateMeshCore
import GateMeshStore
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Where a cache key's entry lives. On a single node every key is owned here; the cluster adds
/// owners that are peers (ask over the peer link, fall back to the provider on a timeout).
protocol CacheOwner: Sendable {
    /// The entry for `key`, or the right to fetch it. One fetch per key at a time: the first
    /// request for a missing key leads (fetches, and completes the ticket it is given), the others
    /// wait for the leader's answer and get it as a hit. A request told to fetch without a ticket
    /// fetches on its own (the leader's answer was not cacheable, or the owner did not answer).
    func acquire(_ key: String, now: Int64) async -> CacheAcquisition
    /// Stores an answer under `key` (after it was sent to the client).
    func store(_ key: String, _ response: CachedResponse)
}

enum CacheAcquisition {
    case hit(CachedResponse)
    case fetch(CacheFlight.Ticket?)
}

/// The node's response cache: an in-memory LRU bounded in bytes in front of a SQLite copy that a
/// restart keeps, single-flight fetching, and background purging of expired entries.
final class ResponseCache: CacheOwner, Service, Sendable {
    /// The settings in force (a config reload changes them in place).
    var config: CacheStoreConfig { settings.withLockedValue { $0 } }
    private let settings: NIOLockedValueBox<CacheStoreConfig>
    let disk: CacheStore
    let logger: Logger
    private let memory: NIOLockedValueBox<ByteLRU<CachedResponse>>
    private let flights = NIOLockedValueBox<[String: CacheFlight]>([:])
    private let counts = NIOLockedValueBox(Counts())
    /// Serializes disk writes with purges; a purge raises the epoch, and a write of an answer
    /// stored before the purge is skipped, so a purge is never undone by a write still in flight.
    private let diskLock = NIOLockedValueBox<UInt64>(0)

    struct Counts {
        var hits = 0, misses = 0, bypasses = 0, stored = 0, coalesced = 0
    }

    init(config: CacheStoreConfig, store: NodeStore, logger: Logger) throws {
        self.settings = NIOLockedValueBox(config)
        self.disk = try CacheStore(store: store)
        self.logger = logger
        var lru = ByteLRU<CachedResponse>(capacityBytes: config.memoryBytes)
        let now = Self.now()
        for (key, r) in try disk.load(maxBytes: config.memoryBytes, now: now).reversed() {
            lru.put(key, r, size: r.size, expiresAt: r.expiresAtMs)
        }
        memory = NIOLockedValueBox(lru)
    }

    static func now() -> Int64 { WallClock.nowMs() }

    /// The key: the hex SHA-256 of the key material.
    static func key(_ material: [UInt8]) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        _ = material.withUnsafeBytes { copenssl_sha256($0.baseAddress, $0.count, &digest) }
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for b in digest {
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The cluster, once it has joined (`join`); nil on a node alone. Held weakly: the cluster
    /// holds the cache.
    private let peersRef = NIOLockedValueBox(PeersRef())
    private struct PeersRef { weak var peers: (any CachePeers)? }
    func join(_ peers: any CachePeers) { peersRef.withLockedValue { $0.peers = peers } }

    /// The owner of `key`: this node, or in a cluster the live member rendezvous hashing picks.
    func owner(of key: String) -> any CacheOwner {
        guard let peers = peersRef.withLockedValue({ $0.peers }) else { return self }
        let name = peers.cacheOwner(of: key)
        return name == peers.me.name ? self : RemoteCacheOwner(peers: peers, name: name, local: self)
    }

    func lookup(_ key: String, now: Int64) async -> CachedResponse? {
        if let hit = memory.withLockedValue({ $0.get(key, now: now) }) { return hit }
        // Evicted from memory but maybe still on disk: promote it.
        guard let r = await disk.get(key, now: now) else { return nil }
        memory.withLockedValue { _ = $0.put(key, r, size: r.size, expiresAt: r.expiresAtMs) }
        return r
    }

    func store(_ key: String, _ response: CachedResponse) {
        guard response.body.count <= config.maxEntryBytes else { return }
        // Into memory under the purge lock, so a purge cannot fall between reading the epoch and
        // the put (and leave a purged answer in memory).
        let memory = self.memory
        let epoch = diskLock.withLockedValue { epoch in
            memory.withLockedValue { _ = $0.put(key, response, size: response.size, expiresAt: response.expiresAtMs) }
            return epoch
        }
        counts.withLockedValue { $0.stored += 1 }
        let disk = self.disk, logger = self.logger, diskLock = self.diskLock
        Task {
            // Not written when a purge came after this answer was stored (the epoch moved on); a
            // purge that comes after the check deletes it, its delete being a later write.
            do { try await disk.put(key, response, if: { diskLock.withLockedValue { $0 } == epoch }) } catch {
                logger.warning("cannot write a cache entry to disk", metadata: ["error": "\(error)"])
            }
        }
    }

    func acquire(_ key: String, now: Int64) async -> CacheAcquisition {
        switch await acquireForPeer(key, now: now) {
        case .hit(let hit): return .hit(hit)
        case .leader(let ticket): return .fetch(ticket)
        case .follower(let flight):
            if let answer = await flight.wait() { return .hit(answer) }
            return .fetch(nil)
        }
    }

    /// The entry, or a flight to lead, or the flight in progress to wait on (for a peer's
    /// `cacheGet`, and under `acquire` for this node's own requests).
    enum PeerAcquisition {
        case hit(CachedResponse)
        case leader(CacheFlight.Ticket)
        case follower(CacheFlight)
    }

    func acquireForPeer(_ key: String, now: Int64) async -> PeerAcquisition {
        if let hit = await lookup(key, now: now) { return .hit(hit) }
        switch join(key) {
        case .leader(let ticket):
            // The previous leader may have stored its answer between the lookup and the join.
            if let hit = memory.withLockedValue({ $0.get(key, now: now) }) {
                ticket.complete(hit)
                return .hit(hit)
            }
            return .leader(ticket)
        case .follower(let flight):
            return .follower(flight)
        }
    }

    func join(_ key: String) -> CacheFlight.Role {
        flights.withLockedValue { flights in
            if let flight = flights[key] {
                counts.withLockedValue { $0.coalesced += 1 }
                return .follower(flight)
            }
            let flight = CacheFlight()
            flights[key] = flight
            return .leader(CacheFlight.Ticket(flight: flight) { [weak self] _ in
                self?.flights.withLockedValue { if $0[key] === flight { $0[key] = nil } }
            })
        }
    }

    func count(_ status: String) {
        counts.withLockedValue {
            switch status {
            case "HIT": $0.hits += 1
            case "MISS": $0.misses += 1
            default: $0.bypasses += 1
            }
        }
    }

    var figures: Counts { counts.withLockedValue { $0 } }
    var memoryFigures: (entries: Int, bytes: Int, evictions: Int) {
        memory.withLockedValue { ($0.count, $0.totalBytes, $0.evictions) }
    }

    /// Purges one key, one gateway's entries, or everything; returns how many entries went
    /// (counted on disk, where every entry is).
    func purge(key: String? = nil, gateway: String? = nil) async throws -> Int {
        let disk = self.disk, memory = self.memory, diskLock = self.diskLock
        diskLock.withLockedValue { epoch in
            epoch += 1
            memory.withLockedValue { lru in
                if let key { lru.remove(key) } else if let gateway { lru.removeAll { $1.gateway == gateway } } else { lru.removeAll { _, _ in true } }
            }
        }
        return try await disk.delete(key: key, gateway: gateway)
    }

    /// Puts new settings in force: the memory bound at once (evicting the least recently used
    /// entries beyond a smaller one), the disk bound and the purge interval from the next purge.
    func reconfigure(_ config: CacheStoreConfig) {
        settings.withLockedValue { $0 = config }
        memory.withLockedValue { $0.setCapacity(config.memoryBytes) }
    }

    func run() async throws {
        // One purge per interval, the interval read each time (a reload may change it).
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let interval = config.purgeIntervalMs
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(interval)) } } catch { return }
            let now = Self.now()
            memory.withLockedValue { _ = $0.removeExpired(now: now) }
            do { _ = try await disk.purge(now: now, maxBytes: config.diskBytes) } catch {
                logger.warning("cannot purge the cache on disk", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// A key owned by another node. Identical requests on this node make one flight here; its leader
/// asks the owner, which answers with its entry, with "you fetch it" (the owner then holds its own
/// flight for the key on this node's behalf, so requests for the key on every node wait for this
/// one fetch), or with "wait" (another node is fetching it) and the answer later. When the owner
/// does not answer in time the request is served from the provider. The answer fetched is sent to
/// the owner, which stores it and hands it to the requests waiting there; a fetch that ends without
/// a cacheable answer releases the owner's flight, so nobody waits for it.
struct RemoteCacheOwner: CacheOwner {
    let peers: any CachePeers
    let name: String
    let local: ResponseCache

    func acquire(_ key: String, now: Int64) async -> CacheAcquisition {
        switch local.join(key) {
        case .follower(let flight):
            if let answer = await flight.wait() { return .hit(answer) }
            return .fetch(nil)
        case .leader(let ticket):
            let answer = await peers.remoteAcquire(key, owner: name)
            if case .entry(let entry) = answer {
                ticket.complete(entry)
                return .hit(entry)
            }
            // Told to fetch, or the owner was too slow to answer (it may still let this node lead
            // after the wait gave up): a fetch without a cacheable answer releases the owner.
            let peers = self.peers, owner = name
            ticket.onEnd { response in
                if response == nil { peers.releaseToOwner(key, owner: owner) }
            }
            return .fetch(ticket)
        }
    }

    func store(_ key: String, _ response: CachedResponse) { peers.sendToOwner(key, response, owner: name) }
}

/// What the cache asks of the cluster (`ClusterService`, which `join`s it once built): who owns
/// a key, and the owner protocol's messages.
protocol CachePeers: AnyObject, Sendable {
    var me: Membership.Info { get }
    /// The owner of `key` among the live members and this node (rendezvous hashing).
    func cacheOwner(of key: String) -> String
    /// Asks `owner` for its entry under `key`, or for the right to fetch it.
    func remoteAcquire(_ key: String, owner: String) async -> CacheCodec.Answer
    /// Hands an answer fetched after a miss to the key's owner.
    func sendToOwner(_ key: String, _ entry: CachedResponse, owner: String)
    /// Tells the owner this node's fetch of `key` ended without a cacheable answer.
    func releaseToOwner(_ key: String, owner: String)
}

/// One fetch of one key that other requests for the same key wait on.
final class CacheFlight: Sendable {
    enum Role {
        case leader(Ticket)
        case follower(CacheFlight)
    }

    private let state = NIOLockedValueBox(FlightState<CheckedContinuation<CachedResponse?, Never>, CachedResponse>())

    /// The leader's answer when it is cacheable, or nil (the follower then fetches on its own, or
    /// gives up when its own task was cancelled: its client went away).
    func wait() async -> CachedResponse? {
        let id = state.withLockedValue { $0.newWaiter() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let cancelled = Task.isCancelled
                if case .now(let answer) = state.withLockedValue({ $0.wait(id, continuation, cancelled: cancelled) }) {
                    continuation.resume(returning: answer)
                }
            }
        } onCancel: {
            state.withLockedValue { $0.cancel(id) }?.resume(returning: nil)
        }
    }

    fileprivate func complete(_ response: CachedResponse?) {
        for w in state.withLockedValue({ $0.complete(response) }) { w.resume(returning: response) }
    }

    /// Held by the leader; completing it (or dropping it, which completes it with nil) wakes the
    /// followers and ends the flight, so a leader that fails can never leave followers waiting.
    /// Completes once; later completions do nothing.
    final class Ticket: Sendable {
        let flight: CacheFlight
        private let ends: NIOLockedValueBox<(done: Bool, hooks: [@Sendable (CachedResponse?) -> Void])>
        init(flight: CacheFlight, onEnd: @escaping @Sendable (CachedResponse?) -> Void) {
            self.flight = flight
            self.ends = NIOLockedValueBox((false, [onEnd]))
        }

        /// Adds something to do when the flight ends (with its answer, nil when there is none).
        func onEnd(_ hook: @escaping @Sendable (CachedResponse?) -> Void) {
            ends.withLockedValue { $0.hooks.append(hook) }
        }

        func complete(_ response: CachedResponse?) {
            let hooks = ends.withLockedValue { e -> [@Sendable (CachedResponse?) -> Void] in
                guard !e.done else { return [] }
                e.done = true
                defer { e.hooks = [] }
                return e.hooks
            }
            guard !hooks.isEmpty else { return }
            for hook in hooks { hook(response) }
            flight.complete(response)
        }

        deinit { complete(nil) }
    }
}
