import Foundation
import GateMeshCore

/// Tool-call answers in each provider's wire format, whole and streamed (see docs/mock-provider.md,
/// "Tool calls", for the shapes and their sources). `o.outputTokens` is the tool answer's count.
extension MockFormats {
    /// The usage a tool-call answer reports: the calls' tokens, plus the words of the optional text.
    static func toolOutput(_ o: Output, calls: [MockToolCall], text: String?) -> Output {
        var out = o
        out.outputTokens = calls.reduce(0) { $0 + $1.tokens } + (text.map { MockText.wordCount($0) } ?? 0)
        out.truncated = false
        return out
    }

    // MARK: OpenAI chat completions

    static func openAIChatToolCalls(_ o: Output, calls: [MockToolCall]) -> String {
        let items = calls.map { c in
            "{\"id\":\(q(c.id)),\"type\":\"function\",\"function\":{\"name\":\(q(c.name)),\"arguments\":\(q(c.arguments))}}"
        }
        return """
            {"id":\(q(o.id)),"object":"chat.completion","created":\(o.created),"model":\(q(o.model)),\
            "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[\(items.joined(separator: ","))],"refusal":null,"annotations":[]},\
            "logprobs":null,"finish_reason":"tool_calls"}],\
            "usage":{"prompt_tokens":\(o.inputTokens),"completion_tokens":\(o.outputTokens),"total_tokens":\(o.inputTokens + o.outputTokens),\
            "prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,\
            "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_gatemesh_mock"}
            """
    }

    /// Per call: a chunk with its index, id, type, name and empty arguments (the first one also
    /// carries the role), then its arguments in fragments of about 8 characters. Then the
    /// `tool_calls` finish chunk, the optional usage chunk and `[DONE]`.
    static func openAIChatToolStream(_ o: Output, calls: [MockToolCall], includeUsage: Bool) -> MockStream {
        func chunk(_ delta: String, finish: String? = nil) -> String {
            openAIChatChunk(o, includeUsage: includeUsage, delta: delta, finish: finish)
        }
        var events: [String] = []
        for (i, c) in calls.enumerated() {
            let start = "[{\"index\":\(i),\"id\":\(q(c.id)),\"type\":\"function\",\"function\":{\"name\":\(q(c.name)),\"arguments\":\"\"}}]"
            events.append(chunk(i == 0
                ? "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":\(start),\"refusal\":null}"
                : "{\"tool_calls\":\(start)}"))
            for fragment in c.fragments() {
                events.append(chunk("{\"tool_calls\":[{\"index\":\(i),\"function\":{\"arguments\":\(q(fragment))}}]}"))
            }
        }
        events.append(chunk("{}", finish: "tool_calls"))
        if includeUsage { events.append(openAIChatUsageChunk(o)) }
        events.append("data: [DONE]\n\n")
        return MockStream(head: events, tokens: 0, tail: []) { _ in "" }
    }

    // MARK: Anthropic messages

    static func anthropicToolUse(_ o: Output, calls: [MockToolCall], text: String?) -> String {
        var blocks: [String] = []
        if let text { blocks.append("{\"type\":\"text\",\"text\":\(q(text))}") }
        for c in calls {
            blocks.append("{\"type\":\"tool_use\",\"id\":\(q(c.id)),\"name\":\(q(c.name)),\"input\":\(c.arguments)}")
        }
        return """
            {"id":\(q(o.id)),"type":"message","role":"assistant","model":\(q(o.model)),\
            "content":[\(blocks.joined(separator: ","))],\
            "stop_reason":"tool_use","stop_sequence":null,"usage":\(anthropicUsage(o, output: o.outputTokens))}
            """
    }

    /// `message_start`; the optional text block (one `text_delta` per word); per call a `tool_use`
    /// block: `content_block_start` with `input: {}`, an empty `input_json_delta`, the arguments in
    /// fragments of about 8 characters, `content_block_stop`. A `ping` follows the first block's
    /// start. Then `message_delta` (`stop_reason: tool_use`) and `message_stop`.
    static func anthropicToolStream(_ o: Output, calls: [MockToolCall], text: String?) -> MockStream {
        func event(_ name: String, _ data: String) -> String { "event: \(name)\ndata: \(data)\n\n" }
        var events = [
            event("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\(q(o.id)),\"type\":\"message\",\"role\":\"assistant\","
                + "\"model\":\(q(o.model)),\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":\(anthropicUsage(o, output: 1))}}"),
        ]
        var index = 0
        if let text {
            events.append(event("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"))
            events.append(event("ping", "{\"type\":\"ping\"}"))
            // One word per delta, followed by a space except the last, as the text streams send it.
            let words = text.split(separator: " ")
            for (w, word) in words.enumerated() {
                let piece = w < words.count - 1 ? word + " " : String(word)
                events.append(event("content_block_delta",
                                    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\(q(piece))}}"))
            }
            events.append(event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"))
            index = 1
        }
        for c in calls {
            events.append(event("content_block_start", "{\"type\":\"content_block_start\",\"index\":\(index),"
                + "\"content_block\":{\"type\":\"tool_use\",\"id\":\(q(c.id)),\"name\":\(q(c.name)),\"input\":{}}}"))
            if index == 0 { events.append(event("ping", "{\"type\":\"ping\"}")) }
            for fragment in [""] + c.fragments() {
                events.append(event("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":\(index),"
                    + "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\(q(fragment))}}"))
            }
            events.append(event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":\(index)}"))
            index += 1
        }
        events.append(event("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
            + "\"usage\":{\"output_tokens\":\(o.outputTokens)}}"))
        events.append(event("message_stop", "{\"type\":\"message_stop\"}"))
        return MockStream(head: events, tokens: 0, tail: []) { _ in "" }
    }

    // MARK: Google AI Studio

    static func googleFunctionCallPart(_ c: MockToolCall) -> String {
        "{\"functionCall\":{\"name\":\(q(c.name)),\"args\":\(c.arguments)}}"
    }

    static func googleToolCalls(_ o: Output, calls: [MockToolCall]) -> String {
        googleChunk(o, parts: "[" + calls.map(googleFunctionCallPart).joined(separator: ",") + "]", produced: o.outputTokens, finished: true)
    }

    /// One chunk per call, each with one whole `functionCall` part (Google never splits a call's
    /// arguments); cumulative `usageMetadata`, `finishReason: STOP` on the last chunk. Framed as
    /// `googleStream` frames text.
    static func googleToolStream(_ o: Output, calls: [MockToolCall], sse: Bool) -> MockStream {
        var produced = 0
        var events: [String] = []
        for (i, c) in calls.enumerated() {
            produced += c.tokens
            let chunk = googleChunk(o, parts: "[\(googleFunctionCallPart(c))]", produced: produced, finished: i == calls.count - 1)
            events.append(sse ? "data: \(chunk)\r\n\r\n" : (i == 0 ? "[" : "\n,\r\n") + chunk)
        }
        if !sse { events.append("\n]") }
        return MockStream(head: events, tokens: 0, tail: []) { _ in "" }
    }
}
