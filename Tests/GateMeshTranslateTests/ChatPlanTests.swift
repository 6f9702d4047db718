import GateMeshCore
import GateMeshTranslate
import Testing

/// The unified chat API's client × target table.
@Suite struct ChatPlanTests {
    static let options = TranslationOptions(dropUnsupported: false, defaultMaxTokens: 1024)
    static let chat = JSONValue.parse(Array(#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#.utf8))!
    static let messages = JSONValue.parse(Array(#"{"model":"x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#.utf8))!

    @Test func whichProvidersTheUnifiedAPITranslatesTo() {
        func target(_ id: String) -> ChatPlan.Target? { ChatPlan.Target(ProviderSpec.builtIn.first { $0.id == id }!) }
        #expect(target("openai") == .openAI && target("groq") == .openAI)
        #expect(target("anthropic") == .anthropic && target("google-ai-studio") == .google)
        // Azure's deployment paths and Cohere's own format: not (yet).
        #expect(target("azure-openai") == nil && target("cohere") == nil)
    }

    @Test func aClientInTheTargetsFormatPassesWithOnlyTheModelSwapped() throws {
        let request = try ChatPlan.request(Self.chat, from: .openAIChat, to: .openAI, model: "gpt-4o-mini", provider: "openai",
                                           streamUsage: true, maxCompletionTokens: true, options: Self.options)
        #expect(request["model"]?.stringValue == "gpt-4o-mini" && request["messages"] == Self.chat["messages"])
        for (client, target) in [(ChatPlan.Client.openAIChat, ChatPlan.Target.openAI), (.anthropicMessages, .anthropic)] {
            #expect(ChatPlan.answer(from: target, to: client, request: Self.chat, status: 200, stream: true, includeUsage: false,
                                    model: "m", created: 0) == nil)
        }
    }

    @Test func everyOtherPairIsTranslatedBothWays() throws {
        let pairs: [(ChatPlan.Client, ChatPlan.Target, JSONValue)] = [
            (.openAIChat, .anthropic, Self.chat), (.openAIChat, .google, Self.chat),
            (.anthropicMessages, .openAI, Self.messages), (.anthropicMessages, .google, Self.messages),
        ]
        for (client, target, body) in pairs {
            let request = try ChatPlan.request(body, from: client, to: target, model: "m", provider: "p", streamUsage: true,
                                               maxCompletionTokens: false, options: Self.options)
            #expect(request.objectValue != nil)
            for stream in [true, false] {
                #expect(ChatPlan.answer(from: target, to: client, request: body, status: 200, stream: stream, includeUsage: true,
                                        model: "m", created: 0) != nil)
            }
        }
    }
}
