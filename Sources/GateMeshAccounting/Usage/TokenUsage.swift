/// Tokens one request used, by the kinds providers price differently.
///
/// `input` counts uncached input only: providers that report cached tokens as part of their
/// prompt count (OpenAI, Google) have them moved to `cacheRead`, so each token is priced once.
public struct TokenUsage: Sendable, Equatable, CustomStringConvertible {
    public var input: Int
    public var output: Int
    public var cacheRead: Int
    public var cacheWrite: Int
    /// True when some figure was estimated by the gateway because the provider never reported it
    /// (a stream cut short, a client gone mid-stream).
    public var estimated: Bool

    public init(input: Int = 0, output: Int = 0, cacheRead: Int = 0, cacheWrite: Int = 0, estimated: Bool = false) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
        self.estimated = estimated
    }

    public static let zero = TokenUsage()

    /// The largest figure read from a provider's usage (2^40, a trillion tokens): larger ones are
    /// taken as this, so totals and costs of the four figures cannot overflow.
    public static let maxReported = 1 << 40

    public var totalInput: Int { input + cacheRead + cacheWrite }
    public var total: Int { totalInput + output }

    public var description: String {
        "in=\(input) out=\(output) cache_read=\(cacheRead) cache_write=\(cacheWrite)\(estimated ? " (estimated)" : "")"
    }
}

/// The wire format of a provider endpoint, which decides where its usage figures are.
public enum APIFormat: String, Sendable, Equatable {
    case openAIChat = "openai.chat"
    case openAICompletions = "openai.completions"
    case openAIEmbeddings = "openai.embeddings"
    case openAIResponses = "openai.responses"
    case anthropicMessages = "anthropic.messages"
    case googleGenerate = "google.generate"
    case googleStream = "google.stream"
    /// A path whose usage GateMesh does not read (model lists, files, …): no cost.
    case other

    /// The format of `path` (the upstream path after the provider prefix) on a provider.
    public static func detect(providerOpenAICompatible: Bool, providerID: String, path: Substring) -> APIFormat {
        if providerID == "anthropic" {
            return path.hasSuffix("/messages") ? .anthropicMessages : .other
        }
        if providerID == "google-ai-studio" {
            if path.hasSuffix(":streamGenerateContent") { return .googleStream }
            if path.hasSuffix(":generateContent") { return .googleGenerate }
            if path.hasSuffix("/chat/completions") { return .openAIChat }  // Google's OpenAI-compatible endpoint
            if path.hasSuffix("/embeddings") { return .openAIEmbeddings }
            return .other
        }
        guard providerOpenAICompatible else { return .other }
        if path.hasSuffix("/chat/completions") { return .openAIChat }
        if path.hasSuffix("/completions") { return .openAICompletions }
        if path.hasSuffix("/embeddings") { return .openAIEmbeddings }
        if path.hasSuffix("/responses") { return .openAIResponses }
        return .other
    }
}
