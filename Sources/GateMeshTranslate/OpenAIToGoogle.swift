import GateMeshAccounting
import GateMeshCore

/// An OpenAI chat-completions client in front of Google AI Studio's generateContent: the request
/// translated to a GenerateContentRequest, the answer (whole, or streamed with `alt=sse`) back to a
/// chat completion. Format from ai.google.dev/api/generate-content and ai.google.dev/api/caching
/// (Content, Part, FunctionCall, FunctionResponse, GenerationConfig, UsageMetadata).
public enum OpenAIToGoogle {
    static let provider = "google-ai-studio"
    static let unsupported = ["logit_bias", "logprobs", "top_logprobs", "audio", "modalities", "prediction", "web_search_options"]

    public static func request(_ body: JSONValue, options: TranslationOptions) throws(TranslationError) -> JSONValue {
        guard case .object(let req) = body else { throw TranslationError("the request body must be a JSON object") }
        for p in unsupported where !RequestFields.isNoOp(req[p]) && !options.dropUnsupported {
            throw .unsupported(p, provider: provider)
        }
        var out = JSONObject()
        var system: [JSONValue] = []
        var contents: [JSONObject] = []
        /// Tool call id → function name, to name function responses (Google matches them by name).
        var names: [String: String] = [:]
        func append(role: String, _ parts: [JSONValue]) { Turns.append(&contents, role: role, key: "parts", parts) }
        for (field, msg) in try RequestFields.messages(req) {
            switch try RequestFields.string(msg["role"], "\(field).role") ?? "" {
            case "system", "developer":
                for b in try OpenAIToAnthropic.textBlocks(msg["content"], "\(field).content") { system.append(.object(["text": b["text"] ?? ""])) }
            case "user":
                append(role: "user", try parts(msg["content"], "\(field).content", options: options))
            case "assistant":
                var ps = try OpenAIToAnthropic.textBlocks(msg["content"], "\(field).content", allowRefusal: true).map { JSONValue.object(["text": $0["text"] ?? ""]) }
                for (j, call) in (try RequestFields.array(msg["tool_calls"], "\(field).tool_calls") ?? []).enumerated() {
                    let cf = "\(field).tool_calls[\(j)]"
                    guard let name = call["function"]?["name"]?.stringValue else { throw TranslationError("'\(cf).function.name' is required", param: cf) }
                    let args = call["function"]?["arguments"]?.stringValue ?? "{}"
                    guard let input = JSONValue.parse(args.isEmpty ? "{}" : args), case .object = input else {
                        throw TranslationError("'\(cf).function.arguments' must be a JSON object in a string", param: "\(cf).function.arguments")
                    }
                    if let id = call["id"]?.stringValue { names[id] = name }
                    ps.append(.object(["functionCall": .object(["name": .string(name), "args": input])]))
                }
                append(role: "model", ps)
            case "tool":
                guard let id = try RequestFields.string(msg["tool_call_id"], "\(field).tool_call_id") else {
                    throw TranslationError("'\(field).tool_call_id' is required", param: "\(field).tool_call_id")
                }
                guard let name = names[id] else {
                    throw TranslationError("'\(field).tool_call_id' \(id) answers no earlier assistant tool call", param: "\(field).tool_call_id")
                }
                let text = try OpenAIToAnthropic.textBlocks(msg["content"], "\(field).content").compactMap { $0["text"]?.stringValue }.joined()
                // Google wants an object: a JSON object result as it is, anything else under "content".
                let response: JSONValue
                if let parsed = JSONValue.parse(text), case .object = parsed { response = parsed } else { response = .object(["content": .string(text)]) }
                append(role: "user", [.object(["functionResponse": .object(["name": .string(name), "response": response])])])
            case let role:
                throw TranslationError("'\(field).role' must be system, developer, user, assistant or tool, not '\(role)'", param: "\(field).role")
            }
        }
        guard !contents.isEmpty else { throw TranslationError("'messages' needs at least one user or assistant message", param: "messages") }
        out["contents"] = .array(contents.map { .object($0) })
        if !system.isEmpty { out["systemInstruction"] = .object(["parts": .array(system)]) }
        if let tools = try RequestFields.array(req["tools"], "tools") {
            let declarations = try tools.enumerated().map { i, t throws(TranslationError) -> JSONValue in
                guard let f = t["function"], let name = f["name"]?.stringValue else {
                    throw TranslationError("'tools[\(i)]' must be {type: function, function: {name, …}}", param: "tools[\(i)]")
                }
                var d: JSONObject = ["name": .string(name)]
                if let desc = f["description"], !desc.isNull { d["description"] = desc }
                if let p = f["parameters"], !p.isNull { d["parameters"] = p }
                return .object(d)
            }
            out["tools"] = .array([.object(["functionDeclarations": .array(declarations)])])
        }
        switch req["tool_choice"] {
        case .string("auto")?: out["toolConfig"] = .object(["functionCallingConfig": .object(["mode": "AUTO"])])
        case .string("required")?: out["toolConfig"] = .object(["functionCallingConfig": .object(["mode": "ANY"])])
        case .string("none")?: out["toolConfig"] = .object(["functionCallingConfig": .object(["mode": "NONE"])])
        case .object(let o)?:
            guard let name = o["function"]?["name"]?.stringValue else {
                throw TranslationError("'tool_choice' must name a function: {type: function, function: {name}}", param: "tool_choice")
            }
            out["toolConfig"] = .object(["functionCallingConfig": .object(["mode": "ANY", "allowedFunctionNames": .array([.string(name)])])])
        case nil, .null?: break
        case let other?: throw TranslationError("'tool_choice' cannot be \(other.text)", param: "tool_choice")
        }
        var config = JSONObject()
        if let n = [req["max_completion_tokens"], req["max_tokens"]].compactMap({ $0 }).first(where: { !$0.isNull }) {
            config["maxOutputTokens"] = n
        }
        if let t = req["temperature"], !t.isNull { config["temperature"] = t }
        if let p = req["top_p"], !p.isNull { config["topP"] = p }
        if let n = req["n"], !n.isNull { config["candidateCount"] = n }
        if let s = req["seed"], !s.isNull { config["seed"] = s }
        if let p = req["presence_penalty"], !p.isNull { config["presencePenalty"] = p }
        if let f = req["frequency_penalty"], !f.isNull { config["frequencyPenalty"] = f }
        switch req["stop"] {
        case .string(let s)?: config["stopSequences"] = .array([.string(s)])
        case .array(let a)?: config["stopSequences"] = .array(a)
        default: break
        }
        switch req["response_format"]?["type"]?.stringValue {
        case "json_object"?: config["responseMimeType"] = "application/json"
        case "json_schema"?:
            config["responseMimeType"] = "application/json"
            if let schema = req["response_format"]?["json_schema"]?["schema"] { config["responseSchema"] = schema }
        default: break
        }
        if !config.isEmpty { out["generationConfig"] = .object(config) }
        return .object(out)
    }

