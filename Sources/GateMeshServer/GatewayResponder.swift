import GateMeshCore
import GateMeshUpstream
import Hummingbird
import Logging

/// The node's single HTTP responder: routes by the pure `PathRouter`, then hands off to the
/// operator API or the proxy. Every error leaves here as one JSON error response.
/// A class, so that a request holds one reference to it rather than a copy of its fields.
final class GatewayResponder: HTTPResponder, Sendable {
    typealias Context = BasicRequestContext
    let router: PathRouter
    let proxy: ProxyHandler
    let operatorAPI: OperatorAPI
    let state: NodeState
    /// Kept across config reloads (each reload builds a new responder around the same one).
    let routeHealth: RouteHealth
    let logger: Logger

    init(router: PathRouter, proxy: ProxyHandler, operatorAPI: OperatorAPI, state: NodeState, routeHealth: RouteHealth, logger: Logger) {
        self.router = router
        self.proxy = proxy
        self.operatorAPI = operatorAPI
        self.state = state
        self.routeHealth = routeHealth
        self.logger = logger
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        state.begin()
        var handedOff = false
        defer { if !handedOff { state.end() } }
        do {
            switch try router.route(path: request.uri.path) {
            case .health:
                return operatorAPI.health()
            case .operatorEndpoint(let path):
                return try await operatorAPI.respond(path: path, request: request, context: context)
            case .passthrough(let route):
                // The exchange outlives this call; it ends the request's count when it is over.
                handedOff = true
                if let g = proxy.config.gateway(route.gateway), !g.routes.isEmpty {
                    return try await routedPassthrough(route, gateway: g, request: request, onFinish: { [state] in state.end() })
                }
                return try await proxy.handle(route, request: request, onFinish: { [state] in state.end() })
            case .unified(let gateway, let endpoint):
                handedOff = true
                return try await unified(gateway: gateway, endpoint: endpoint, request: request, onFinish: { [state] in state.end() })
            case .universal(let gateway):
                handedOff = true
                return try await universal(gateway: gateway, request: request, onFinish: { [state] in state.end() })
            }
        } catch let error as GatewayError {
            return ErrorResponse.response(for: error)
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPError {
            return ErrorResponse.response(for: GatewayError(status: Int(error.status.code), type: "invalid_request_error",
                                                            code: "http_error", message: error.body ?? error.status.reasonPhrase))
        } catch {
            logger.error("unexpected error", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return ErrorResponse.response(for: .internalError("internal error: \(error)"))
        }
    }
}
