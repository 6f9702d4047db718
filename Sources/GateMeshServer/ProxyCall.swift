import GateMeshAccounting
import GateMeshCache
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird

/// What the proxy's stages are asked to send to one provider: the client's own request, or one
/// that an endpoint made for it (a unified-API translation, a universal step, a route target),
/// built here directly rather than as an HTTP request to be read again.
struct ProxyInput: Sendable {
    enum Body: Sendable {
        /// The client's request as it arrives: its body is read whole or streamed up by `readBody`.
        case client(Request)
        /// A body the gateway made, sent as it is.
        case made([UInt8])
    }

    /// Whether the endpoint that made the request already authenticated its client.
    enum Identity: Sendable {
        case unchecked
        /// The caller its virtual key names, or nil (no key; the gateway token, if any, checked).
        case checked(KeyDirectory.Caller?)
    }

    var method: HTTPRequest.Method
    /// The query string, without its `?`.
    var query: String
    var headers: HTTPFields
    var body: Body
    /// Nil: read from `headers` by `handle`.
    var controls: ControlHeaders?
    var identity: Identity = .unchecked
    /// The client's own request body, to notice the client closing its connection mid-stream
    /// when `body` is made (a body made from bytes cannot report it).
    var clientBody: RequestBody?
    /// The span a fallback chain made for this step (a child of the chain's); nil: the request's
    /// span is made from its `traceparent`.
    var trace: TraceContext?

    /// The client's request, as it came.
    init(_ request: Request) {
        method = request.method
        query = request.uri.query ?? ""
        headers = request.headers
        body = .client(request)
    }

    /// A request an endpoint made.
    init(method: HTTPRequest.Method = .post, query: String = "", headers: HTTPFields, body: [UInt8], controls: ControlHeaders?,
         identity: Identity, clientBody: RequestBody?) {
        self.method = method
        self.query = query
        self.headers = headers
        self.body = .made(body)
        self.controls = controls
        self.identity = identity
        self.clientBody = clientBody
    }

    /// The body to watch for the client leaving: the client's own.
    var watchedBody: RequestBody? {
        switch body {
        case .client(let request): request.body
        case .made: clientBody
        }
    }
}

/// One request on its way through the proxy's stages (`ProxyHandler.forward`): what the client
/// asked for, and what each stage has decided so far for the stages after it.
struct ProxyCall {
    // What `handle` found out before the stages: whose request it is and where it goes.
    var input: ProxyInput
    let controls: ControlHeaders
    let gateway: GatewayConfig
    let provider: ResolvedProvider
    let caller: KeyDirectory.Caller?
    let format: APIFormat
    let exchange: ProxyExchange
    let metadata: RequestMetadata
    let customPrice: ModelPrice?
    let collectPayload: Bool
    /// The request's log row is written: its id goes back in `x-gatemesh-log-id`.
    let logged: Bool
    /// For the universal endpoint: an answer of 400 or more is thrown, so the next step is tried.
    let fallsThrough: Bool

    /// The provider's URL and the headers it gets.
    let target: UpstreamTarget
    let timeouts: UpstreamTimeouts

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
    /// The request is in a sampled trace: its upstream attempts are noted as child spans.
    let traced: Bool

    var eventID: String? { controls.eventID }
    var retries: RetryPolicy { controls.retries }

    /// Where the call goes and its timeouts, from the route and the control headers.
    init(route: PassthroughRoute, input: ProxyInput, controls: ControlHeaders, gateway: GatewayConfig, provider: ResolvedProvider,
         caller: KeyDirectory.Caller?, format: APIFormat, exchange: ProxyExchange, metadata: RequestMetadata, customPrice: ModelPrice?,
         collectPayload: Bool, logged: Bool, fallsThrough: Bool, timeouts: UpstreamTimeouts, trace: TraceContext? = nil) throws {
        self.input = input
        self.controls = controls
        self.gateway = gateway
        self.provider = provider
        self.caller = caller
        self.format = format
        self.exchange = exchange
        self.metadata = metadata
        self.customPrice = customPrice
        self.collectPayload = collectPayload
        self.logged = logged
        self.fallsThrough = fallsThrough
        var target = try UpstreamTarget.make(route: route, provider: provider, query: input.query, headers: input.headers.lowercasedPairs)
        // The provider sees the gateway's span as its parent (W3C Trace Context).
        if let trace { target.propagate(trace) }
        traced = trace?.sampled == true
        self.target = target
        var timeouts = timeouts
        if let ms = controls.requestTimeoutMs { timeouts.firstByteMs = ms }
        self.timeouts = timeouts
    }
}
