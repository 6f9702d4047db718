import GateMeshCore

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

    /// The format of `path` (the upstream path after the provider prefix) on a provider that
    /// speaks `wire`.
    public static func detect(wire: ProviderSpec.WireFormat, path: Substring) -> APIFormat {
        switch wire {
        case .anthropic:
            return path.hasSuffix("/messages") ? .anthropicMessages : .other
        case .google:
            if path.hasSuffix(":streamGenerateContent") { return .googleStream }
            if path.hasSuffix(":generateContent") { return .googleGenerate }
            if path.hasSuffix("/chat/completions") { return .openAIChat }  // Google's OpenAI-compatible endpoint
            if path.hasSuffix("/embeddings") { return .openAIEmbeddings }
            return .other
        case .openAI:
            if path.hasSuffix("/chat/completions") { return .openAIChat }
            if path.hasSuffix("/completions") { return .openAICompletions }
            if path.hasSuffix("/embeddings") { return .openAIEmbeddings }
            if path.hasSuffix("/responses") { return .openAIResponses }
            return .other
        case .other:
            return .other
        }
    }
}
