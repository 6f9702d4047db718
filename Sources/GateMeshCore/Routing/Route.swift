/// What a request path asks for, before any I/O.
public enum Route: Sendable, Equatable {
    /// `/healthz` (any method): open to everyone.
    case health
    /// An operator endpoint (`/metrics`, `/cluster/status`, `/api/…`, `/dashboard`): needs the admin token.
    case operatorEndpoint(path: String)
    /// A provider passthrough.
    case passthrough(PassthroughRoute)
    /// The unified OpenAI- or Anthropic-format API (`/v1/chat/completions`, `/{gateway}/v1/messages`, …).
    case unified(gateway: String, endpoint: String)
    /// The universal endpoint `POST /{gateway}` (or `/v1/{account}/{gateway}`).
    case universal(gateway: String)
}

/// A request for `/{gateway}/{provider}/{rest}` in any of its accepted shapes.
public struct PassthroughRoute: Sendable, Equatable {
    public enum Shape: Sendable, Equatable {
        /// `/{provider}/…` on the default gateway.
        case direct
        /// `/{gateway}/{provider}/…`.
        case named
        /// `/v1/{account}/{gateway}/{provider}/…`, the Cloudflare AI Gateway shape.
        case cloudflare(account: String)
    }

    public var gateway: String
    /// The provider segment as the client wrote it (an alias such as `grok` stays as written).
    public var provider: String
    /// The path after the provider segment, percent-encoding kept, starting with `/` or empty.
    public var rest: String
    public var shape: Shape

    public init(gateway: String, provider: String, rest: String, shape: Shape) {
        self.gateway = gateway
        self.provider = provider
        self.rest = rest
        self.shape = shape
    }
}