    static func parts(_ v: JSONValue?, _ field: String, options: TranslationOptions) throws(TranslationError) -> [JSONValue] {
        guard case .array(let items)? = v else {
            return try OpenAIToAnthropic.textBlocks(v, field).map { .object(["text": $0["text"] ?? ""]) }
        }
        var out: [JSONValue] = []
        for (i, p) in items.enumerated() {
            let pf = "\(field)[\(i)]"
            switch p["type"]?.stringValue {
            case "text": out.append(.object(["text": p["text"] ?? ""]))
            case "image_url":
                let url = p["image_url"]?["url"]?.stringValue ?? ""
                if let d = Turns.dataURL(url) {
                    out.append(.object(["inlineData": .object(["mimeType": .string(d.mediaType), "data": .string(d.data)])]))
                } else if !options.dropUnsupported {
                    throw .unsupported("\(pf).image_url (a URL)", provider: provider, detail: "send the image as a base64 data: URL")
                }
            case let type:
                throw .cannotTranslate("\(pf).type: \(type ?? "none")", provider: provider)
            }
        }
        return out
    }

    // MARK: - Responses

    static func finishReason(_ reason: String?, calledTools: Bool) -> JSONValue {
        switch reason {
        case nil: return .null
        case "MAX_TOKENS"?: return "length"
        case "SAFETY"?, "RECITATION"?, "BLOCKLIST"?, "PROHIBITED_CONTENT"?, "SPII"?, "IMAGE_SAFETY"?: return "content_filter"
        default: return calledTools ? "tool_calls" : "stop"
        }
    }

