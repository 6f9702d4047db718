import GateMeshCore
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// `POST /{gateway}`: the universal endpoint. Each step becomes a passthrough request to
/// `/{gateway}/{provider}/{endpoint}` with the step's `query` as its body, and goes through the
/// whole proxy (limits, cache, retries, cost, log); the first step whose provider answers below
/// 400 is returned, with `x-gatemesh-step` saying which (from 0). A step that fails (an error
/// status after its retries, no connection, a timeout, a refusal by a limit) is logged and the
/// next one is tried; the last step's answer or error goes to the client as it is.
extension GatewayResponder {
    static let stepHeader = HTTPField.Name("x-gatemesh-step")!

    /// Request headers of the outer request a step does not inherit: framing, and credentials
    /// (each step brings its own in `headers`).
    static let notInherited: Set<String> = [
        "content-length", "transfer-encoding", "content-type", "authorization", "x-api-key", "api-key", "x-goog-api-key", "host",
    ]

    func universal(gateway: String, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        let steps: [UniversalStep]
        do {
            guard let g = proxy.config.gateway(gateway) else { throw GatewayError.unknownGateway(gateway) }
            try ProxyHandler.authorize(g, headers: request.headers)
            guard request.method == .post else { throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "POST") }
            var request = request
            let buffer = try await ProxyHandler.collect(&request, limit: proxy.config.limits.maxBodyBytes)
            steps = try UniversalRequest.parse(Array(buffer.readableBytesView))
        } catch {
            onFinish()
            throw error
        }
        for (i, step) in steps.enumerated() {
            let last = i == steps.count - 1
            let relay = FinishRelay(onFinish)
            do {
                var endpoint = Substring(step.endpoint.hasPrefix("/") ? String(step.endpoint.dropFirst()) : step.endpoint)
                var query = ""
                if let q = endpoint.firstIndex(of: "?") {
                    query = String(endpoint[q...])
                    endpoint = endpoint[..<q]
                }
                let path = "/\(gateway)/\(step.provider)/\(endpoint)"
                guard case .passthrough(let route) = try router.route(path: path), route.gateway == gateway else {
                    throw GatewayError.badRequest("universal endpoint: step \(i) does not name a provider and endpoint (\(path))",
                                                  code: "invalid_universal_request")
                }
                var fields = HTTPFields()
                for field in request.headers where !Self.notInherited.contains(field.name.canonicalName)
                    && !step.headers.contains(where: { $0.name == field.name.canonicalName }) {
                    fields.append(field)
                }
                for h in step.headers {
                    if let name = HTTPField.Name(h.name) { fields.append(HTTPField(name: name, value: h.value)) }
                }
                fields[.contentType] = step.headers.first { $0.name == "content-type" }?.value ?? "application/json"
                fields[.contentLength] = String(step.body.count)
                let head = HTTPRequest(method: .post, scheme: nil, authority: request.head.authority, path: path + query, headerFields: fields)
                let stepRequest = Request(head: head, body: RequestBody(buffer: ByteBuffer(bytes: step.body)))
                var response = try await proxy.handle(route, request: stepRequest, step: i, fallsThrough: !last, onFinish: relay.fire)
                response.headers[Self.stepHeader] = String(i)
                relay.keep()
                return response
            } catch var error as GatewayError {
                guard last else { continue }
                relay.keep()
                error.headers.append(("x-gatemesh-step", String(i)))
                throw error
            } catch {
                relay.keep()
                throw error
            }
        }
        onFinish()
        throw GatewayError.internalError("universal endpoint: no step ran")
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
