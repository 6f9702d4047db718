import Foundation
import GateMeshCore
import GateMeshTranslate
import HTTPTypes
import Hummingbird
import NIOCore

/// The unified API: `POST /v1/chat/completions` (OpenAI format) and `POST /v1/messages`
/// (Anthropic format) in front of any provider, where `model` is `provider/model` or the name of
/// one of the gateway's routes. Each target is a full proxy pass (limits, cache, retries, cost and
/// a log row, all on the provider's own wire format); the request is translated to the target's
/// format before, and its answer back to the client's format after, event by event for streams.
extension GatewayResponder {
    func unified(gateway: String, endpoint: String, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        let path = endpoint.hasPrefix("/") ? String(endpoint.dropFirst()) : endpoint
        let client: ChatPlan.Client
        switch path {
        case "v1/chat/completions", "chat/completions": client = .openAIChat
        case "v1/messages", "messages": client = .anthropicMessages
        case "v1/models", "models":
            defer { onFinish() }
            return try models(gateway: gateway, request: request)
        case "v1/embeddings", "embeddings":
            return try await embeddings(gateway: gateway, request: request, onFinish: onFinish)
        default:
            onFinish()
            guard let g = proxy.config.gateway(gateway) else { throw GatewayError.unknownGateway(gateway) }
            _ = try proxy.authenticate(g, headers: request.headers)
            throw GatewayError.notImplemented(
                "the unified API serves POST /v1/chat/completions, POST /v1/messages, POST /v1/embeddings and GET /v1/models; \(endpoint) is not available in this build: call a provider directly at /{provider}/…")
        }
        do {
            return try await unifiedChat(gateway: gateway, client: client, request: request, onFinish: onFinish)
        } catch let error as GatewayError where client == .anthropicMessages {
            // Anthropic clients read errors in Anthropic's shape.
            let body = ErrorShapes.anthropic(from: Array(error.jsonBody.utf8), status: error.status)
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            for (name, value) in error.headers { if let n = HTTPField.Name(name) { headers[n] = value } }
            return Response(status: .init(code: error.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    private func unifiedChat(gateway: String, client: ChatPlan.Client, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        let (g, outer, body, model, targets, routePlan) = try await readUnified(gateway: gateway, request: request, onFinish: onFinish,
                                                                               example: "openai/gpt-4o-mini")
        let modelRoute = g.routes[model]
        let stream = body["stream"]?.boolValue == true
        let includeUsage = body["stream_options"]?["include_usage"]?.boolValue == true
        let options = TranslationOptions(dropUnsupported: g.dropUnsupportedParams, defaultMaxTokens: g.defaultMaxTokens)
        // Which format each step speaks, for translating its answer (set as the step is made).
        let formats = targets.map { t in proxy.catalogue.provider(named: t.provider).flatMap { ChatPlan.Target($0.spec) } }
        let made: [@Sendable () throws -> ProxyStep] = targets.enumerated().map { i, target in
            { () throws -> ProxyStep in
                guard let provider = self.proxy.catalogue.provider(named: target.provider) else {
                    throw GatewayError.badRequest("unknown provider '\(target.provider)' in model '\(model)'", code: "unknown_provider")
                }
                guard let format = formats[i] else {
                    throw GatewayError.notImplemented(
                        "the unified API cannot translate to \(provider.spec.id) in this build (it serves OpenAI-format providers with standard paths, anthropic and google-ai-studio)")
                }
                let translated: JSONValue
                do {
                    translated = try ChatPlan.request(body, from: client, to: format, model: target.model, provider: provider.spec.id,
                                                      streamUsage: provider.spec.acceptsStreamUsageOption,
                                                      maxCompletionTokens: provider.spec.id == "openai", options: options)
                } catch let e as TranslationError {
                    throw Self.gatewayError(e)
                }
                switch format {
                case .anthropic:
                    return outer.step(translated.bytes, target: target, provider: provider, rest: "/v1/messages", anthropicVersion: true)
                case .openAI:
                    return outer.step(translated.bytes, target: target, provider: provider, rest: Self.chatPath(provider))
                case .google:
                    let rest = "/v1beta/models/\(try Self.googleModel(target.model)):\(stream ? "streamGenerateContent" : "generateContent")"
                    return outer.step(translated.bytes, target: target, provider: provider, rest: rest, query: stream ? "alt=sse" : "")
                }
            }
        }
        var (response, step) = try await runTargets(made, gateway: g.id, model: model, route: modelRoute, plan: routePlan, onFinish: onFinish)
        guard let format = formats[step] else { return response }
        let status = Int(response.status.code)
        let created = Int(Date().timeIntervalSince1970)
        let translator = ChatPlan.answer(from: format, to: client, request: body, status: status, stream: stream,
                                         includeUsage: includeUsage, model: targets[step].model, created: created)
        if let translator {
            Self.translate(&response, with: translator, contentType: stream && status < 400 ? "text/event-stream" : "application/json")
        }
        return response
    }

    typealias Target = (provider: String, model: String, apiKey: String?)

    /// The part every unified endpoint reads the same way: the gateway and its client (token or
    /// virtual key, and control headers), a POST with a JSON object body, its `model`, and the
    /// targets that model names (a route's, in the order its health gives, with their indices in
    /// the route; or the one provider/model). Ends the request (`onFinish`) when it throws.
    private func readUnified(gateway: String, request: Request, onFinish: @Sendable () -> Void, example: String) async throws
        -> (GatewayConfig, UnifiedClient, JSONValue, String, [Target], [Int])
    {
        do {
            guard let g = proxy.config.gateway(gateway) else { throw GatewayError.unknownGateway(gateway) }
            let caller = try proxy.authenticate(g, headers: request.headers)
            guard request.method == .post else { throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "POST") }
            let controls = try ProxyHandler.controls(request.headers, gateway: g)
            var request = request
            let buffer = try await ProxyHandler.collect(&request, limit: proxy.config.limits.maxBodyBytes)
            guard let body = JSONValue.parse(buffer.readableBytesView), case .object = body else {
                throw GatewayError.badRequest("the request body must be a JSON object", code: "invalid_json")
            }
            guard let model = body["model"]?.stringValue, !model.isEmpty else {
                throw GatewayError.badRequest("'model' is required: provider/model (\(example)) or the name of a route", code: "invalid_model")
            }
            let client = UnifiedClient(gateway: g.id, headers: request.headers, controls: controls, caller: caller, body: request.body)
            if let route = g.routes[model] {
                let plan = routeHealth.plan(route, gateway: g.id, now: WallClock.nowMs())
                let targets = plan.map { i in (route.targets[i].provider, route.targets[i].model ?? model, route.targets[i].apiKey) }
                return (g, client, body, model, targets, plan)
            }
            guard let slash = model.firstIndex(of: "/") else {
                throw GatewayError.badRequest("model '\(model)' is neither provider/model (\(example)) nor a route of gateway '\(g.id)'",
                                              code: "invalid_model")
            }
            return (g, client, body, model, [(String(model[..<slash]), String(model[model.index(after: slash)...]), nil)], [])
        } catch {
            onFinish()
            throw error
        }
    }

    /// What a step's outcome means for its route target's health (nil: nothing the provider did).
    static func routeOutcome(_ outcome: StepOutcome) -> RouteBalancer.Outcome? {
        switch outcome {
        case .answered(let status): return status == 429 ? .rateLimited : status >= 500 ? .failure : .success
        case .failed(let error):
            return error.code == "step_failed" || error.code.hasPrefix("upstream") ? (error.status == 429 ? .rateLimited : .failure) : nil
        }
    }

    /// The chat-completions path under an OpenAI-format provider's base URL.
    static func chatPath(_ provider: ResolvedProvider, _ endpoint: String = "chat/completions") -> String {
        if provider.spec.dropsRepeatedVersion || provider.baseURL.hasSuffix("/v1") || provider.spec.id == "perplexity-ai" {
            return "/" + endpoint
        }
        return "/v1/" + endpoint
    }

    /// `GET /v1/models`: the models this gateway can serve through the unified API (every priced
    /// model of a provider it can translate to, as provider/model) and its routes.
    func models(gateway: String, request: Request) throws -> Response {
        guard let g = proxy.config.gateway(gateway) else { throw GatewayError.unknownGateway(gateway) }
        _ = try proxy.authenticate(g, headers: request.headers)
        guard request.method == .get || request.method == .head else { throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "GET") }
        var data: [JSONValue] = []
        for name in proxy.catalogue.names {
            guard let p = proxy.catalogue.provider(named: name), p.spec.id == name, ChatPlan.Target(p.spec) != nil else { continue }
            for model in proxy.prices.models(provider: p.spec.id) {
                data.append(.object(["id": .string("\(name)/\(model)"), "object": "model", "created": 0, "owned_by": .string(name)]))
            }
        }
        for name in g.routes.keys.sorted() {
            data.append(.object(["id": .string(name), "object": "model", "created": 0, "owned_by": "gatemesh-route"]))
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONValue.object(["object": "list", "data": .array(data)]).bytes)))
    }

