import GateMeshAccounting
import GateMeshCore

/// An Anthropic Messages client (`POST /v1/messages`) in front of an OpenAI-format provider: the
/// request translated to a chat completion, the answer (whole or streamed) back to a Message.
public enum AnthropicToOpenAI {
    static let unsupported = ["top_k", "thinking", "container", "mcp_servers", "service_tier"]

    /// `streamUsage`: the provider takes `stream_options.include_usage` (OpenAI, Groq, xAI, …).
    /// `maxCompletionTokens`: send the limit as `max_completion_tokens` (OpenAI itself, whose
    /// reasoning models refuse `max_tokens`) rather than `max_tokens` (other OpenAI-format servers).
    public static func request(_ body: JSONValue, model: String, provider: String, options: TranslationOptions,
                               streamUsage: Bool = true, maxCompletionTokens: Bool = false) throws(TranslationError) -> JSONValue {
        guard case .object(let req) = body else { throw TranslationError("the request body must be a JSON object") }
        for p in unsupported where !RequestFields.isNoOp(req[p]) && !options.dropUnsupported {
            throw .unsupported(p, provider: provider)
        }
        var out = JSONObject()
        out["model"] = .string(model)
        var messages: [JSONValue] = []
        switch req["system"] {
        case .string(let s)?: messages.append(.object(["role": "system", "content": .string(s)]))
        case .array(let blocks)?:
            let text = blocks.compactMap { $0["text"]?.stringValue }.joined(separator: "\n\n")
            messages.append(.object(["role": "system", "content": .string(text)]))
        default: break
        }
        guard let list = try RequestFields.array(req["messages"], "messages"), !list.isEmpty else {
            throw TranslationError("'messages' must be a non-empty array", param: "messages")
        }
        for (i, m) in list.enumerated() {
            let field = "messages[\(i)]"
            let role = m["role"]?.stringValue
            let blocks: [JSONValue]
            switch m["content"] {
            case .string(let s)?: blocks = [.object(["type": "text", "text": .string(s)])]
            case .array(let a)?: blocks = a
            default: throw TranslationError("'\(field).content' must be a string or an array of blocks", param: "\(field).content")
            }
            if role == "user" {
                var parts: [JSONValue] = []
                for (j, b) in blocks.enumerated() {
                    let bf = "\(field).content[\(j)]"
                    switch b["type"]?.stringValue {
                    case "text": parts.append(.object(["type": "text", "text": b["text"] ?? ""]))
                    case "image":
                        let source = b["source"]
                        let url: String
                        switch source?["type"]?.stringValue {
                        case "base64": url = "data:\(source?["media_type"]?.stringValue ?? "image/png");base64,\(source?["data"]?.stringValue ?? "")"
                        case "url": url = source?["url"]?.stringValue ?? ""
                        default: throw .cannotTranslate("\(bf).source.type", provider: provider)
                        }
                        parts.append(.object(["type": "image_url", "image_url": .object(["url": .string(url)])]))
                    case "tool_result":
                        var text = ""
                        switch b["content"] {
                        case .string(let s)?: text = s
                        case .array(let a)?: text = a.compactMap { $0["text"]?.stringValue }.joined()
                        default: break
                        }
                        if b["is_error"]?.boolValue == true { text = "Error: " + text }
                        // Tool results come before the rest of the turn, as OpenAI expects them right after the call.
                        messages.append(.object(["role": "tool", "tool_call_id": b["tool_use_id"] ?? "", "content": .string(text)]))
                    default:
                        throw .cannotTranslate("\(bf).type: \(b["type"]?.stringValue ?? "none")", provider: provider)
                    }
                }
                if !parts.isEmpty {
                    let allText = parts.allSatisfy { $0["type"]?.stringValue == "text" }
                    messages.append(.object(["role": "user", "content": allText
                        ? .string(parts.compactMap { $0["text"]?.stringValue }.joined(separator: "\n")) : .array(parts)]))
                }
            } else if role == "assistant" {
                var text = "", calls: [JSONValue] = []
                for b in blocks {
                    switch b["type"]?.stringValue {
                    case "text": text += b["text"]?.stringValue ?? ""
                    case "tool_use":
                        calls.append(.object(["id": b["id"] ?? "", "type": "function",
                                              "function": .object(["name": b["name"] ?? "", "arguments": .string((b["input"] ?? .object([:])).text)])]))
                    default: break  // thinking blocks stay with Anthropic
                    }
                }
                var msg: JSONObject = ["role": "assistant", "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
                if !calls.isEmpty { msg["tool_calls"] = .array(calls) }
                messages.append(.object(msg))
            } else {
                throw TranslationError("'\(field).role' must be user or assistant", param: "\(field).role")
            }
        }
        out["messages"] = .array(messages)
        if let n = req["max_tokens"], !n.isNull { out[maxCompletionTokens ? "max_completion_tokens" : "max_tokens"] = n }
        if let t = req["temperature"], !t.isNull { out["temperature"] = t }
        if let p = req["top_p"], !p.isNull { out["top_p"] = p }
        if let s = req["stop_sequences"]?.arrayValue, !s.isEmpty { out["stop"] = .array(s) }
        if let tools = req["tools"]?.arrayValue {
            out["tools"] = .array(try tools.enumerated().map { i, t throws(TranslationError) -> JSONValue in
                guard let name = t["name"]?.stringValue else { throw TranslationError("'tools[\(i)].name' is required", param: "tools[\(i)]") }
                if let type = t["type"]?.stringValue, type != "custom" { throw .cannotTranslate("tools[\(i)].type: \(type)", provider: provider) }
                var f: JSONObject = ["name": .string(name)]
                if let d = t["description"], !d.isNull { f["description"] = d }
                f["parameters"] = t["input_schema"] ?? .object(["type": "object"])
                return .object(["type": "function", "function": .object(f)])
            })
        }
        if let choice = req["tool_choice"] {
            switch choice["type"]?.stringValue {
            case "auto": out["tool_choice"] = "auto"
            case "any": out["tool_choice"] = "required"
            case "none": out["tool_choice"] = "none"
            case "tool": out["tool_choice"] = .object(["type": "function", "function": .object(["name": choice["name"] ?? ""])])
            default: throw TranslationError("'tool_choice.type' must be auto, any, tool or none", param: "tool_choice")
            }
            if choice["disable_parallel_tool_use"]?.boolValue == true { out["parallel_tool_calls"] = .bool(false) }
        }
        if let user = req["metadata"]?["user_id"]?.stringValue { out["user"] = .string(user) }
        if req["stream"]?.boolValue == true {
            out["stream"] = .bool(true)
            if streamUsage { out["stream_options"] = .object(["include_usage": .bool(true)]) }
        }
        return .object(out)
    }

    static func stopReason(_ finish: String?) -> JSONValue {
        switch finish {
        case "length"?: return "max_tokens"
        case "tool_calls"?, "function_call"?: return "tool_use"
        case "content_filter"?: return "refusal"
        case nil: return .null
        default: return "end_turn"
        }
    }

    static func usage(_ u: JSONValue?) -> JSONObject {
        let prompt = u?["prompt_tokens"]?.intValue ?? 0, cached = u?["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0
        return ["input_tokens": .int(prompt - cached), "output_tokens": .int(u?["completion_tokens"]?.intValue ?? 0),
                "cache_read_input_tokens": .int(cached), "cache_creation_input_tokens": 0]
    }

    public static func response(_ bytes: [UInt8], status: Int) -> [UInt8] {
        if status >= 400 { return ErrorShapes.anthropic(from: bytes, status: status) }
        guard let v = JSONValue.parse(bytes) else { return bytes }
        let choice = v["choices"]?[0]
        var content: [JSONValue] = []
        if let text = choice?["message"]?["content"]?.stringValue, !text.isEmpty { content.append(.object(["type": "text", "text": .string(text)])) }
        for call in choice?["message"]?["tool_calls"]?.arrayValue ?? [] {
            let args = call["function"]?["arguments"]?.stringValue ?? "{}"
            content.append(.object(["type": "tool_use", "id": call["id"] ?? .string(StreamOut.id("toolu_")), "name": call["function"]?["name"] ?? "",
                                    "input": JSONValue.parse(args.isEmpty ? "{}" : args) ?? .object([:])]))
        }
        let out: JSONObject = ["id": .string("msg_" + (v["id"]?.stringValue ?? StreamOut.id(""))), "type": "message", "role": "assistant",
                               "model": v["model"] ?? "", "content": .array(content),
                               "stop_reason": stopReason(choice?["finish_reason"]?.stringValue), "stop_sequence": .null,
                               "usage": .object(usage(v["usage"]))]
        return JSONValue.object(out).bytes
    }

    /// Chat-completion chunks as Messages server-sent events: a text block while text arrives, one
    /// tool_use block per tool call (arguments as input_json_delta), then message_delta and
    /// message_stop at the end of the stream.
    public struct Stream: ResponseTranslator {
        var scanner = SSEScanner(keepsRaw: false)
        var started = false
        var finished = false
        var nextBlock = 0
        /// The open block: its index, and the tool call index when it is a tool_use block.
        var open: (block: Int, tool: Int?)?
        var stop: JSONValue = .null
        var usage: JSONObject = ["input_tokens": 0, "output_tokens": 0]

        public init() {}

        public mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
            var scanner = self.scanner
            defer { self.scanner = scanner }
            return StreamOut.translate(bytes, &scanner) { translate($0) }
        }

        static func event(_ type: String, _ body: JSONObject) -> [UInt8] {
            var o: JSONObject = ["type": .string(type)]
            for (k, v) in body.pairs { o[k] = v }
            return StreamOut.sse(JSONValue.object(o).text, event: type)
        }

        mutating func start(_ v: JSONValue) -> [UInt8] {
            guard !started else { return [] }
            started = true
            let message: JSONObject = ["id": .string("msg_" + (v["id"]?.stringValue ?? StreamOut.id(""))), "type": "message", "role": "assistant",
                                       "model": v["model"] ?? "", "content": .array([]), "stop_reason": .null, "stop_sequence": .null,
                                       "usage": .object(["input_tokens": 0, "output_tokens": 0])]
            return Self.event("message_start", ["message": .object(message)])
        }

        mutating func close() -> [UInt8] {
            guard let o = open else { return [] }
            open = nil
            return Self.event("content_block_stop", ["index": .int(o.block)])
        }

        mutating func translate(_ e: SSEScanner.Event) -> [UInt8] {
            guard !finished else { return [] }
            if e.data == Array("[DONE]".utf8) { return end() }
            guard let v = JSONValue.parse(e.data) else { return [] }
            if let error = v["error"], !error.isNull {
                finished = true
                return Self.event("error", ["error": .object(["type": "api_error", "message": error["message"] ?? .string(error.text)])])
            }
            var out = start(v)
            if case .object(let u)? = v["usage"] { usage = AnthropicToOpenAI.usage(.object(u)) }
            guard let choice = v["choices"]?[0] else { return out }
            let delta = choice["delta"]
            if let text = delta?["content"]?.stringValue, !text.isEmpty {
                if open == nil || open?.tool != nil {
                    out += close()
                    open = (nextBlock, nil)
                    nextBlock += 1
                    out += Self.event("content_block_start", ["index": .int(open!.block), "content_block": .object(["type": "text", "text": ""])])
                }
                out += Self.event("content_block_delta", ["index": .int(open!.block), "delta": .object(["type": "text_delta", "text": .string(text)])])
            }
            for call in delta?["tool_calls"]?.arrayValue ?? [] {
                let index = call["index"]?.intValue ?? 0
                if open?.tool != index {
                    out += close()
                    open = (nextBlock, index)
                    nextBlock += 1
                    out += Self.event("content_block_start", ["index": .int(open!.block), "content_block": .object([
                        "type": "tool_use", "id": call["id"] ?? .string(StreamOut.id("toolu_")), "name": call["function"]?["name"] ?? "",
                        "input": .object([:]),
                    ])])
                }
                if let args = call["function"]?["arguments"]?.stringValue, !args.isEmpty {
                    out += Self.event("content_block_delta", ["index": .int(open!.block),
                                                              "delta": .object(["type": "input_json_delta", "partial_json": .string(args)])])
                }
            }
            if let f = choice["finish_reason"], !f.isNull { stop = AnthropicToOpenAI.stopReason(f.stringValue) }
            return out
        }

        mutating func end() -> [UInt8] {
            guard !finished else { return [] }
            finished = true
            var out = start(.object([:])) + close()
            out += Self.event("message_delta", ["delta": .object(["stop_reason": stop.isNull ? "end_turn" : stop, "stop_sequence": .null]),
                                                "usage": .object(usage)])
            out += Self.event("message_stop", [:])
            return out
        }

        public mutating func finish() -> [UInt8] {
            // Some OpenAI-compatible servers end without [DONE]: finish the message anyway.
            started ? end() : []
        }
    }
}
