@testable import GateMeshAccounting
import GateMeshCore
import Testing

/// Wire samples follow the providers' published API references (OpenAI chat completions and
/// Responses streaming, Anthropic Messages streaming, Gemini generateContent/streamGenerateContent).
/// The format of `path` on the built-in provider `id`.
private func detect(_ id: String, _ path: Substring) -> APIFormat {
    APIFormat.detect(wire: ProviderSpec.builtIn.first { $0.id == id }!.wire, path: path)
}

@Suite struct UsageTests {
    func run(_ format: APIFormat, contentType: String, _ chunks: [String], completed: Bool = true,
             request: RequestFacts = RequestFacts(estimatedInputTokens: 10), strip: Bool = false) -> (String, ResponseAccountant.Outcome) {
        var accountant = ResponseAccountant(format: format, contentType: contentType, request: request, stripsInjectedUsage: strip)
        var forwarded: [UInt8] = []
        for chunk in chunks {
            let bytes = Array(chunk.utf8)
            forwarded += accountant.process(bytes) ?? bytes
        }
        let (tail, outcome) = accountant.finish(completed: completed)
        return (String(decoding: forwarded + tail, as: UTF8.self), outcome)
    }

    // MARK: OpenAI

    static let chatWithUsage = [
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":2,\"total_tokens\":1202,\"prompt_tokens_details\":{\"cached_tokens\":1024}}}\n\n",
        "data: [DONE]\n\n",
    ]

    static let chatWithoutUsage = [
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\ndata: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    ]

    @Test func openAIStreamUsageWithCachedTokens() {
        let (forwarded, outcome) = run(.openAIChat, contentType: "text/event-stream", Self.chatWithUsage)
        #expect(forwarded == Self.chatWithUsage.joined())
        #expect(outcome.usage == TokenUsage(input: 176, output: 2, cacheRead: 1024))
        #expect(outcome.reported)
        #expect(outcome.servedModel == "gpt-4o-mini-2024-07-18")
    }

    @Test func injectedUsageIsStrippedSoTheClientSeesTheOriginalStream() {
        // Split the usage stream at awkward places: events must still come out whole and exact.
        let joined = Self.chatWithUsage.joined()
        let chunks = stride(from: 0, to: joined.utf8.count, by: 37).map { start -> String in
            let bytes = Array(joined.utf8)
            return String(decoding: bytes[start..<min(start + 37, bytes.count)], as: UTF8.self)
        }
        let (forwarded, outcome) = run(.openAIChat, contentType: "text/event-stream", chunks, strip: true)
        #expect(forwarded == Self.chatWithoutUsage.joined())
        #expect(outcome.usage == TokenUsage(input: 176, output: 2, cacheRead: 1024))
    }

    @Test func openAIStreamCutBeforeUsageIsEstimated() {
        let (_, outcome) = run(.openAIChat, contentType: "text/event-stream", Array(Self.chatWithUsage.prefix(2)), completed: false,
                               request: RequestFacts(estimatedInputTokens: 300))
        #expect(outcome.usage == TokenUsage(input: 300, output: 2, estimated: true))
        #expect(!outcome.reported)
    }

    /// A client that leaves as soon as it has the stream's end marker (the OpenAI SDK stops at
    /// `[DONE]`) can close its connection before the transfer has ended: the exchange then ends
    /// incomplete, but the provider had said its last word, and its figures are exact.
    @Test func aStreamCutAfterItsEndMarkerKeepsTheProvidersFigures() {
        let (_, outcome) = run(.openAIChat, contentType: "text/event-stream", Self.chatWithUsage, completed: false)
        #expect(outcome.usage == TokenUsage(input: 176, output: 2, cacheRead: 1024))
        #expect(outcome.reported)
    }

    @Test func anUnterminatedLastEventStillReachesTheClientInStripMode() {
        var chunks = Self.chatWithUsage
        chunks[chunks.count - 1] = "data: [DONE]\n"  // no blank line after it
        let (forwarded, outcome) = run(.openAIChat, contentType: "text/event-stream", chunks, strip: true)
        #expect(forwarded.hasSuffix("\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n"))
        #expect(outcome.usage.output == 2)
    }

    @Test func deepSeekCacheHits() {
        let body = #"{"model":"deepseek-chat","usage":{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}}"#
        #expect(run(.openAIChat, contentType: "application/json", [body]).1.usage == TokenUsage(input: 36, output: 5, cacheRead: 64))
    }

    @Test func groqReportsUsageUnderXGroq() {
        let chunks = [
            "data: {\"id\":\"g\",\"object\":\"chat.completion.chunk\",\"model\":\"llama-3.3-70b-versatile\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"x_groq\":{\"id\":\"req_1\",\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"total_tokens\":49}}}\n\n",
            "data: [DONE]\n\n",
        ]
        #expect(run(.openAIChat, contentType: "text/event-stream", chunks).1.usage == TokenUsage(input: 40, output: 9))
    }