    static func usage(_ u: JSONValue?) -> JSONValue {
        let prompt = u?["promptTokenCount"]?.intValue ?? 0
        let thoughts = u?["thoughtsTokenCount"]?.intValue ?? 0
        let output = (u?["candidatesTokenCount"]?.intValue ?? 0) + thoughts
        return .object(["prompt_tokens": .int(prompt), "completion_tokens": .int(output), "total_tokens": .int(prompt + output),
                        "prompt_tokens_details": .object(["cached_tokens": .int(u?["cachedContentTokenCount"]?.intValue ?? 0)]),
                        "completion_tokens_details": .object(["reasoning_tokens": .int(thoughts)])])
    }

    /// A candidate's parts as message fields: text (thought parts left out) and tool calls.
    static func message(_ parts: [JSONValue], callIndex: inout Int) -> (text: String, calls: [JSONValue]) {
        var text = "", calls: [JSONValue] = []
        for p in parts {
            if p["thought"]?.boolValue == true { continue }
            if let t = p["text"]?.stringValue { text += t }
            if let call = p["functionCall"] {
                calls.append(.object(["index": .int(callIndex), "id": call["id"] ?? .string(StreamOut.id("call_")), "type": "function",
                                      "function": .object(["name": call["name"] ?? "", "arguments": .string((call["args"] ?? .object([:])).text)])]))
                callIndex += 1
            }
        }
        return (text, calls)
    }

    public static func response(_ bytes: [UInt8], status: Int, model: String, created: Int) -> [UInt8] {
        if status >= 400 { return ErrorShapes.openAI(fromGoogle: bytes, status: status) }
        guard let v = JSONValue.parse(bytes) else { return bytes }
        var choices: [JSONValue] = []
        for (i, c) in (v["candidates"]?.arrayValue ?? []).enumerated() {
            var index = 0
            let (text, calls) = message(c["content"]?["parts"]?.arrayValue ?? [], callIndex: &index)
            var msg: JSONObject = ["role": "assistant", "content": text.isEmpty && !calls.isEmpty ? .null : .string(text)]
            if !calls.isEmpty {
                msg["tool_calls"] = .array(calls.map { call in
                    guard case .object(var o) = call else { return call }
                    o["index"] = nil
                    return .object(o)
                })
            }
            choices.append(.object(["index": c["index"] ?? .int(i), "message": .object(msg), "logprobs": .null,
                                    "finish_reason": finishReason(c["finishReason"]?.stringValue, calledTools: !calls.isEmpty)]))
        }
        let out: JSONObject = ["id": .string("chatcmpl-" + (v["responseId"]?.stringValue ?? StreamOut.id(""))), "object": "chat.completion",
                               "created": .int(created), "model": v["modelVersion"] ?? .string(model), "choices": .array(choices),
                               "usage": usage(v["usageMetadata"])]
        return JSONValue.object(out).bytes
    }

