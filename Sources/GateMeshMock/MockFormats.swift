import Foundation
import GateMeshCore

/// The wire formats the mock speaks, each framed as the real API frames it (see docs/mock-provider.md
/// for the sources). Every function returns finished bytes as a String.
/// A streamed response, produced lazily: `head` events, then one event per token, then `tail`.
struct MockStream: Sendable {
    var head: [String]
    var tokens: Int
    var tail: [String]
    var token: @Sendable (Int) -> String

    init(head: [String], tokens: Int, tail: [String], token: @escaping @Sendable (Int) -> String) {
        self.head = head
        self.tokens = tokens
        self.tail = tail
        self.token = token
    }

    var count: Int { head.count + tokens + tail.count }

    func event(_ i: Int) -> String {
        if i < head.count { return head[i] }
        if i < head.count + tokens { return token(i - head.count) }
        return tail[i - head.count - tokens]
    }
}

enum MockFormats {
    struct Output {
        var model: String
        var inputTokens: Int
        var outputTokens: Int
        /// True when the request's max-tokens limit cut the output.
        var truncated: Bool
        var id: String
        var created: Int
    }

    static func q(_ s: String) -> String { JSON.quoted(s) }

    // MARK: OpenAI chat completions

    static func openAIChat(_ o: Output) -> String {
        """
        {"id":\(q(o.id)),"object":"chat.completion","created":\(o.created),"model":\(q(o.model)),\
        "choices":[{"index":0,"message":{"role":"assistant","content":\(q(MockText.output(o.outputTokens))),"refusal":null,"annotations":[]},\
        "logprobs":null,"finish_reason":\(q(o.truncated ? "length" : "stop"))}],\
        "usage":{"prompt_tokens":\(o.inputTokens),"completion_tokens":\(o.outputTokens),"total_tokens":\(o.inputTokens + o.outputTokens),\
        "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,\
        "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_gatemesh_mock"}
        """
    }