    @Test func openAINonStreamed() {
        let body = #"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":4}}}"#
        let (_, outcome) = run(.openAIChat, contentType: "application/json", [String(body.prefix(50)), String(body.dropFirst(50))])
        #expect(outcome.usage == TokenUsage(input: 19, output: 10))
        #expect(outcome.servedModel == "gpt-4.1")
    }

    @Test func embeddingsUsage() {
        let body = #"{"object":"list","data":[{"object":"embedding","embedding":[0.1],"index":0}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#
        #expect(run(.openAIEmbeddings, contentType: "application/json", [body]).1.usage == TokenUsage(input: 8))
    }

    @Test func responsesAPIStream() {
        let chunks = [
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi there\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5\",\"status\":\"completed\",\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":6},\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":64},\"total_tokens\":123}}}\n\n",
        ]
        let outcome = run(.openAIResponses, contentType: "text/event-stream", chunks).1
        #expect(outcome.usage == TokenUsage(input: 30, output: 87, cacheRead: 6))
        #expect(outcome.servedModel == "gpt-5")
    }

    // MARK: Anthropic

    static let anthropicStream = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":1000,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there, this is a longer reply\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]

    @Test func anthropicStreamWithCacheTokens() {
        let outcome = run(.anthropicMessages, contentType: "text/event-stream", Self.anthropicStream).1
        #expect(outcome.usage == TokenUsage(input: 25, output: 15, cacheRead: 2000, cacheWrite: 1000))
        #expect(outcome.servedModel == "claude-sonnet-4-5-20250929")
    }

    @Test func anthropicStreamCutMidwayKeepsExactInputAndEstimatesOutput() {
        let outcome = run(.anthropicMessages, contentType: "text/event-stream", Array(Self.anthropicStream.prefix(4)), completed: false).1
        // 35 characters of text generated: about 9 tokens.
        #expect(outcome.usage == TokenUsage(input: 25, output: 9, cacheRead: 2000, cacheWrite: 1000, estimated: true))
        #expect(outcome.reported)
    }

    @Test func anthropicNonStreamed() {
        let body = #"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":50,"output_tokens":6}}"#
        #expect(run(.anthropicMessages, contentType: "application/json", [body]).1.usage == TokenUsage(input: 12, output: 6, cacheRead: 50))
    }

    // MARK: Google

    static let googleChunks = [
        #"{"candidates":[{"content":{"parts":[{"text":"Here "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":105,"candidatesTokenCount":1,"totalTokenCount":106,"cachedContentTokenCount":100},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
        #"{"candidates":[{"content":{"parts":[{"text":"you go"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":105,"candidatesTokenCount":4,"totalTokenCount":129,"cachedContentTokenCount":100,"thoughtsTokenCount":20},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
    ]

    @Test func googleSSE() {
        let outcome = run(.googleStream, contentType: "text/event-stream", Self.googleChunks.map { "data: \($0)\r\n\r\n" }).1
        #expect(outcome.usage == TokenUsage(input: 5, output: 24, cacheRead: 100))
        #expect(outcome.servedModel == "gemini-2.5-flash")
    }

    @Test func googleJSONArrayStream() {
        let text = "[" + Self.googleChunks.joined(separator: "\n,\r\n") + "\n]"
        let pieces = stride(from: 0, to: text.count, by: 11).map { String(Array(text)[$0..<min($0 + 11, text.count)]) }
        #expect(run(.googleStream, contentType: "application/json", pieces).1.usage == TokenUsage(input: 5, output: 24, cacheRead: 100))
    }

    @Test func googleNonStreamed() {
        #expect(run(.googleGenerate, contentType: "application/json", [Self.googleChunks[1]]).1.usage == TokenUsage(input: 5, output: 24, cacheRead: 100))
    }

    /// Found by fuzzing: figures at the ends of Int overflowed the cached-token subtraction and
    /// Google's output sum, and trapped; a negative figure would have credited a budget.
    @Test func reportedFiguresOutOfRangeAreClampedNotTrapped() {
        let max = TokenUsage.maxReported
        let openAI = #"{"usage":{"prompt_tokens":0,"completion_tokens":-5,"prompt_tokens_details":{"cached_tokens":-9223372036854775808}}}"#
        #expect(run(.openAIChat, contentType: "application/json", [openAI]).1.usage == TokenUsage())
        let google = #"{"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":9223372036854775807,"thoughtsTokenCount":9}}"#
        #expect(run(.googleGenerate, contentType: "application/json", [google]).1.usage == TokenUsage(input: 1, output: max + 9))
        let anthropic = #"{"usage":{"input_tokens":9223372036854775807,"cache_read_input_tokens":9223372036854775807,"output_tokens":1}}"#
        let usage = run(.anthropicMessages, contentType: "application/json", [anthropic]).1.usage
        #expect(usage == TokenUsage(input: max, output: 1, cacheRead: max) && usage.total == 2 * max + 1)
    }

    @Test func otherPathsCostNothing() {
        let outcome = run(.other, contentType: "application/json", [#"{"object":"list","data":[]}"#]).1
        #expect(outcome.usage == .zero && !outcome.reported)
    }
}

@Suite struct RequestInspectorTests {
    /// The model a Google path serves is the request's model: a `model` in the body cannot pass
    /// for it (a key allowed only one model would otherwise get another).
    @Test func aGooglePathsModelWinsOverOneInTheBody() {
        let body = Array(#"{"model":"gemini-2.5-flash","contents":[{"parts":[{"text":"hi"}]}],"user":"bob"}"#.utf8)
        let facts = RequestInspector.inspect(format: .googleGenerate, path: "/v1beta/models/gemini-2.5-pro:generateContent", body: body)
        #expect(facts.model == "gemini-2.5-pro" && facts.user == "bob")
    }

    @Test func factsFromAnOpenAIBody() {
        let body = Array(#"{"model":"gpt-4o","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"12345678"}]}"#.utf8)
        let facts = RequestInspector.inspect(format: .openAIChat, path: "/chat/completions", body: body)
        #expect(facts == RequestFacts(model: "gpt-4o", stream: true, clientAskedForUsage: false, estimatedInputTokens: 2, maxOutputTokens: 50))
    }

    @Test func googleModelComesFromThePath() {
        let body = Array(#"{"contents":[{"parts":[{"text":"abcd"}]}],"generationConfig":{"maxOutputTokens":7}}"#.utf8)
        let facts = RequestInspector.inspect(format: .googleStream, path: "/v1beta/models/gemini-2.5-pro:streamGenerateContent", body: body)
        #expect(facts == RequestFacts(model: "gemini-2.5-pro", stream: true, estimatedInputTokens: 1, maxOutputTokens: 7))
    }

    @Test func textIsCountedInPlaceWithEscapesAndSkippedKeys() {
        // "héllo\n" is 6 scalars, "\ud83d\ude00" one, "a\u00e9" two; the role, the image URL,
        // the tool name and every key are not prompt text. Nested containers and numbers count 0.
        let body = Array(#"""
            {"model":"gpt-4o","stream_options":{"include_usage":true},"max_completion_tokens":9,
             "messages":[{"role":"system","content":"héllo\n"},
                         {"role":"user","content":[{"type":"text","text":"\ud83d\ude00"},
                                                   {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]},
                         {"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"lookup","arguments":"a\u00e9"}}]}],
             "temperature":0.5,"n":1,"stop":null,"seed":[1,2,{"k":true}]}
            """#.utf8)
        let facts = RequestInspector.inspect(format: .openAIChat, path: "/chat/completions", body: body)
        #expect(facts == RequestFacts(model: "gpt-4o", stream: false, clientAskedForUsage: true, estimatedInputTokens: (9 + 3) / 4,
                                      maxOutputTokens: 9))
        let scan = JSONValue.scan(body, keys: ["model", "absent"], skipping: [Array("role".utf8)])
        #expect(scan?.members.keys == ["model"])
        // Without skipping type/url/id/name/model, their values count too.
        // gpt-4o 6, héllo\n 6, text 4, the emoji 1, image_url 9, the URL 25, c1 2, lookup 6, aé 2.
        #expect(scan?.characters == 61)
    }

    @Test func malformedBodiesGiveNoFacts() {
        for text in [#"{"model":"m","messages":[}"#, #"{"model":"m"} x"#, #"{"a":"\q"}"#, #"{"a":"\ud800"}"#, "[1]", #"{"a":"x"#] {
            let facts = RequestInspector.inspect(format: .openAIChat, path: "/chat/completions", body: Array(text.utf8))
            #expect(facts == RequestFacts(), "\(text)")
        }
    }

    @Test func usageRequestIsAppendedWithoutTouchingTheRest() {
        let body = #"{"model":"m", "stream": true,"messages":[]}  "#
        let out = RequestInspector.addingUsageRequest(to: Array(body.utf8)).map { String(decoding: $0, as: UTF8.self) }
        #expect(out == #"{"model":"m", "stream": true,"messages":[],"stream_options":{"include_usage":true}}  "#)
    }

    @Test func existingStreamOptionsGainIncludeUsage() throws {
        let out = try #require(RequestInspector.addingUsageRequest(to: Array(#"{"stream":true,"stream_options":{}}"#.utf8)))
        let facts = RequestInspector.inspect(format: .openAIChat, path: "", body: out)
        #expect(facts.clientAskedForUsage)
        #expect(RequestInspector.addingUsageRequest(to: Array(#"{"stream_options":{"include_usage":true}}"#.utf8)) == nil)
        #expect(RequestInspector.addingUsageRequest(to: Array("[1]".utf8)) == nil)
    }

    @Test func formatDetection() {
        #expect(detect("openai", "/chat/completions") == .openAIChat)
        #expect(detect("groq", "/completions") == .openAICompletions)
        #expect(detect("openai", "/responses") == .openAIResponses)
        #expect(detect("anthropic", "/v1/messages") == .anthropicMessages)
        #expect(detect("google-ai-studio", "/v1beta/models/g:streamGenerateContent") == .googleStream)
        #expect(detect("openai", "/models") == .other)
        #expect(detect("cohere", "/v2/chat") == .other)
    }
}
