import GateMeshAccounting
import GateMeshCore

/// An OpenAI chat-completions client in front of Anthropic's Messages API: the request
/// translated to a Messages request, the answer (whole or streamed) back to a chat completion.
/// Field by field in docs/unified-api.md; formats from platform.openai.com/docs/api-reference/chat
/// and docs.anthropic.com/en/api/messages (and /en/docs/build-with-claude/streaming).
public enum OpenAIToAnthropic {
    static let provider = "anthropic"

    /// Parameters with no Anthropic counterpart: refused (or dropped with `dropUnsupported`).
    static let unsupported = ["n", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty", "logit_bias", "seed",
                              "audio", "modalities", "prediction", "web_search_options"]

    public static func request(_ body: JSONValue, model: String, options: TranslationOptions) throws(TranslationError) -> JSONValue {
        guard case .object(let req) = body else { throw TranslationError("the request body must be a JSON object") }
        for p in unsupported where !RequestFields.isNoOp(req[p]) {
            // n: 1 asks for what Anthropic gives anyway.
            if p == "n", req[p]?.intValue == 1 { continue }
            if !options.dropUnsupported { throw .unsupported(p, provider: provider) }
        }
        var out = JSONObject()
        out["model"] = .string(model)
        var system: [JSONValue] = []
        var messages: [JSONObject] = []
        // Anthropic alternates roles: consecutive turns of one role become one.
        func append(role: String, _ blocks: [JSONValue]) { Turns.append(&messages, role: role, key: "content", blocks) }
        for (field, msg) in try RequestFields.messages(req) {
            let role = try RequestFields.string(msg["role"], "\(field).role") ?? ""
            switch role {
            case "system", "developer":
                for b in try textBlocks(msg["content"], "\(field).content") { system.append(b) }
            case "user":
                append(role: "user", try contentBlocks(msg["content"], "\(field).content"))
            case "assistant":
                var blocks = try textBlocks(msg["content"], "\(field).content", allowRefusal: true)
                for (j, call) in (try RequestFields.array(msg["tool_calls"], "\(field).tool_calls") ?? []).enumerated() {
                    let cf = "\(field).tool_calls[\(j)]"
                    guard let c = try RequestFields.object(call, cf), let f = try RequestFields.object(c["function"], "\(cf).function"),
                          let name = try RequestFields.string(f["name"], "\(cf).function.name") else {
                        throw TranslationError("'\(cf)' must have a function with a name", param: cf)
                    }
                    let args = try RequestFields.string(f["arguments"], "\(cf).function.arguments") ?? "{}"
                    guard let input = JSONValue.parse(args.isEmpty ? "{}" : args), case .object = input else {
                        throw TranslationError("'\(cf).function.arguments' must be a JSON object in a string", param: "\(cf).function.arguments")
                    }
                    blocks.append(.object(["type": "tool_use", "id": .string(try RequestFields.string(c["id"], "\(cf).id") ?? StreamOut.id("toolu_")),
                                           "name": .string(name), "input": input]))
                }
                append(role: "assistant", blocks)
            case "tool":
                guard let id = try RequestFields.string(msg["tool_call_id"], "\(field).tool_call_id") else {
                    throw TranslationError("'\(field).tool_call_id' is required", param: "\(field).tool_call_id")
                }
                var result: JSONObject = ["type": "tool_result", "tool_use_id": .string(id)]
                let content = try textBlocks(msg["content"], "\(field).content")
                if !content.isEmpty { result["content"] = .array(content) }
                append(role: "user", [.object(result)])
            case "function":
                throw .cannotTranslate("\(field).role: function", provider: provider, detail: "use tools and the tool role")
            default:
                throw TranslationError("'\(field).role' must be system, developer, user, assistant or tool, not '\(role)'", param: "\(field).role")
            }
        }
        guard !messages.isEmpty else { throw TranslationError("'messages' needs at least one user or assistant message", param: "messages") }
        if !system.isEmpty { out["system"] = .array(system) }
        out["messages"] = .array(messages.map { .object($0) })
        out["max_tokens"] = req["max_completion_tokens"].flatMap { $0.isNull ? nil : $0 } ?? req["max_tokens"].flatMap { $0.isNull ? nil : $0 }
            ?? .int(options.defaultMaxTokens)
        if let t = req["temperature"], !t.isNull {
            if let v = t.doubleValue, v > 1 {
                if !options.dropUnsupported { throw .unsupported("temperature", provider: provider, detail: "it accepts 0 to 1, not \(t.text)") }
                out["temperature"] = .int(1)
            } else {
                out["temperature"] = t
            }
        }
        if let p = req["top_p"], !p.isNull { out["top_p"] = p }
        switch req["stop"] {
        case .string(let s)?: out["stop_sequences"] = .array([.string(s)])
        case .array(let a)?: out["stop_sequences"] = .array(a)
        default: break
        }
        if let tools = try RequestFields.array(req["tools"], "tools") {
            out["tools"] = .array(try tools.enumerated().map { i, t throws(TranslationError) -> JSONValue in
                let field = "tools[\(i)]"
                guard let tool = try RequestFields.object(t, field), let f = try RequestFields.object(tool["function"], "\(field).function"),
                      let name = try RequestFields.string(f["name"], "\(field).function.name") else {
                    throw TranslationError("'\(field)' must be {type: function, function: {name, …}}", param: field)
                }
                if let type = tool["type"]?.stringValue, type != "function" { throw .cannotTranslate("\(field).type: \(type)", provider: provider) }
                var o: JSONObject = ["name": .string(name)]
                if let d = f["description"], !d.isNull { o["description"] = d }
                o["input_schema"] = f["parameters"].flatMap { $0.isNull ? nil : $0 } ?? .object(["type": "object", "properties": .object([:])])
                return .object(o)
            })
        }
        var choice: JSONObject?
        switch req["tool_choice"] {
        case .string("auto")?: choice = ["type": "auto"]
        case .string("required")?: choice = ["type": "any"]
        case .string("none")?: choice = ["type": "none"]
        case .object(let o)?:
            guard let name = o["function"]?["name"]?.stringValue else {
                throw TranslationError("'tool_choice' must name a function: {type: function, function: {name}}", param: "tool_choice")
            }
            choice = ["type": "tool", "name": .string(name)]
        case nil, .null?: break
        case let other?: throw TranslationError("'tool_choice' cannot be \(other.text)", param: "tool_choice")
        }
        if req["parallel_tool_calls"]?.boolValue == false, req["tools"] != nil {
            if choice == nil { choice = ["type": "auto"] }
            choice!["disable_parallel_tool_use"] = .bool(true)
        }
        if let choice { out["tool_choice"] = .object(choice) }
        // JSON mode: Anthropic has none, but a forced tool whose input is the schema gives exactly
        // a JSON object of that schema; its input is returned as the message content.
        if let format = try jsonSchema(req) {
            if req["tools"] != nil && !(req["tools"]!.isNull) {
                throw TranslationError("'response_format' with 'tools' cannot be sent to \(provider): JSON mode uses a tool of its own",
                                       param: "response_format", code: "unsupported_parameter")
            }
            out["tools"] = .array([.object(["name": .string(jsonTool), "description": "Respond with the JSON object the user asked for.",
                                            "input_schema": format])])
            out["tool_choice"] = .object(["type": "tool", "name": .string(jsonTool)])
        }
        if let user = req["user"]?.stringValue { out["metadata"] = .object(["user_id": .string(user)]) }
        if req["stream"]?.boolValue == true { out["stream"] = .bool(true) }
        return .object(out)
    }

