/// Maps a request path onto a `Route`: pure, allocation-light, and the one place the URL grammar lives.
///
/// The grammar, first match wins:
/// - `/healthz`
/// - first segment `metrics`, `cluster`, `api`, `dashboard` or `admin`: operator endpoints
/// - `/v1/{chat|embeddings|models|messages|completions|responses}…`: unified API on the default gateway
/// - `/v1/{account}/{gateway}/{provider}/…` when `{gateway}` is configured or `{provider}` is known:
///   Cloudflare-shaped passthrough (404 naming the unknown gateway or provider)
/// - `/v1/{account}/{gateway}` when `{gateway}` is configured: universal endpoint of that gateway
/// - any other `/v1…` (`/v1/audio/speech`, `/v1/files/…`): unified API on the default gateway
/// - `/{provider}/…`: passthrough on the default gateway
/// - `/{gateway}` : universal endpoint; `/{gateway}/v1/…`: unified API; `/{gateway}/{provider}/…`: passthrough
public struct PathRouter: Sendable {
    /// First path segments that belong to the operator API; no gateway may take these names.
    public static let reservedNames: Set<String> = ["healthz", "metrics", "cluster", "api", "dashboard", "v1", "admin"]

    public let catalogue: ProviderCatalogue
    public let gateways: Set<String>

    public init(catalogue: ProviderCatalogue, gateways: Set<String>) {
        self.catalogue = catalogue
        self.gateways = gateways
    }

    /// Resolves `path` (the raw path, without the query). Throws a 400 for a malformed path and
    /// a 404 for an unknown provider or gateway.
    public func route(path: String) throws(GatewayError) -> Route {
        guard path.hasPrefix("/") else { throw .malformedPath("the request path must start with '/'") }
        if path == "/healthz" { return .health }
        let segments = PathSegments(path)
        guard let first = segments.segment(0), !first.isEmpty else {
            throw .notFound("no route for '/'; send requests to /{provider}/… or /v1/…, see docs/http-api.md")
        }

        switch first {
        case "metrics", "cluster", "api", "dashboard", "admin":
            return .operatorEndpoint(path: path)
        case "v1":
            return try routeV1(segments, path: path)
        default:
            break
        }

        if catalogue.contains(first) {
            return .passthrough(try passthrough(gateway: GatewayConfig.defaultID, provider: first,
                                                restStart: segments.offset(after: 0), path: path, shape: .direct))
        }
        if gateways.contains(String(first)) {
            guard let second = segments.segment(1), !second.isEmpty else {
                return .universal(gateway: String(first))
            }
            if second == "v1" {
                return .unified(gateway: String(first), endpoint: String(path[segments.offset(after: 0)...]))
            }
            guard catalogue.contains(second) else { throw .unknownProvider(String(second)) }
            return .passthrough(try passthrough(gateway: String(first), provider: second,
                                                restStart: segments.offset(after: 1), path: path, shape: .named))
        }
        if segments.segment(1) == nil {
            throw GatewayError(status: 404, type: "not_found_error", code: "unknown_provider_or_gateway",
                               message: "'\(first)' is neither a provider nor a configured gateway")
        }
        if first.hasPrefix("custom-") { throw .unknownProvider(String(first)) }
        throw GatewayError(status: 404, type: "not_found_error", code: "unknown_provider_or_gateway",
                           message: "'\(first)' is neither a provider nor a configured gateway; see docs/providers.md")
    }

    /// The unified API endpoints under `/v1/` that are never read as `/v1/{account}/{gateway}`.
    static let unifiedEndpoints: Set<String> = ["chat", "embeddings", "models", "messages", "completions", "responses"]