    /// One `chat.completion.chunk` event with `delta` (JSON text) and an optional finish reason.
    static func openAIChatChunk(_ o: Output, includeUsage: Bool, delta: String, finish: String?) -> String {
        let f = finish.map { q($0) } ?? "null"
        return "data: {\"id\":\(q(o.id)),\"object\":\"chat.completion.chunk\",\"created\":\(o.created),\"model\":\(q(o.model)),"
            + "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_gatemesh_mock\","
            + "\"choices\":[{\"index\":0,\"delta\":\(delta),\"logprobs\":null,\"finish_reason\":\(f)}]\(includeUsage ? ",\"usage\":null" : "")}\n\n"
    }

    /// The final usage chunk of `stream_options.include_usage` (`choices: []`).
    static func openAIChatUsageChunk(_ o: Output) -> String {
        "data: {\"id\":\(q(o.id)),\"object\":\"chat.completion.chunk\",\"created\":\(o.created),\"model\":\(q(o.model)),"
            + "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_gatemesh_mock\",\"choices\":[],"
            + "\"usage\":{\"prompt_tokens\":\(o.inputTokens),\"completion_tokens\":\(o.outputTokens),\"total_tokens\":\(o.inputTokens + o.outputTokens),"
            + "\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
            + "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n"
    }

    static func openAIChatStream(_ o: Output, includeUsage: Bool) -> MockStream {
        @Sendable func chunk(_ delta: String, finish: String?) -> String {
            openAIChatChunk(o, includeUsage: includeUsage, delta: delta, finish: finish)
        }
        let head = [chunk("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", finish: nil)]
        let count = o.outputTokens
        var events = [chunk("{}", finish: o.truncated ? "length" : "stop")]
        if includeUsage { events.append(openAIChatUsageChunk(o)) }
        events.append("data: [DONE]\n\n")
        return MockStream(head: head, tokens: count, tail: events) { i in
            chunk("{\"content\":\(q(MockText.outputToken(i, of: count)))}", finish: nil)
        }
    }

    // MARK: OpenAI legacy completions

    static func openAICompletion(_ o: Output) -> String {
        """
        {"id":\(q(o.id)),"object":"text_completion","created":\(o.created),"model":\(q(o.model)),\
        "choices":[{"text":\(q(MockText.output(o.outputTokens))),"index":0,"logprobs":null,"finish_reason":\(q(o.truncated ? "length" : "stop"))}],\
        "usage":{"prompt_tokens":\(o.inputTokens),"completion_tokens":\(o.outputTokens),"total_tokens":\(o.inputTokens + o.outputTokens)}}
        """
    }

    static func openAICompletionStream(_ o: Output, includeUsage: Bool) -> MockStream {
        @Sendable func chunk(_ text: String, finish: String?) -> String {
            let f = finish.map { q($0) } ?? "null"
            return "data: {\"id\":\(q(o.id)),\"object\":\"text_completion\",\"created\":\(o.created),\"model\":\(q(o.model)),"
                + "\"choices\":[{\"text\":\(q(text)),\"index\":0,\"logprobs\":null,\"finish_reason\":\(f)}]}\n\n"
        }
        let count = o.outputTokens
        var events = [chunk("", finish: o.truncated ? "length" : "stop")]
        if includeUsage {
            events.append(
                "data: {\"id\":\(q(o.id)),\"object\":\"text_completion\",\"created\":\(o.created),\"model\":\(q(o.model)),\"choices\":[],"
                    + "\"usage\":{\"prompt_tokens\":\(o.inputTokens),\"completion_tokens\":\(o.outputTokens),\"total_tokens\":\(o.inputTokens + o.outputTokens)}}\n\n")
        }
        events.append("data: [DONE]\n\n")
        return MockStream(head: [], tokens: count, tail: events) { i in chunk(MockText.outputToken(i, of: count), finish: nil) }
    }

    // MARK: OpenAI embeddings and models

    static func openAIEmbeddings(model: String, inputs: [String], dimensions: Int) -> String {
        var out = "{\"object\":\"list\",\"data\":["
        var tokens = 0
        for (i, text) in inputs.enumerated() {
            if i > 0 { out += "," }
            tokens += MockText.wordCount(text)
            let vector = MockText.embedding(text, dimensions: dimensions).map { String(format: "%.6f", $0) }.joined(separator: ",")
            out += "{\"object\":\"embedding\",\"index\":\(i),\"embedding\":[\(vector)]}"
        }
        out += "],\"model\":\(q(model)),\"usage\":{\"prompt_tokens\":\(tokens),\"total_tokens\":\(tokens)}}"
        return out
    }

    static let modelIDs = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-sonnet-4-5", "gemini-2.5-flash", "mock-model"]

    static func openAIModels() -> String {
        let items = modelIDs.map { "{\"id\":\(q($0)),\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"gatemesh-mock\"}" }
        return "{\"object\":\"list\",\"data\":[\(items.joined(separator: ","))]}"
    }

    static func openAIModel(_ id: String) -> String {
        "{\"id\":\(q(id)),\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"gatemesh-mock\"}"
    }

    // MARK: Anthropic messages

    static func anthropicUsage(_ o: Output, output: Int) -> String {
        "{\"input_tokens\":\(o.inputTokens),\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":\(output)}"
    }

    static func anthropicMessage(_ o: Output) -> String {
        """
        {"id":\(q(o.id)),"type":"message","role":"assistant","model":\(q(o.model)),\
        "content":[{"type":"text","text":\(q(MockText.output(o.outputTokens)))}],\
        "stop_reason":\(q(o.truncated ? "max_tokens" : "end_turn")),"stop_sequence":null,"usage":\(anthropicUsage(o, output: o.outputTokens))}
        """
    }

    static func anthropicStream(_ o: Output) -> MockStream {
        @Sendable func event(_ name: String, _ data: String) -> String { "event: \(name)\ndata: \(data)\n\n" }
        let head = [
            event("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\(q(o.id)),\"type\":\"message\",\"role\":\"assistant\","
                + "\"model\":\(q(o.model)),\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":\(anthropicUsage(o, output: 1))}}"),
            event("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"),
            event("ping", "{\"type\":\"ping\"}"),
        ]
        let count = o.outputTokens
        var events = [String]()
        events.append(event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"))
        events.append(event("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\(q(o.truncated ? "max_tokens" : "end_turn")),"
            + "\"stop_sequence\":null},\"usage\":{\"output_tokens\":\(o.outputTokens)}}"))
        events.append(event("message_stop", "{\"type\":\"message_stop\"}"))
        return MockStream(head: head, tokens: count, tail: events) { i in
            event("content_block_delta",
                  "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\(q(MockText.outputToken(i, of: count)))}}")
        }
    }

    // MARK: Google AI Studio

    static func googleChunk(_ o: Output, text: String, produced: Int, finished: Bool) -> String {
        googleChunk(o, parts: "[{\"text\":\(q(text))}]", produced: produced, finished: finished)
    }

    /// One `GenerateContentResponse` whose candidate has `parts` (a JSON array as text).
    static func googleChunk(_ o: Output, parts: String, produced: Int, finished: Bool) -> String {
        let finish = finished ? ",\"finishReason\":\(q(o.truncated ? "MAX_TOKENS" : "STOP"))" : ""
        return "{\"candidates\":[{\"content\":{\"parts\":\(parts),\"role\":\"model\"}\(finish),\"index\":0}],"
            + "\"usageMetadata\":{\"promptTokenCount\":\(o.inputTokens),\"candidatesTokenCount\":\(produced),"
            + "\"totalTokenCount\":\(o.inputTokens + produced),\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":\(o.inputTokens)}]},"
            + "\"modelVersion\":\(q(o.model)),\"responseId\":\(q(o.id))}"
    }

    static func googleGenerate(_ o: Output) -> String {
        googleChunk(o, text: MockText.output(o.outputTokens), produced: o.outputTokens, finished: true)
    }

    /// `streamGenerateContent`: with `alt=sse`, one `data:` event per chunk (CRLF framed); without it,
    /// one JSON array streamed element by element.
    static func googleStream(_ o: Output, sse: Bool) -> MockStream {
        let count = max(o.outputTokens, 1)
        return MockStream(head: [], tokens: count, tail: sse ? [] : ["\n]"]) { i in
            let text = o.outputTokens == 0 ? "" : MockText.outputToken(i, of: o.outputTokens)
            let chunk = googleChunk(o, text: text, produced: min(i + 1, o.outputTokens), finished: i == count - 1)
            return sse ? "data: \(chunk)\r\n\r\n" : (i == 0 ? "[" : "\n,\r\n") + chunk
        }
    }

    // MARK: Errors

    static func openAIError(status: Int, message: String) -> String {
        let type = status == 429 ? "rate_limit_exceeded" : status >= 500 ? "server_error" : "invalid_request_error"
        return "{\"error\":{\"message\":\(q(message)),\"type\":\(q(type)),\"param\":null,\"code\":null}}"
    }

    static func anthropicError(status: Int, message: String) -> String {
        let type: String
        switch status {
        case 400: type = "invalid_request_error"
        case 401: type = "authentication_error"
        case 403: type = "permission_error"
        case 404: type = "not_found_error"
        case 413: type = "request_too_large"
        case 429: type = "rate_limit_error"
        case 529: type = "overloaded_error"
        default: type = "api_error"
        }
        return "{\"type\":\"error\",\"error\":{\"type\":\(q(type)),\"message\":\(q(message))}}"
    }

    static func googleError(status: Int, message: String) -> String {
        let s: String
        switch status {
        case 400: s = "INVALID_ARGUMENT"
        case 401: s = "UNAUTHENTICATED"
        case 403: s = "PERMISSION_DENIED"
        case 404: s = "NOT_FOUND"
        case 429: s = "RESOURCE_EXHAUSTED"
        case 503: s = "UNAVAILABLE"
        case 504: s = "DEADLINE_EXCEEDED"
        default: s = "INTERNAL"
        }
        return "{\"error\":{\"code\":\(status),\"message\":\(q(message)),\"status\":\(q(s))}}"
    }
}