    /// The name of the tool that carries JSON mode.
    public static let jsonTool = "json_output"

    /// The schema a JSON-mode request asks for (`json_object`: any object), nil without JSON mode.
    public static func jsonSchema(_ req: JSONObject) throws(TranslationError) -> JSONValue? {
        switch req["response_format"]?["type"]?.stringValue {
        case nil, "text"?: return nil
        case "json_object"?: return .object(["type": "object"])
        case "json_schema"?:
            guard let schema = req["response_format"]?["json_schema"]?["schema"], case .object = schema else {
                throw TranslationError("'response_format.json_schema.schema' must be an object", param: "response_format.json_schema.schema")
            }
            return schema
        case let other?: throw TranslationError("'response_format.type' must be text, json_object or json_schema, not '\(other)'",
                                                param: "response_format.type")
        }
    }

    static func textBlocks(_ v: JSONValue?, _ field: String, allowRefusal: Bool = false) throws(TranslationError) -> [JSONValue] {
        switch v {
        case nil, .null?: return []
        case .string(let s)?: return s.isEmpty ? [] : [.object(["type": "text", "text": .string(s)])]
        case .array(let parts)?:
            var out: [JSONValue] = []
            for (i, p) in parts.enumerated() {
                let type = p["type"]?.stringValue
                if type == "text", let t = p["text"]?.stringValue {
                    out.append(.object(["type": "text", "text": .string(t)]))
                } else if allowRefusal, type == "refusal", let t = p["refusal"]?.stringValue {
                    out.append(.object(["type": "text", "text": .string(t)]))
                } else {
                    throw TranslationError("'\(field)[\(i)]' must be a text part here", param: "\(field)[\(i)]")
                }
            }
            return out
        case let other?: throw TranslationError("'\(field)' must be a string or an array of parts, not \(other.typeName)", param: field)
        }
    }

