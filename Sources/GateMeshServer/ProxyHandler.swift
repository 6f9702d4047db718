import Foundation
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers

/// Forwards one passthrough request to its provider and streams the answer back.
///
/// Method, path, query and body go through untouched; hop-by-hop and gateway-control headers are
/// dropped; a stored key replaces the client's credential. Request bodies of known size up to
/// `inlineBodyLimit` are read whole (one copy, the common case for AI APIs); larger or chunked
/// ones stream up with back-pressure. The response streams down chunk by chunk; a client that
/// goes away cancels the upstream transfer.
struct ProxyHandler: Sendable {
    let config: GateMeshConfig
    let catalogue: ProviderCatalogue
    let client: UpstreamClient
    let logger: Logger

    /// Bodies up to this size with a Content-Length are read whole before the transfer starts.
    static let inlineBodyLimit = 4 << 20

    var timeouts: UpstreamTimeouts {
        UpstreamTimeouts(connectMs: config.upstream.connectTimeoutMs, firstByteMs: config.upstream.firstByteTimeoutMs,
                         totalMs: config.upstream.totalTimeoutMs)
    }

    /// Proxies one request. `onFinish` runs exactly once when the response body is done (or
    /// dropped unwritten), but only if this returns a response.
    func handle(_ route: PassthroughRoute, request: Request, onFinish: @escaping @Sendable () -> Void) async throws -> Response {
        guard let gateway = config.gateway(route.gateway) else { throw GatewayError.unknownGateway(route.gateway) }
        try Self.authorize(gateway, headers: request.headers)
        guard let provider = catalogue.provider(named: route.provider) else { throw GatewayError.unknownProvider(route.provider) }

        let target = try UpstreamTarget.make(route: route, provider: provider, query: request.uri.query ?? "",
                                             headers: request.headers.lowercasedPairs)

        var timeouts = self.timeouts
        if let ms = try Self.requestTimeoutMs(request.headers) { timeouts.firstByteMs = ms }

        // The body: none, whole, or streamed.
        let maxBody = config.limits.maxBodyBytes
        let declaredLength = try Self.contentLength(request.headers)
        if let declaredLength, declaredLength > maxBody { throw GatewayError.payloadTooLarge(limit: maxBody) }
        let hasBody = declaredLength.map { $0 > 0 } ?? (request.headers[.transferEncoding] != nil)
        var request = request
        let body: UpstreamRequest.Body
        var streamUpload = false
        if !hasBody {
            body = .none
        } else if let declaredLength, declaredLength <= Self.inlineBodyLimit {
            body = .bytes(try await Self.collect(&request, limit: maxBody))
        } else {
            body = .streamed(length: declaredLength)
            streamUpload = true
        }

        let upstreamRequest = UpstreamRequest(
            method: request.method.rawValue, url: target.url,
            headers: target.headers.map { ($0.name, $0.value) }, body: body, timeouts: timeouts)
        let transfer = client.start(upstreamRequest)

        let overLimit = NIOLockedValueBox(false)
        var uploadTask: Task<Void, Never>?
        if streamUpload {
            let requestBody = request.body
            uploadTask = Task {
                var total = 0
                do {
                    for try await chunk in requestBody {
                        total += chunk.readableBytes
                        if total > maxBody {
                            overLimit.withLockedValue { $0 = true }
                            transfer.cancel()
                            return
                        }
                        try await transfer.writeBody(chunk)
                    }
                    transfer.finishBody()
                } catch {
                    transfer.cancel()
                }
            }
        }

        let head: UpstreamResponseHead
        do {
            head = try await transfer.responseHead()
        } catch let error as UpstreamError {
            // The upload task sets overLimit before it cancels the transfer, so no need to wait for it.
            uploadTask?.cancel()
            if overLimit.withLockedValue({ $0 }) { throw GatewayError.payloadTooLarge(limit: maxBody) }
            if error == .cancelled, Task.isCancelled { throw CancellationError() }
            logger.warning("upstream failed", metadata: ["provider": "\(provider.spec.id)", "error": "\(error)"])
            throw ErrorResponse.gatewayError(for: error, provider: provider.spec.id)
        }

        var headers = HTTPFields()
        headers.reserveCapacity(head.headers.count + 2)
        var contentLength: Int?
        var isEventStream = false
        for (name, value) in head.headers {
            if name == "content-length" { contentLength = Int(value) }
            if name == "content-type", value.hasPrefix("text/event-stream") { isEventStream = true }
        }
        for (name, value) in HeaderPolicy.clientResponseHeaders(head.headers) {
            if let field = HTTPField.Name(name) { headers.append(HTTPField(name: field, value: value)) }
        }
        headers.append(HTTPField(name: Self.providerHeader, value: provider.spec.id))
        if request.method == .head, let contentLength {
            // A HEAD answer has no body but says how long the GET body would be.
            headers.append(HTTPField(name: .contentLength, value: String(contentLength)))
        }
        if request.method == .head || head.status == 204 || head.status == 304 { contentLength = nil }

        // Watching for the client closing its connection needs the request body consumed first,
        // which it is unless it is still streaming up.
        let watchClose = isEventStream && !streamUpload
        let requestBody = request.body
        let lease = TransferLease(transfer, onRelease: onFinish)
        let responseBody = ResponseBody(contentLength: contentLength) { writer in
            var completed = false
            defer { if !completed { lease.transfer.cancel() } }
            if watchClose {
                try await requestBody.consumeWithInboundCloseHandler { _ in
                    while let chunk = try await lease.transfer.nextChunk() { try await writer.write(chunk) }
                } onInboundClosed: { [logger] in
                    logger.debug("client closed its connection mid-stream; cancelling the upstream transfer")
                    lease.transfer.cancel()
                }
            } else {
                while let chunk = try await lease.transfer.nextChunk() { try await writer.write(chunk) }
            }
            completed = true
            try await writer.finish(nil)
        }
        return Response(status: .init(code: head.status), headers: headers, body: responseBody)
    }