    private func routeV1(_ segments: PathSegments, path: String) throws(GatewayError) -> Route {
        // `/v1/{account}/{gateway}[/{provider}/…]` unless the second segment names a unified endpoint.
        guard let account = segments.segment(1), !account.isEmpty, !Self.unifiedEndpoints.contains(String(account)),
              let gateway = segments.segment(2), !gateway.isEmpty else {
            return .unified(gateway: GatewayConfig.defaultID, endpoint: path)
        }
        let provider = segments.segment(3).flatMap { $0.isEmpty ? nil : $0 }
        // Cloudflare-shaped only when the gateway is ours or the next segment names a provider;
        // anything else (`/v1/audio/speech`, `/v1/files/…`) is the unified API.
        guard gateways.contains(String(gateway)) || provider.map({ catalogue.contains($0) }) == true else {
            return .unified(gateway: GatewayConfig.defaultID, endpoint: path)
        }
        guard gateways.contains(String(gateway)) else { throw .unknownGateway(String(gateway)) }
        guard let provider else { return .universal(gateway: String(gateway)) }
        guard catalogue.contains(provider) else { throw .unknownProvider(String(provider)) }
        return .passthrough(try passthrough(gateway: String(gateway), provider: provider,
                                            restStart: segments.offset(after: 3), path: path,
                                            shape: .cloudflare(account: String(account))))
    }

    private func passthrough(
        gateway: String, provider: Substring, restStart: String.Index, path: String, shape: PassthroughRoute.Shape
    ) throws(GatewayError) -> PassthroughRoute {
        let rest = String(path[restStart...])
        try Self.validateRest(rest)
        return PassthroughRoute(gateway: gateway, provider: String(provider), rest: rest, shape: shape)
    }

    /// Rejects upstream paths that could climb out of the provider's base path or smuggle bytes.
    static func validateRest(_ rest: String) throws(GatewayError) {
        var suspicious = false
        for byte in rest.utf8 {
            if byte < 0x21 || byte == 0x7F || byte == UInt8(ascii: "\\") {
                throw .malformedPath("the path contains a control character, a space or a backslash")
            }
            if byte == UInt8(ascii: "%") || byte == UInt8(ascii: ".") { suspicious = true }
        }
        // Without a dot or a percent sign there can be no dot segment, encoded or not.
        guard suspicious else { return }
        // Encoded slashes split segments too: `..%2f` must not slip past as one odd segment.
        let normalized = rest.replacing("%2f", with: "/").replacing("%2F", with: "/")
        for segment in normalized.split(separator: "/", omittingEmptySubsequences: false) {
            let decoded = segment.replacingPercentDots()
            if decoded == "." || decoded == ".." {
                throw .malformedPath("the path may not contain '.' or '..' segments")
            }
        }
    }
}

/// Lazily split view over the segments of a path that starts with `/`.
struct PathSegments {
    let path: String
    /// Start index of each segment (just after its `/`), computed for the first five segments
    /// only, kept inline (no array per request).
    private var starts: (String.Index, String.Index, String.Index, String.Index, String.Index)
    private var count = 0

    init(_ path: String) {
        self.path = path
        let end = path.endIndex
        starts = (end, end, end, end, end)
        var idx = path.startIndex
        while idx < path.endIndex, count < 5 {
            guard path[idx] == "/" else { break }
            let start = path.index(after: idx)
            switch count {
            case 0: starts.0 = start
            case 1: starts.1 = start
            case 2: starts.2 = start
            case 3: starts.3 = start
            default: starts.4 = start
            }
            count += 1
            idx = path[start...].firstIndex(of: "/") ?? path.endIndex
        }
    }

    private func start(_ i: Int) -> String.Index {
        switch i {
        case 0: starts.0
        case 1: starts.1
        case 2: starts.2
        case 3: starts.3
        default: starts.4
        }
    }

    /// Segment `i` (0-based), or nil past the end of the path.
    func segment(_ i: Int) -> Substring? {
        guard i < count else { return nil }
        let start = start(i)
        let end = path[start...].firstIndex(of: "/") ?? path.endIndex
        return path[start..<end]
    }

    /// The index just after segment `i`: where the rest of the path (with its leading `/`) begins.
    func offset(after i: Int) -> String.Index {
        let start = start(i)
        return path[start...].firstIndex(of: "/") ?? path.endIndex
    }
}

extension Substring {
    /// The segment with `%2e`/`%2E` decoded to `.`, enough to spot encoded dot segments.
    func replacingPercentDots() -> String {
        guard contains("%") else { return String(self) }
        return String(self).replacing("%2e", with: ".").replacing("%2E", with: ".")
    }
}