    /// `POST /v1/embeddings` (OpenAI format): OpenAI-format providers as they are, Google AI Studio
    /// through batchEmbedContents. `model` is provider/model or a route.
    func embeddings(gateway: String, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        let (g, outer, body, model, targets, routePlan) = try await readUnified(gateway: gateway, request: request, onFinish: onFinish,
                                                                               example: "openai/text-embedding-3-small")
        let base64 = body["encoding_format"]?.stringValue == "base64"
        let google = targets.map { proxy.catalogue.provider(named: $0.provider)?.spec.wire == .google }
        let made: [@Sendable () throws -> ProxyStep] = targets.enumerated().map { i, target in
            { () throws -> ProxyStep in
                guard let provider = self.proxy.catalogue.provider(named: target.provider) else {
                    throw GatewayError.badRequest("unknown provider '\(target.provider)' in model '\(model)'", code: "unknown_provider")
                }
                if google[i] {
                    let translated: JSONValue
                    do { translated = try GoogleEmbeddings.request(body, model: target.model) } catch let e as TranslationError {
                        throw Self.gatewayError(e)
                    }
                    return outer.step(translated.bytes, target: target, provider: provider,
                                      rest: "/v1beta/models/\(try Self.googleModel(target.model)):batchEmbedContents")
                }
                guard ChatPlan.Target(provider.spec) == .openAI else {
                    throw GatewayError.notImplemented("the unified embeddings API serves OpenAI-format providers and google-ai-studio, not \(provider.spec.id)")
                }
                var o = body.objectValue!
                o["model"] = .string(target.model)
                return outer.step(JSONValue.object(o).bytes, target: target, provider: provider, rest: Self.chatPath(provider, "embeddings"))
            }
        }
        var (response, step) = try await runTargets(made, gateway: g.id, model: model, route: g.routes[model], plan: routePlan, onFinish: onFinish)
        guard google[step] else { return response }
        let status = Int(response.status.code), servedModel = targets[step].model
        Self.translate(&response, with: WholeBodyTranslator { GoogleEmbeddings.response($0, status: status, model: servedModel, base64: base64) },
                       contentType: "application/json")
        return response
    }