    /// streamGenerateContent (`alt=sse`) events as chat-completion chunks. Google sends whole
    /// function calls in one event: each becomes one chunk with its name and all its arguments.
    public struct Stream: ResponseTranslator {
        var scanner = SSEScanner(keepsRaw: false)
        let includeUsage: Bool
        let created: Int
        let model: String
        var id = "chatcmpl-" + StreamOut.id("")
        var started = false
        var done = false
        var calls: [Int: Int] = [:]  // candidate → tool calls so far
        var finishes: [Int: JSONValue] = [:]
        var usage: JSONValue?
        var servedModel: JSONValue?

        public init(includeUsage: Bool, model: String, created: Int) {
            self.includeUsage = includeUsage
            self.model = model
            self.created = created
        }

        func chunk(_ choices: [JSONValue], usage: JSONValue? = nil) -> [UInt8] {
            var c: JSONObject = ["id": .string(id), "object": "chat.completion.chunk", "created": .int(created),
                                 "model": servedModel ?? .string(model), "choices": .array(choices)]
            if let usage { c["usage"] = usage }
            return StreamOut.sse(JSONValue.object(c).text)
        }

        public mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
            var scanner = self.scanner
            defer { self.scanner = scanner }
            return StreamOut.translate(bytes, &scanner) { translate($0) }
        }

        mutating func translate(_ e: SSEScanner.Event) -> [UInt8] {
            guard !done, let v = JSONValue.parse(e.data) else { return [] }
            if v["error"] != nil {
                done = true
                return StreamOut.sse(JSONValue.parse(ErrorShapes.openAI(fromGoogle: e.data, status: 500))?.text ?? "{}")
            }
            if let rid = v["responseId"]?.stringValue, !started { id = "chatcmpl-" + rid }
            if let m = v["modelVersion"] { servedModel = m }
            if let u = v["usageMetadata"] { usage = u }
            var out: [UInt8] = []
            if !started {
                started = true
                out += chunk([.object(["index": 0, "delta": .object(["role": "assistant", "content": ""]), "logprobs": .null, "finish_reason": .null])])
            }
            for (i, c) in (v["candidates"]?.arrayValue ?? []).enumerated() {
                let index = c["index"]?.intValue ?? i
                var n = calls[index] ?? 0
                let (text, toolCalls) = OpenAIToGoogle.message(c["content"]?["parts"]?.arrayValue ?? [], callIndex: &n)
                calls[index] = n
                var delta = JSONObject()
                if !text.isEmpty { delta["content"] = .string(text) }
                if !toolCalls.isEmpty { delta["tool_calls"] = .array(toolCalls) }
                if !delta.isEmpty {
                    out += chunk([.object(["index": .int(index), "delta": .object(delta), "logprobs": .null, "finish_reason": .null])])
                }
                if let reason = c["finishReason"]?.stringValue {
                    finishes[index] = OpenAIToGoogle.finishReason(reason, calledTools: n > 0)
                }
            }
            return out
        }

        public mutating func finish() -> [UInt8] {
            guard !done, started else { return [] }
            done = true
            var out: [UInt8] = []
            for index in finishes.keys.sorted() {
                out += chunk([.object(["index": .int(index), "delta": .object([:]), "logprobs": .null, "finish_reason": finishes[index]!])])
            }
            if includeUsage { out += chunk([], usage: OpenAIToGoogle.usage(usage)) }
            return out + StreamOut.sse("[DONE]")
        }
    }
}

/// Two translators one after the other (an Anthropic client in front of Google goes through the
/// OpenAI format: Google → OpenAI chunks → Anthropic events).
public struct ChainedTranslator: ResponseTranslator {
    var first: any ResponseTranslator
    var second: any ResponseTranslator

    public init(_ first: any ResponseTranslator, _ second: any ResponseTranslator) {
        self.first = first
        self.second = second
    }

    public mutating func feed(_ bytes: [UInt8]) -> [UInt8] { second.feed(first.feed(bytes)) }

    public mutating func finish() -> [UInt8] {
        let tail = first.finish()
        return second.feed(tail) + second.finish()
    }
}
