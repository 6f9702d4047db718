import GateMeshAccounting
import GateMeshCore
@testable import GateMeshServer
@testable import GateMeshUpstream
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Testing

/// The proxy's stages one at a time, on a `ProxyCall` built as `handle` builds it: no provider,
/// no socket, no server.
@Suite struct ProxyStagesTests {
    static let prices = try! PriceTable.shipped()
    static let client = UpstreamClient()

    func handler(_ configure: (inout Settings) -> Void = { _ in }) -> ProxyHandler {
        var config = Settings()
        configure(&config)
        return ProxyHandler(config: config, catalogue: ProviderCatalogue(), client: Self.client, prices: Self.prices, log: nil,
                            metrics: nil, limits: nil, cache: nil, logger: Logger(label: "test"))
    }

    /// A call to `provider` at `rest`; `body`, when given, is sent with its Content-Length.
    func call(_ handler: ProxyHandler, provider: String = "openai", rest: String = "/chat/completions",
              method: HTTPRequest.Method = .post, headers: HTTPFields = [:], body: String? = nil, input made: ProxyInput? = nil) throws -> ProxyCall {
        var fields = headers
        if let body { fields[.contentLength] = String(body.utf8.count) }
        let request = Request(head: HTTPRequest(method: method, scheme: "http", authority: "node", path: "/\(provider)\(rest)", headerFields: fields),
                              body: RequestBody(buffer: ByteBuffer(string: body ?? "")))
        let resolved = try #require(handler.catalogue.provider(named: provider))
        let gateway = try #require(handler.config.gateway("default"))
        let exchange = ProxyExchange(
            record: RequestRecord(logID: "log", node: "node", gateway: "default", provider: provider, method: method.rawValue, path: rest,
                                  status: 0, startedAtMs: 0, durationMs: 0),
            context: .init(log: nil, writesRow: false, prices: Self.prices, maxPayloadBytes: 1024, collectPayload: false, metrics: nil,
                           customPrice: nil, onFinish: {}),
            started: .now)
        return try ProxyCall(
            route: PassthroughRoute(gateway: "default", provider: provider, rest: rest, shape: .direct), input: made ?? ProxyInput(request),
            controls: made?.controls ?? ProxyHandler.controls(fields, gateway: gateway), gateway: gateway, provider: resolved, caller: nil,
            format: APIFormat.detect(wire: resolved.spec.wire, path: Substring(rest)), exchange: exchange, metadata: RequestMetadata(),
            customPrice: nil, collectPayload: false, logged: true, fallsThrough: false, timeouts: handler.timeouts)
    }

    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}"#
    static let streamedChat = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello there"}]}"#

    @Test func theControlHeadersShapeTheCallAndABadOneIsA400() throws {
        let proxy = handler()
        let plain = try call(proxy, body: Self.chat)
        #expect(plain.retries == plain.gateway.retries && plain.timeouts.firstByteMs == proxy.timeouts.firstByteMs)
        #expect(plain.target.url == "https://api.openai.com/v1/chat/completions")
        let shaped = try call(proxy, headers: [HTTPField.Name("cf-aig-request-timeout")!: "1234",
                                               HTTPField.Name("x-gatemesh-max-attempts")!: "3"], body: Self.chat)
        #expect(shaped.timeouts.firstByteMs == 1234 && shaped.retries.maxAttempts == 3)
        #expect(!shaped.target.headers.contains { $0.name.hasPrefix("x-gatemesh-") || $0.name.hasPrefix("cf-aig-") })
        let error = #expect(throws: GatewayError.self) {
            try call(proxy, headers: [HTTPField.Name("x-gatemesh-request-timeout")!: "soon"], body: Self.chat)
        }
        #expect(error?.status == 400 && error?.code == "invalid_request_timeout")
    }

    @Test func aBodyIsReadWholeForItsFactsOrStreamedOrRefusedWhenTooLarge() async throws {
        let proxy = handler { $0.limits.maxBodyBytes = 200 }
        var whole = try call(proxy, body: Self.chat)
        try await proxy.readBody(&whole)
        #expect(whole.clientBytes == Array(Self.chat.utf8) && !whole.streamUpload)
        #expect(whole.facts.model == "gpt-4o-mini" && !whole.facts.stream)

        var none = try call(proxy, rest: "/models", method: .get)
        try await proxy.readBody(&none)
        #expect(none.clientBytes == [] && !none.streamUpload)

        var chunked = try call(proxy, headers: [.transferEncoding: "chunked"])
        try await proxy.readBody(&chunked)
        #expect(chunked.streamUpload && chunked.clientBytes == nil)

        var large = try call(proxy, body: String(repeating: "x", count: 201))
        let error = await #expect(throws: GatewayError.self) { try await proxy.readBody(&large) }
        #expect(error?.status == 413)
    }

    @Test func aRequestAnEndpointMadeKeepsItsControlsAndIsSentWhole() async throws {
        let proxy = handler { $0.limits.maxBodyBytes = 8 << 20 }
        var controls = ControlHeaders(retries: RetryPolicy(maxAttempts: 4))
        controls.requestTimeoutMs = 777
        // The headers are not read again: the endpoint that made the request read the client's.
        let headers: HTTPFields = [HTTPField.Name("x-gatemesh-request-timeout")!: "soon"]
        var made = try call(proxy, input: ProxyInput(headers: headers, body: Array(Self.streamedChat.utf8), controls: controls,
                                                     identity: .checked(nil), clientBody: nil))
        #expect(made.timeouts.firstByteMs == 777 && made.retries.maxAttempts == 4)
        try await proxy.readBody(&made)
        #expect(made.clientBytes == Array(Self.streamedChat.utf8) && made.facts.stream && made.facts.model == "gpt-4o-mini")
        #expect(!made.streamUpload && made.input.watchedBody == nil)

        // Larger than a client's body read whole, and still whole (it can be retried and priced).
        let large = Array(#"{"model":"gpt-4o-mini","input":""#.utf8) + Array(repeating: UInt8(ascii: "a"), count: ProxyHandler.inlineBodyLimit)
            + Array(#""}"#.utf8)
        var big = try call(proxy, rest: "/embeddings", input: ProxyInput(headers: [:], body: large, controls: controls,
                                                                         identity: .checked(nil), clientBody: nil))
        try await proxy.readBody(&big)
        #expect(!big.streamUpload && big.clientBytes?.count == large.count)
    }

    @Test func anOpenAIStreamIsAskedForItsUsageAndNothingElseIs() async throws {
        let proxy = handler()
        var streamed = try call(proxy, body: Self.streamedChat)
        try await proxy.readBody(&streamed)
        proxy.askForUsage(&streamed)
        #expect(streamed.injectsUsage)
        guard case .bytes(let amended) = streamed.body else { Issue.record("the body is not bytes"); return }
        #expect(String(buffer: amended).contains(#""include_usage":true"#))
        // The client's own bytes stay as sent (the cache key and the limits read them).
        #expect(streamed.clientBytes == Array(Self.streamedChat.utf8))

        var whole = try call(proxy, body: Self.chat)
        try await proxy.readBody(&whole)
        proxy.askForUsage(&whole)
        #expect(!whole.injectsUsage)
    }

    @Test func theAnswerHeadKeepsWhatAClientMaySeeAndAddsTheGatewaysOwn() async throws {
        let proxy = handler()
        var c = try call(proxy, body: Self.streamedChat)
        try await proxy.readBody(&c)
        let head = UpstreamResponseHead(status: 200, headers: [
            ("content-type", "text/event-stream"), ("content-length", "120"), ("content-encoding", "gzip"),
            ("connection", "keep-alive"), ("x-gatemesh-cache-status", "HIT"), ("openai-processing-ms", "12"),
        ], httpVersion: "1.1")
        let answer = proxy.answerHead(c, head, attempts: 2)
        #expect(answer.status == 200 && answer.isEventStream)
        // curl decoded the body, so the provider's length no longer holds.
        #expect(answer.contentLength == nil)
        #expect(answer.fields[HTTPField.Name("openai-processing-ms")!] == "12")
        #expect(answer.fields[.connection] == nil && answer.fields[.contentEncoding] == nil)
        #expect(answer.fields[ProxyHandler.cacheStatusHeader] == nil)
        #expect(answer.fields[ProxyHandler.providerHeader] == "openai" && answer.fields[ProxyHandler.attemptsHeader] == "2")
        #expect(answer.fields[ProxyHandler.logIDHeader] == "log")

        // A HEAD answer says how long the body would be, and has none.
        let headCall = try call(proxy, rest: "/models", method: .head)
        let headAnswer = proxy.answerHead(headCall, UpstreamResponseHead(status: 200, headers: [("content-length", "42")], httpVersion: "1.1"),
                                          attempts: 1)
        #expect(headAnswer.fields[.contentLength] == "42" && headAnswer.contentLength == nil)
    }
}