    static let providerHeader = HTTPField.Name("x-gatemesh-provider")!
    static let gatewayAuthHeaders = [HTTPField.Name("x-gatemesh-authorization")!, HTTPField.Name("cf-aig-authorization")!]

    /// Checks the gateway token when the gateway requires one.
    static func authorize(_ gateway: GatewayConfig, headers: HTTPFields) throws(GatewayError) {
        guard !gateway.authTokens.isEmpty else { return }
        guard let value = gatewayAuthHeaders.lazy.compactMap({ headers[$0] }).first else {
            throw .unauthorized("gateway '\(gateway.id)' requires a token: send x-gatemesh-authorization: Bearer <token>",
                                code: "missing_gateway_token")
        }
        guard let token = TokenCheck.bearerToken(value), TokenCheck.matches(token, anyOf: gateway.authTokens) else {
            throw .unauthorized("wrong gateway token for gateway '\(gateway.id)'")
        }
    }

    static let requestTimeoutHeaders = [HTTPField.Name("x-gatemesh-request-timeout")!, HTTPField.Name("cf-aig-request-timeout")!]
    static let maxRequestTimeoutMs = 3_600_000

    /// `request-timeout`: milliseconds until the first byte of the provider's response.
    static func requestTimeoutMs(_ headers: HTTPFields) throws(GatewayError) -> Int? {
        guard let name = requestTimeoutHeaders.first(where: { headers[$0] != nil }), let text = headers[name] else { return nil }
        guard let ms = Int(text.trimmingCharacters(in: .whitespaces)), ms >= 1, ms <= maxRequestTimeoutMs else {
            throw .badRequest("\(name.canonicalName) must be a whole number of milliseconds from 1 to \(maxRequestTimeoutMs), got '\(text)'",
                              code: "invalid_request_timeout")
        }
        return ms
    }

    /// The declared body length; a malformed Content-Length is a 400.
    static func contentLength(_ headers: HTTPFields) throws(GatewayError) -> Int? {
        guard let text = headers[.contentLength] else { return nil }
        guard let n = Int(text), n >= 0 else { throw .badRequest("Content-Length '\(text)' is not a byte count") }
        return n
    }

    static func collect(_ request: inout Request, limit: Int) async throws -> ByteBuffer {
        do {
            return try await request.collectBody(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw GatewayError.payloadTooLarge(limit: limit)
        }
    }
}

/// Owns a transfer for the life of a response body: if the server drops the response without ever
/// writing its body (the client vanished before the head went out), releasing the lease cancels
/// the transfer, so a paused transfer can never sit holding its connection until the total timeout.
final class TransferLease: Sendable {
    let transfer: UpstreamTransfer
    let onRelease: @Sendable () -> Void
    init(_ transfer: UpstreamTransfer, onRelease: @escaping @Sendable () -> Void) {
        self.transfer = transfer
        self.onRelease = onRelease
    }
    deinit {
        transfer.cancel()
        onRelease()
    }
}
