import Foundation
import GateMeshAccounting
import GateMeshCore
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// One passthrough request among several tried in order (a universal-endpoint step, or a route
/// target).
struct ProxyStep: Sendable {
    var route: PassthroughRoute
    var input: ProxyInput
    /// A route target's own key.
    var apiKey: String?
    /// The model a route target asks for.
    var model: String?
}

/// How one step went, for route health.
enum StepOutcome: Sendable {
    case answered(Int)
    case failed(GatewayError)
}

/// `POST /{gateway}`: the universal endpoint, and routes (`gateways[].routes`) on passthrough
/// requests. Each step goes through the whole proxy (limits, cache, retries, cost, a log row with
/// the step's index); the first whose provider answers below 400 is returned, with
/// `x-gatemesh-step` saying which (from 0). A step that fails (an error status after its retries,
/// no connection, a timeout, a refusal by a limit) is logged and the next one is tried; the last
/// step's answer or error goes to the client as it is.
extension GatewayResponder {
    static let stepHeader = HTTPField.Name("x-gatemesh-step")!
    static let routeHeader = HTTPField.Name("x-gatemesh-route")!

    /// Request headers of the outer request a step does not inherit: framing, and credentials
    /// (each step brings its own in `headers`).
    static let notInherited: Set<String> = [
        "content-length", "transfer-encoding", "content-type", "authorization", "x-api-key", "api-key", "x-goog-api-key", "host",
    ]

    func universal(gateway: String, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        let steps: [UniversalStep]
        let caller: KeyDirectory.Caller?
        var request = request
        do {
            guard let g = proxy.config.gateway(gateway) else { throw GatewayError.unknownGateway(gateway) }
            caller = try proxy.authenticate(g, headers: request.headers)
            guard request.method == .post else { throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "POST") }
            let buffer = try await ProxyHandler.collect(&request, limit: proxy.config.limits.maxBodyBytes)
            steps = try UniversalRequest.parse(Array(buffer.readableBytesView))
        } catch {
            onFinish()
            throw error
        }
        let (outer, clientBody) = (request.headers, request.body)
        let made: [@Sendable () throws -> ProxyStep] = steps.enumerated().map { i, step in
            { () throws -> ProxyStep in
                var endpoint = Substring(step.endpoint.hasPrefix("/") ? String(step.endpoint.dropFirst()) : step.endpoint)
                var query = ""
                if let q = endpoint.firstIndex(of: "?") {
                    query = String(endpoint[endpoint.index(after: q)...])
                    endpoint = endpoint[..<q]
                }
                let path = "/\(gateway)/\(step.provider)/\(endpoint)"
                guard case .passthrough(let route) = try self.router.route(path: path), route.gateway == gateway else {
                    throw GatewayError.badRequest("universal endpoint: step \(i) does not name a provider and endpoint (\(path))",
                                                  code: "invalid_universal_request")
                }
                // The client's headers less its credentials, then the step's own (which may carry
                // control headers of their own: they are read for the step).
                var fields = HTTPFields()
                for field in outer where !Self.notInherited.contains(field.name.canonicalName)
                    && !step.headers.contains(where: { $0.name == field.name.canonicalName }) {
                    fields.append(field)
                }
                for h in step.headers {
                    if let name = HTTPField.Name(h.name) { fields.append(HTTPField(name: name, value: h.value)) }
                }
                fields[.contentType] = step.headers.first { $0.name == "content-type" }?.value ?? "application/json"
                return ProxyStep(route: route, input: ProxyInput(query: query, headers: fields, body: step.body, controls: nil,
                                                                 identity: .checked(caller), clientBody: clientBody))
            }
        }
        return try await runSteps(made, onFinish: onFinish).response
    }

    /// A passthrough request on a gateway with routes: when its body's `model` names a route, the
    /// route's targets are tried (in order, or by weight, cooling targets last) as steps, each
    /// with the target's provider, model and key. Otherwise it is proxied as it is.
    func routedPassthrough(_ route: PassthroughRoute, gateway: GatewayConfig, request: Request,
                           onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        // Only a body of known, modest size can name a route; anything else goes straight through.
        guard let length = request.headers[.contentLength].flatMap({ Int($0) }), length > 0, length <= ProxyHandler.inlineBodyLimit,
              request.method == .post else {
            return try await proxy.handle(route, request: request, onFinish: onFinish)
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await ProxyHandler.collect(&request, limit: proxy.config.limits.maxBodyBytes)
        } catch {
            onFinish()
            throw error
        }
        let bytes = Array(buffer.readableBytesView)
        guard let model = JSONSpans.object(bytes[...])?.first(where: { $0.key == "model" }).flatMap({ JSONSpans.string($0.value) }),
              let modelRoute = gateway.routes[model], let asked = proxy.catalogue.provider(named: route.provider) else {
            return try await proxy.handle(route, request: request, onFinish: onFinish)
        }
        // The client and its control headers, once for every target.
        let caller: KeyDirectory.Caller?
        let controls: ControlHeaders
        do {
            caller = try proxy.authenticate(gateway, headers: request.headers)
            controls = try ProxyHandler.controls(request.headers, gateway: gateway)
        } catch {
            onFinish()
            throw error
        }
        let now = WallClock.nowMs()
        let plan = routeHealth.plan(modelRoute, gateway: gateway.id, now: now)
        // Passthrough keeps the provider's wire format: only targets that speak it can serve.
        let usable = plan.filter { i in
            guard let p = proxy.catalogue.provider(named: modelRoute.targets[i].provider) else { return false }
            return p.spec.id == asked.spec.id || (p.spec.wire == .openAI && asked.spec.wire == .openAI)
        }
        guard !usable.isEmpty else {
            onFinish()
            throw GatewayError.badRequest("route '\(model)' has no target that speaks \(asked.spec.id)'s format; see docs/routing.md",
                                          code: "no_route_target")
        }
        let (outer, query, clientBody) = (request.headers, request.uri.query ?? "", request.body)
        let made: [@Sendable () throws -> ProxyStep] = usable.map { i in
            { () throws -> ProxyStep in
                let target = modelRoute.targets[i]
                guard let body = RequestInspector.replacingModel(in: bytes, with: target.model ?? model) else {
                    throw GatewayError.badRequest("the request's model cannot be replaced for route '\(model)'", code: "no_route_target")
                }
                let stepRoute = PassthroughRoute(gateway: route.gateway, provider: target.provider, rest: route.rest, shape: route.shape)
                return ProxyStep(route: stepRoute, input: ProxyInput(query: query, headers: outer, body: body, controls: controls,
                                                                     identity: .checked(caller), clientBody: clientBody),
                                 apiKey: target.apiKey, model: target.model)
            }
        }
        let health = routeHealth
        return try await runSteps(made, onFinish: onFinish, routeName: model) { step, outcome in
            guard let result = Self.routeOutcome(outcome) else { return }
            health.record(modelRoute, gateway: gateway.id, target: usable[step], outcome: result)
        }.response
    }

    /// Tries the steps in order; see the type's documentation.
    /// Returns the answer and the index of the step that gave it.
    func runSteps(_ steps: [@Sendable () throws -> ProxyStep], onFinish: @escaping @Sendable () -> Void, routeName: String? = nil,
                  observe: @Sendable (Int, StepOutcome) -> Void = { _, _ in }) async throws -> (response: Response, step: Int) {
        // Several steps are one trace: a span for the whole request, each step's span its child.
        var chain: (trace: TraceContext, gateway: String, startedAtMs: Int64)?
        func endChain(step: Int, status: Int, error: String?) {
            guard let chain, let traces = proxy.traces else { return }
            traces.record(ChainSpan(trace: chain.trace, gateway: chain.gateway, route: routeName, startedAtMs: chain.startedAtMs,
                                    endedAtMs: WallClock.nowMs(), stepsTried: step + 1, answeredStep: step,
                                    status: status, error: error))
        }
        for (i, make) in steps.enumerated() {
            let last = i == steps.count - 1
            let relay = FinishRelay(onFinish)
            do {
                var step: ProxyStep
                do {
                    step = try make()
                } catch {
                    // No exchange will end this step: end it here (the relay decides whether it counts).
                    relay.fire()
                    throw error
                }
                if steps.count > 1, let traces = proxy.traces {
                    if chain == nil {
                        chain = (traces.trace(step.input.headers), step.route.gateway, WallClock.nowMs())
                    }
                    var rng = SystemRandomNumberGenerator()
                    step.input.trace = chain?.trace.child(using: &rng)
                }
                var response = try await proxy.handle(step.route, input: step.input, step: i, fallsThrough: !last, apiKey: step.apiKey,
                                                      onFinish: relay.fire)
                endChain(step: i, status: Int(response.status.code), error: nil)
                observe(i, .answered(Int(response.status.code)))
                response.headers[Self.stepHeader] = String(i)
                if let routeName { response.headers[Self.routeHeader] = routeName }
                // A budget downgrade already named the model that served.
                if let model = step.model, response.headers[ProxyHandler.modelHeader] == nil { response.headers[ProxyHandler.modelHeader] = model }
                relay.keep()
                return (response, i)
            } catch var error as GatewayError {
                observe(i, .failed(error))
                guard last else { continue }
                endChain(step: i, status: error.status, error: error.message)
                relay.keep()
                error.headers.append(("x-gatemesh-step", String(i)))
                if let routeName { error.headers.append(("x-gatemesh-route", routeName)) }
                throw error
            } catch {
                endChain(step: i, status: 499, error: "\(error)")
                relay.keep()
                throw error
            }
        }
        onFinish()
        throw GatewayError.internalError("no step ran")
    }
}