    static func contentBlocks(_ v: JSONValue?, _ field: String) throws(TranslationError) -> [JSONValue] {
        guard case .array(let parts)? = v else { return try textBlocks(v, field) }
        var out: [JSONValue] = []
        for (i, p) in parts.enumerated() {
            let pf = "\(field)[\(i)]"
            switch p["type"]?.stringValue {
            case "text":
                guard let t = p["text"]?.stringValue else { throw TranslationError("'\(pf).text' must be a string", param: pf) }
                out.append(.object(["type": "text", "text": .string(t)]))
            case "image_url":
                guard let url = p["image_url"]?["url"]?.stringValue ?? p["image_url"]?.stringValue else {
                    throw TranslationError("'\(pf).image_url.url' must be a string", param: pf)
                }
                if let d = Turns.dataURL(url) {
                    out.append(.object(["type": "image", "source": .object(["type": "base64", "media_type": .string(d.mediaType), "data": .string(d.data)])]))
                } else {
                    out.append(.object(["type": "image", "source": .object(["type": "url", "url": .string(url)])]))
                }
            case let type:
                throw .cannotTranslate("\(pf).type: \(type ?? "none")", provider: provider)
            }
        }
        return out
    }

    // MARK: - Responses

    static func finishReason(_ stop: String?) -> JSONValue {
        switch stop {
        case "max_tokens"?: return "length"
        case "tool_use"?: return "tool_calls"
        case "refusal"?: return "content_filter"
        case nil: return .null
        default: return "stop"  // end_turn, stop_sequence, pause_turn
        }
    }

    static func usage(_ u: JSONValue?) -> JSONValue {
        let input = u?["input_tokens"]?.intValue ?? 0, output = u?["output_tokens"]?.intValue ?? 0
        let read = u?["cache_read_input_tokens"]?.intValue ?? 0, written = u?["cache_creation_input_tokens"]?.intValue ?? 0
        let prompt = input + read + written
        return .object(["prompt_tokens": .int(prompt), "completion_tokens": .int(output), "total_tokens": .int(prompt + output),
                        "prompt_tokens_details": .object(["cached_tokens": .int(read)])])
    }

