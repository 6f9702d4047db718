import GateMeshCore

/// The unified chat API's table of client format × target format: how a client's request is
/// rewritten for a target, and which translator brings the target's answer back. The one place
/// that says which pair is translated how; pure.
public enum ChatPlan {
    /// The format a client of the unified API speaks.
    public enum Client: Sendable, Equatable {
        case openAIChat, anthropicMessages

        /// The endpoint's name, for errors: `chat/completions` or `messages`.
        public var name: String { self == .openAIChat ? "chat/completions" : "messages" }
    }

    /// The formats the unified API translates to.
    public enum Target: Sendable, Equatable {
        case openAI, anthropic, google

        /// The format the unified API sends a provider: nil for one it cannot translate to (a
        /// format it does not read, or the OpenAI format under Azure's deployment paths).
        public init?(_ spec: ProviderSpec) {
            switch spec.wire {
            case .openAI where spec.pathStyle == .append: self = .openAI
            case .anthropic: self = .anthropic
            case .google: self = .google
            case .openAI, .other: return nil
            }
        }
    }

    /// The request `target` gets for the client's `body`, naming `model`. `provider` names the
    /// target in errors; `streamUsage` and `maxCompletionTokens` are the OpenAI-format provider's
    /// (whether it takes `stream_options.include_usage`, and `max_completion_tokens`).
    public static func request(_ body: JSONValue, from client: Client, to target: Target, model: String, provider: String,
                               streamUsage: Bool, maxCompletionTokens: Bool, options: TranslationOptions) throws(TranslationError) -> JSONValue {
        switch (client, target) {
        case (.openAIChat, .openAI), (.anthropicMessages, .anthropic):
            guard var o = body.objectValue else { throw TranslationError("the request body must be a JSON object") }
            o["model"] = .string(model)
            return .object(o)
        case (.openAIChat, .anthropic):
            return try OpenAIToAnthropic.request(body, model: model, options: options)
        case (.anthropicMessages, .openAI):
            return try AnthropicToOpenAI.request(body, model: model, provider: provider, options: options, streamUsage: streamUsage,
                                                 maxCompletionTokens: maxCompletionTokens)
        case (.openAIChat, .google):
            return try OpenAIToGoogle.request(body, options: options)
        case (.anthropicMessages, .google):
            // Through the OpenAI format.
            let chat = try AnthropicToOpenAI.request(body, model: model, provider: provider, options: options)
            return try OpenAIToGoogle.request(chat, options: options)
        }
    }

    /// The translator of `target`'s answer (of `status`) for the client, or nil when it passes as
    /// it is. `body` is the client's request (OpenAI's JSON mode shapes Anthropic's answer);
    /// `stream` and `includeUsage` are what the client asked for; `model` names a Google answer,
    /// which does not; `created` stamps the answers made here.
    public static func answer(from target: Target, to client: Client, request body: JSONValue, status: Int, stream: Bool,
                              includeUsage: Bool, model: String, created: Int) -> (any ResponseTranslator)? {
        let streamed = stream && status < 400
        switch (client, target) {
        case (.openAIChat, .openAI), (.anthropicMessages, .anthropic):
            return nil
        case (.openAIChat, .anthropic):
            let jsonMode = body.objectValue.map { (try? OpenAIToAnthropic.jsonSchema($0)) != nil } ?? false
            return streamed ? OpenAIToAnthropic.Stream(includeUsage: includeUsage, created: created, jsonMode: jsonMode)
                : WholeBodyTranslator { OpenAIToAnthropic.response($0, status: status, created: created, jsonMode: jsonMode) }
        case (.anthropicMessages, .openAI):
            return streamed ? AnthropicToOpenAI.Stream() : WholeBodyTranslator { AnthropicToOpenAI.response($0, status: status) }
        case (.openAIChat, .google):
            return streamed ? OpenAIToGoogle.Stream(includeUsage: includeUsage, model: model, created: created)
                : WholeBodyTranslator { OpenAIToGoogle.response($0, status: status, model: model, created: created) }
        case (.anthropicMessages, .google):
            return streamed
                ? ChainedTranslator(OpenAIToGoogle.Stream(includeUsage: true, model: model, created: created), AnthropicToOpenAI.Stream())
                : WholeBodyTranslator {
                    status >= 400 ? ErrorShapes.anthropic(from: $0, status: status)
                        : AnthropicToOpenAI.response(OpenAIToGoogle.response($0, status: status, model: model, created: created), status: status)
                }
        }
    }
}