/// The health of every route's targets, shared by the node's requests.
final class RouteHealth: Sendable {
    private let balancer = NIOLockedValueBox(RouteBalancer())

    func plan(_ route: ModelRoute, gateway: String, now: Int64) -> [Int] {
        balancer.withLockedValue { $0.plan(route, gateway: gateway, now: now, random: { Double.random(in: 0..<1) }) }
    }

    func record(_ route: ModelRoute, gateway: String, target: Int, outcome: RouteBalancer.Outcome) {
        let now = WallClock.nowMs()
        balancer.withLockedValue { $0.record(route, gateway: gateway, target: target, outcome: outcome, now: now) }
    }
}

/// Passes a step's end-of-exchange call on to the request's only if that step's answer is the
/// one returned; the others' calls are dropped. Whichever comes first (the call or the decision),
/// the request's `onFinish` runs exactly once.
final class FinishRelay: Sendable {
    private let state = NIOLockedValueBox((fired: false, kept: false))
    let onFinish: @Sendable () -> Void

    init(_ onFinish: @escaping @Sendable () -> Void) { self.onFinish = onFinish }

    @Sendable func fire() {
        let forward = state.withLockedValue { s -> Bool in
            s.fired = true
            return s.kept
        }
        if forward { onFinish() }
    }

    func keep() {
        let fired = state.withLockedValue { s -> Bool in
            s.kept = true
            return s.fired
        }
        if fired { onFinish() }
    }
}
