import GateMeshAccounting
import GateMeshCache
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird

/// One passthrough request on its way through the proxy's stages (`ProxyHandler.forward`): what
/// the client asked for, and what each stage has decided so far for the stages after it.
struct ProxyCall {
    // What `handle` found out before the stages: whose request it is and where it goes.
    var request: Request
    let gateway: GatewayConfig
    let provider: ResolvedProvider
    let caller: KeyDirectory.Caller?
    let format: APIFormat
    let exchange: ProxyExchange
    let metadata: RequestMetadata
    let customPrice: ModelPrice?
    let collectPayload: Bool
    let eventID: String?
    /// The request's log row is written: its id goes back in `x-gatemesh-log-id`.
    let logged: Bool
    /// For the universal endpoint: an answer of 400 or more is thrown, so the next step is tried.
    let fallsThrough: Bool
    let closeWatch: CloseWatch

    // The control headers (`init`).
    /// The provider's URL and the headers it gets.
    let target: UpstreamTarget
    let timeouts: UpstreamTimeouts
    /// Whether any `x-gatemesh-` or `cf-aig-` header came: most requests carry none, and then
    /// the retry and cache directives are the gateway's, without looking each header up.
    let hasControlHeaders: Bool
    let retries: RetryPolicy

    // The body (`ProxyHandler.readBody`).
    var body: UpstreamRequest.Body = .none
    /// The body streams up unread: it cannot be sent twice, cached or priced.
    var streamUpload = false
    var facts = RequestFacts()
    /// The client's body as sent, when read whole (for the cache key and the limits).
    var clientBytes: [UInt8]?

    // The cache and admission (`lookUpCache`, `admit`, `askForUsage`).
    var cacheRecorder: CacheRecorder?
    var cacheStatus: String?
    /// The budget that made the request use a cheaper model.
    var downgradedBy: String?
    /// The gateway asked an OpenAI-format stream for its usage; the answer hides it again.
    var injectsUsage = false

    /// Reads the control headers that shape the call: where it goes, its timeouts and retries.
    init(route: PassthroughRoute, request: Request, gateway: GatewayConfig, provider: ResolvedProvider, caller: KeyDirectory.Caller?,
         format: APIFormat, exchange: ProxyExchange, metadata: RequestMetadata, customPrice: ModelPrice?, collectPayload: Bool,
         eventID: String?, logged: Bool, fallsThrough: Bool, closeWatch: CloseWatch, timeouts: UpstreamTimeouts) throws {
        self.request = request
        self.gateway = gateway
        self.provider = provider
        self.caller = caller
        self.format = format
        self.exchange = exchange
        self.metadata = metadata
        self.customPrice = customPrice
        self.collectPayload = collectPayload
        self.eventID = eventID
        self.logged = logged
        self.fallsThrough = fallsThrough
        self.closeWatch = closeWatch
        target = try UpstreamTarget.make(route: route, provider: provider, query: request.uri.query ?? "",
                                         headers: request.headers.lowercasedPairs)
        var timeouts = timeouts
        if let ms = try ProxyHandler.requestTimeoutMs(request.headers) { timeouts.firstByteMs = ms }
        self.timeouts = timeouts
        hasControlHeaders = request.headers.contains { HeaderPolicy.isGatewayControl($0.name.canonicalName) }
        retries = hasControlHeaders ? try gateway.retries.applying { name in request.headers[HTTPField.Name(name)!] } : gateway.retries
    }
}
