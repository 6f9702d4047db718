import GateMeshCache
import GateMeshCore
import NIOCore

/// Records an answer on its way to the client, for the cache: only a complete 200 of at most
/// `maxBytes` is stored. Whatever happens, the flight's ticket (if this request leads one) is
/// completed, so requests waiting on the same key never wait for nothing.
///
/// Contract: called by the one task that writes the response body, in order.
final class CacheRecorder: @unchecked Sendable {
    let key: String
    let owner: any CacheOwner
    let ticket: CacheFlight.Ticket?
    let ttlSeconds: Int
    let gateway: String
    let provider: String
    let maxBytes: Int
    private var status = 0
    private var headers: [HeaderField] = []
    private var streamed = false
    private var body: [UInt8] = []
    private var ends: [Int] = []
    private var recording = true

    init(key: String, owner: any CacheOwner, ticket: CacheFlight.Ticket?, ttlSeconds: Int, gateway: String, provider: String, maxBytes: Int) {
        self.key = key
        self.owner = owner
        self.ticket = ticket
        self.ttlSeconds = ttlSeconds
        self.gateway = gateway
        self.provider = provider
        self.maxBytes = maxBytes
    }

    func start(status: Int, headers: [HeaderField], streamed: Bool) {
        self.status = status
        self.headers = headers
        self.streamed = streamed
        if status != 200 { abandon() }
    }

    func append(_ chunk: ByteBuffer) {
        guard recording else { return }
        guard body.count + chunk.readableBytes <= maxBytes else {
            abandon()
            return
        }
        body.append(contentsOf: chunk.readableBytesView)
        ends.append(body.count)
    }

    /// The answer went out whole: store it and hand it to the followers.
    func finish(costNanos: Int64?, model: String?) {
        guard recording else { return }
        recording = false
        let now = ResponseCache.now()
        let response = CachedResponse(gateway: gateway, provider: provider, status: status, headers: headers, body: body, chunkEnds: ends,
                                      streamed: streamed, createdAtMs: now, expiresAtMs: now + Int64(ttlSeconds) * 1000,
                                      costNanos: costNanos, servedModel: model)
        owner.store(key, response)
        ticket?.complete(response)
        body = []
    }

    /// Not cacheable after all (not a 200, too large, broken off).
    func abandon() {
        recording = false
        body = []
        ticket?.complete(nil)
    }
}