    // MARK: - Shared by the unified endpoints

    /// A Google model name, checked before it goes into the URL path.
    static func googleModel(_ model: String) throws(GatewayError) -> String {
        guard model.allSatisfy({ $0.isLetter || $0.isNumber || "-._".contains($0) }) else {
            throw GatewayError.badRequest("'\(model)' is not a Google model name", code: "invalid_model")
        }
        return model
    }

    static func gatewayError(_ e: TranslationError) -> GatewayError {
        var error = GatewayError.badRequest(e.message, code: e.code)
        if let param = e.param { error.details = [("param", JSON.quoted(param))] }
        return error
    }

    static let anthropicVersionHeader = HTTPField.Name("anthropic-version")!

    /// Runs the targets' steps (recording a route's health) and says which step answered. The
    /// proxy pass names the provider and `runSteps` the model that served.
    private func runTargets(_ made: [@Sendable () throws -> ProxyStep], gateway: String, model: String, route: ModelRoute?, plan: [Int],
                            onFinish: @escaping @Sendable () -> Void) async throws -> (Response, Int) {
        let health = routeHealth
        return try await runSteps(made, onFinish: onFinish, routeName: route == nil ? nil : model) { step, outcome in
            guard let route, let result = Self.routeOutcome(outcome) else { return }
            health.record(route, gateway: gateway, target: plan[step], outcome: result)
        }
    }

