import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird

/// The one place where errors become HTTP responses.
enum ErrorResponse {
    static func response(for error: GatewayError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        for (name, value) in error.headers {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(status: .init(code: error.status), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: error.jsonBody)))
    }

    /// The client-facing error for a failed exchange with a provider.
    static func gatewayError(for error: UpstreamError, provider: String) -> GatewayError {
        switch error {
        case .unreachable(let detail): return .upstreamUnreachable("\(provider): \(detail)")
        case .timeout(let detail): return .upstreamTimeout("\(provider): \(detail)")
        case .transport(let detail): return .upstreamFailed("\(provider): \(detail)")
        case .cancelled: return .upstreamFailed("\(provider): the transfer was cancelled")
        case .shutdown: return .unavailable("the node is shutting down")
        }
    }
}
