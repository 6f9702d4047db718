/// What the gateway knows about one provider's API: where it lives and how it authenticates.
public struct ProviderSpec: Sendable, Equatable {
    /// How a provider's API expects its credential.
    public enum Auth: Sendable, Equatable {
        /// `Authorization: Bearer <key>`.
        case bearer
        /// A header of its own holding the bare key, e.g. `x-api-key`.
        case header(String)
    }

    /// How the path after `/{provider}` maps onto the upstream URL.
    public enum PathStyle: Sendable, Equatable {
        /// `base_url` + the rest of the path, untouched.
        case append
        /// `/{resource}/{deployment}/rest`: `{resource}` and `{deployment}` are substituted into
        /// `base_url`, then the rest is appended (Azure OpenAI).
        case resourceAndDeployment
    }

    /// The wire format a provider speaks: it decides where the usage of its answers is read
    /// (`APIFormat.detect`) and whether the unified API can translate to it. The one place that
    /// says which provider speaks which.
    public enum WireFormat: Sendable, Equatable {
        /// OpenAI's: chat completions, completions, embeddings, Responses.
        case openAI
        /// Anthropic's Messages.
        case anthropic
        /// Google's generateContent (Google AI Studio also serves an OpenAI-format chat endpoint).
        case google
        /// One GateMesh does not read: passed through, not priced by usage.
        case other
    }

    /// The canonical name, as in the URL: `openai`, `custom-ollama`.
    public var id: String
    /// The upstream base URL without a trailing slash.
    public var defaultBaseURL: String
    public var auth: Auth
    public var pathStyle: PathStyle
    public var wire: WireFormat
    /// A query parameter that may carry the key instead of a header (Google's `key`).
    public var queryKeyParameter: String?
    /// True when the base URL already ends in the API version (`…/v1`) and a client path that
    /// repeats it (`/xai/v1/chat/completions`, as Cloudflare's own examples write) drops the repeat.
    public var dropsRepeatedVersion: Bool
    /// True when the provider honours OpenAI's `stream_options.include_usage`, so the gateway may
    /// add it to a stream whose client did not ask, to learn the stream's usage.
    public var acceptsStreamUsageOption: Bool

    public init(
        id: String,
        defaultBaseURL: String,
        auth: Auth,
        pathStyle: PathStyle = .append,
        wire: WireFormat,
        queryKeyParameter: String? = nil,
        dropsRepeatedVersion: Bool = false,
        acceptsStreamUsageOption: Bool = false
    ) {
        self.id = id
        self.defaultBaseURL = defaultBaseURL
        self.auth = auth
        self.pathStyle = pathStyle
        self.wire = wire
        self.queryKeyParameter = queryKeyParameter
        self.dropsRepeatedVersion = dropsRepeatedVersion
        self.acceptsStreamUsageOption = acceptsStreamUsageOption
    }

    /// The request header names that carry a credential for this provider.
    public var credentialHeader: String {
        switch auth {
        case .bearer: return "authorization"
        case .header(let name): return name
        }
    }

    /// The header value for a stored key.
    public func credentialValue(for key: String) -> String {
        switch auth {
        case .bearer: return "Bearer " + key
        case .header: return key
        }
    }
}

extension ProviderSpec {
    /// The providers GateMesh knows by name. Base URLs follow the Cloudflare AI Gateway mapping, so a
    /// client built for `https://gateway.ai.cloudflare.com/v1/{account}/{gateway}/{provider}` moves by
    /// changing only the host; `docs/providers.md` tables them with their sources.
    public static let builtIn: [ProviderSpec] = [
        ProviderSpec(id: "openai", defaultBaseURL: "https://api.openai.com/v1", auth: .bearer, wire: .openAI, dropsRepeatedVersion: true, acceptsStreamUsageOption: true),
        ProviderSpec(id: "anthropic", defaultBaseURL: "https://api.anthropic.com", auth: .header("x-api-key"), wire: .anthropic),
        ProviderSpec(
            id: "azure-openai",
            defaultBaseURL: "https://{resource}.openai.azure.com/openai/deployments/{deployment}",
            auth: .header("api-key"), pathStyle: .resourceAndDeployment, wire: .openAI,
            acceptsStreamUsageOption: true
        ),
        ProviderSpec(
            id: "google-ai-studio", defaultBaseURL: "https://generativelanguage.googleapis.com",
            auth: .header("x-goog-api-key"), wire: .google, queryKeyParameter: "key"
        ),
        ProviderSpec(id: "mistral", defaultBaseURL: "https://api.mistral.ai", auth: .bearer, wire: .openAI),
        ProviderSpec(id: "groq", defaultBaseURL: "https://api.groq.com/openai/v1", auth: .bearer, wire: .openAI, dropsRepeatedVersion: true, acceptsStreamUsageOption: true),
        ProviderSpec(id: "deepseek", defaultBaseURL: "https://api.deepseek.com", auth: .bearer, wire: .openAI,
                     acceptsStreamUsageOption: true),
        ProviderSpec(id: "xai", defaultBaseURL: "https://api.x.ai/v1", auth: .bearer, wire: .openAI, dropsRepeatedVersion: true, acceptsStreamUsageOption: true),
        ProviderSpec(id: "openrouter", defaultBaseURL: "https://openrouter.ai/api/v1", auth: .bearer, wire: .openAI, dropsRepeatedVersion: true, acceptsStreamUsageOption: true),
        ProviderSpec(id: "perplexity-ai", defaultBaseURL: "https://api.perplexity.ai", auth: .bearer, wire: .openAI),
        ProviderSpec(id: "cohere", defaultBaseURL: "https://api.cohere.ai", auth: .bearer, wire: .other),
    ]

    /// Other names accepted in the URL for a built-in provider.
    public static let aliases: [String: String] = ["grok": "xai"]

    /// The spec of a `custom-{name}` provider: an OpenAI-compatible server at `baseURL`.
    public static func custom(id: String, baseURL: String) -> ProviderSpec {
        ProviderSpec(id: id, defaultBaseURL: baseURL, auth: .bearer, wire: .openAI)
    }

    /// Every header name any provider reads a credential from. A stored key replaces all of them.
    public static let allCredentialHeaders: Set<String> = ["authorization", "x-api-key", "api-key", "x-goog-api-key"]
}