    /// Puts the answer's body through `translator` (its length is then unknown).
    static func translate(_ response: inout Response, with translator: any ResponseTranslator, contentType: String) {
        response.headers[.contentLength] = nil
        response.headers[.contentType] = contentType
        let inner = response.body
        response.body = ResponseBody { writer in
            try await inner.write(TranslatingWriter(parent: writer, translator: translator))
        }
    }
}

/// Passes a response body on through a translator.
struct TranslatingWriter: ResponseBodyWriter {
    var parent: any ResponseBodyWriter
    var translator: any ResponseTranslator

    mutating func write(_ buffer: ByteBuffer) async throws {
        let out = translator.feed(Array(buffer.readableBytesView))
        if !out.isEmpty { try await parent.write(ByteBuffer(bytes: out)) }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        let out = translator.finish()
        var parent = self.parent
        if !out.isEmpty { try await parent.write(ByteBuffer(bytes: out)) }
        try await parent.finish(trailingHeaders)
    }
}

/// The unified API's client, read once: each target's request is made from it (`step`).
struct UnifiedClient: Sendable {
    let gateway: String
    /// The client's headers: a step inherits them, less framing and credentials.
    let headers: HTTPFields
    let controls: ControlHeaders
    let caller: KeyDirectory.Caller?
    /// The client's own body, to notice it leaving mid-stream.
    let body: RequestBody

    /// The client's key for the provider: its bearer token, or its `x-api-key`. A request with a
    /// virtual key has none of its own (the provider key is the gateway's); `authenticate` gave
    /// such a request a caller or refused it, so no caller means no virtual key was presented.
    var key: String? {
        guard caller == nil else { return nil }
        return headers[.authorization].flatMap { TokenCheck.bearerToken($0).map(String.init) } ?? headers[HTTPField.Name("x-api-key")!]
    }

    /// The step that POSTs `bytes` as JSON to `rest` under the target's provider: the client's
    /// headers less framing and credentials, the client's key as the target's (unless the target
    /// or the provider has a stored key), and `anthropic-version` when asked and absent.
    func step(_ bytes: [UInt8], target: GatewayResponder.Target, provider: ResolvedProvider, rest: String, query: String = "",
              anthropicVersion: Bool = false) -> ProxyStep {
        var fields = HTTPFields()
        for field in headers where !GatewayResponder.notInherited.contains(field.name.canonicalName) { fields.append(field) }
        fields[.contentType] = "application/json"
        if anthropicVersion, fields[GatewayResponder.anthropicVersionHeader] == nil { fields[GatewayResponder.anthropicVersionHeader] = "2023-06-01" }
        return ProxyStep(route: PassthroughRoute(gateway: gateway, provider: target.provider, rest: rest, shape: .named),
                         input: ProxyInput(query: query, headers: fields, body: bytes, controls: controls, identity: .checked(caller),
                                           clientBody: body),
                         apiKey: target.apiKey ?? (provider.storedKey == nil ? key : nil), model: target.model)
    }
}