    /// A whole Messages answer as a chat completion; an error body as an OpenAI error. In JSON
    /// mode the JSON tool's input is the content.
    public static func response(_ bytes: [UInt8], status: Int, created: Int, jsonMode: Bool = false) -> [UInt8] {
        guard let v = JSONValue.parse(bytes) else { return bytes }
        if status >= 400 { return ErrorShapes.openAI(fromAnthropic: v, status: status) }
        var text = "", calls: [JSONValue] = []
        for block in v["content"]?.arrayValue ?? [] {
            switch block["type"]?.stringValue {
            case "text": if !jsonMode { text += block["text"]?.stringValue ?? "" }
            case "tool_use" where jsonMode && block["name"]?.stringValue == jsonTool:
                text += (block["input"] ?? .object([:])).text
            case "tool_use":
                calls.append(.object(["id": block["id"] ?? .string(StreamOut.id("call_")), "type": "function",
                                      "function": .object(["name": block["name"] ?? "", "arguments": .string((block["input"] ?? .object([:])).text)])]))
            default: break  // thinking and other blocks have no place in a chat completion
            }
        }
        var message: JSONObject = ["role": "assistant", "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
        if !calls.isEmpty { message["tool_calls"] = .array(calls) }
        let out: JSONObject = [
            "id": .string("chatcmpl-" + (v["id"]?.stringValue ?? StreamOut.id(""))), "object": "chat.completion", "created": .int(created),
            "model": v["model"] ?? "", "choices": .array([.object(["index": 0, "message": .object(message), "logprobs": .null,
                                                                   "finish_reason": jsonMode && v["stop_reason"]?.stringValue == "tool_use"
                                                                       ? "stop" : finishReason(v["stop_reason"]?.stringValue)])]),
            "usage": usage(v["usage"]),
        ]
        return JSONValue.object(out).bytes
    }

    /// Messages server-sent events as chat-completion chunks, event by event.
    public struct Stream: ResponseTranslator {
        var scanner = SSEScanner(keepsRaw: false)
        let includeUsage: Bool
        let created: Int
        var id = "chatcmpl-" + StreamOut.id("")
        var model: JSONValue = ""
        var usage: JSONObject = [:]
        /// Content block index → tool call index, for tool_use blocks.
        var tools: [Int: Int] = [:]
        var finishValue: JSONValue = .null
        var done = false
        /// JSON mode: the JSON tool's input fragments are the content (other text is left out).
        let jsonMode: Bool
        var jsonBlock: Int?

        public init(includeUsage: Bool, created: Int, jsonMode: Bool = false) {
            self.includeUsage = includeUsage
            self.created = created
            self.jsonMode = jsonMode
        }

        func chunk(_ delta: JSONObject, finish: JSONValue = .null) -> [UInt8] {
            let c: JSONObject = ["id": .string(id), "object": "chat.completion.chunk", "created": .int(created), "model": model,
                                 "choices": .array([.object(["index": 0, "delta": .object(delta), "logprobs": .null, "finish_reason": finish])])]
            return StreamOut.sse(JSONValue.object(c).text)
        }

        public mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
            var scanner = self.scanner
            defer { self.scanner = scanner }
            return StreamOut.translate(bytes, &scanner) { translate($0) }
        }

        mutating func translate(_ e: SSEScanner.Event) -> [UInt8] {
            guard !done, let v = JSONValue.parse(e.data) else { return [] }
            switch v["type"]?.stringValue {
            case "message_start":
                if let m = v["message"] {
                    if let mid = m["id"]?.stringValue { id = "chatcmpl-" + mid }
                    model = m["model"] ?? model
                    if case .object(let u)? = m["usage"] { usage = u }
                }
                return chunk(["role": "assistant", "content": ""])
            case "content_block_start":
                guard let index = v["index"]?.intValue, let block = v["content_block"] else { return [] }
                switch block["type"]?.stringValue {
                case "tool_use" where jsonMode && block["name"]?.stringValue == OpenAIToAnthropic.jsonTool:
                    jsonBlock = index
                    return []
                case "text" where jsonMode:
                    return []
                case "tool_use":
                    let n = tools.count
                    tools[index] = n
                    return chunk(["tool_calls": .array([.object(["index": .int(n), "id": block["id"] ?? .string(StreamOut.id("call_")), "type": "function",
                                                                  "function": .object(["name": block["name"] ?? "", "arguments": ""])])])])
                case "text":
                    let t = block["text"]?.stringValue ?? ""
                    return t.isEmpty ? [] : chunk(["content": .string(t)])
                default: return []
                }
            case "content_block_delta":
                guard let d = v["delta"] else { return [] }
                switch d["type"]?.stringValue {
                case "text_delta": return jsonMode ? [] : chunk(["content": d["text"] ?? ""])
                case "input_json_delta" where jsonBlock != nil && v["index"]?.intValue == jsonBlock:
                    let fragment = d["partial_json"]?.stringValue ?? ""
                    return fragment.isEmpty ? [] : chunk(["content": .string(fragment)])
                case "input_json_delta":
                    guard let index = v["index"]?.intValue, let n = tools[index] else { return [] }
                    return chunk(["tool_calls": .array([.object(["index": .int(n), "function": .object(["arguments": d["partial_json"] ?? ""])])])])
                default: return []  // thinking, signatures, citations
                }
            case "message_delta":
                if let stop = v["delta"]?["stop_reason"], !stop.isNull {
                    finishValue = jsonMode && stop.stringValue == "tool_use" ? "stop" : OpenAIToAnthropic.finishReason(stop.stringValue)
                }
                if case .object(let u)? = v["usage"] { for (k, x) in u.pairs { usage[k] = x } }
                return []
            case "message_stop":
                done = true
                var out = chunk([:], finish: finishValue.isNull ? "stop" : finishValue)
                if includeUsage {
                    let c: JSONObject = ["id": .string(id), "object": "chat.completion.chunk", "created": .int(created), "model": model,
                                         "choices": .array([]), "usage": OpenAIToAnthropic.usage(.object(usage))]
                    out += StreamOut.sse(JSONValue.object(c).text)
                }
                return out + StreamOut.sse("[DONE]")
            case "error":
                done = true
                return StreamOut.sse(JSONValue.parse(ErrorShapes.openAI(fromAnthropic: v, status: 500)).map(\.text) ?? "{}")
            default:
                return []  // ping
            }
        }

        public mutating func finish() -> [UInt8] {
            // A stream cut before message_stop ends without [DONE]: the client sees it was cut.
            []
        }
    }
}
