import GateMeshCore
import GateMeshTranslate
import Testing

/// Golden tests of OpenAI chat ⇄ Anthropic messages, on wire samples shaped like the providers'
/// documentation (platform.openai.com/docs/api-reference/chat, docs.anthropic.com/en/api/messages,
/// docs.anthropic.com/en/docs/build-with-claude/streaming).
@Suite struct OpenAIToAnthropicTests {
    func json(_ s: String) -> JSONValue { JSONValue.parse(s)! }
    func translate(_ s: String, _ options: TranslationOptions = .init()) throws -> JSONValue {
        try OpenAIToAnthropic.request(json(s), model: "claude-sonnet-4-5", options: options)
    }

    @Test func plainTextGetsTheDefaultMaxTokens() throws {
        let out = try translate(#"{"model":"anthropic/claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}]}"#)
        #expect(out == json(#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}],"max_tokens":4096}"#))
    }

    @Test func systemPromptsMultiTurnStopAndSampling() throws {
        let out = try translate("""
        {"model":"x","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Use SI units."}]},
         {"role":"user","content":"How far is the moon?"},{"role":"assistant","content":"About 384,400 km."},{"role":"user","content":"In miles?"}],
         "max_completion_tokens":100,"temperature":0.2,"top_p":0.9,"stop":"END","user":"u-42","stream":true,"stream_options":{"include_usage":true}}
        """)
        #expect(out == json("""
        {"model":"claude-sonnet-4-5","system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Use SI units."}],
         "messages":[{"role":"user","content":[{"type":"text","text":"How far is the moon?"}]},
                     {"role":"assistant","content":[{"type":"text","text":"About 384,400 km."}]},
                     {"role":"user","content":[{"type":"text","text":"In miles?"}]}],
         "max_tokens":100,"temperature":0.2,"top_p":0.9,"stop_sequences":["END"],"metadata":{"user_id":"u-42"},"stream":true}
        """))
    }

    @Test func imagesByURLAndBase64() throws {
        let out = try translate("""
        {"model":"x","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},
         {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},
         {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}
        """)
        #expect(out["messages"]?[0]?["content"] == json("""
        [{"type":"text","text":"What is this?"},{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},
         {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]
        """))
    }

    @Test func toolsToolChoiceParallelCallsAndResults() throws {
        let out = try translate("""
        {"model":"x","tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now",
          "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
         "tool_choice":"required","parallel_tool_calls":false,
         "messages":[{"role":"user","content":"Weather in Paris and Rome?"},
          {"role":"assistant","content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}},
            {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Rome\\"}"}}]},
          {"role":"tool","tool_call_id":"call_1","content":"18C"},{"role":"tool","tool_call_id":"call_2","content":"24C"}]}
        """)
        #expect(out["tools"] == json("""
        [{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]
        """))
        #expect(out["tool_choice"] == json(#"{"type":"any","disable_parallel_tool_use":true}"#))
        #expect(out["messages"] == json("""
        [{"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},
         {"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
                                        {"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome"}}]},
         {"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]},
                                   {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"24C"}]}]}]
        """))
    }

    @Test func unsupportedParametersAreRefusedNamingThemUnlessDropped() throws {
        let body = #"{"model":"x","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}}"#
        do {
            _ = try translate(body)
            Issue.record("expected a refusal")
        } catch let e as TranslationError {
            #expect(e.code == "unsupported_parameter" && e.message.contains("logit_bias") && e.message.contains("anthropic"))
        }
        #expect(try translate(body, .init(dropUnsupported: true))["logit_bias"] == nil)
        #expect(throws: TranslationError.self) {
            try translate(#"{"model":"x","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}]}"#)
        }
        #expect(throws: TranslationError.self) { try translate(#"{"model":"x","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2}}"#) }
        #expect(throws: TranslationError.self) { try translate(#"{"model":"x","messages":[{"role":"user","content":"hi"}],"temperature":1.5}"#) }
        #expect(throws: TranslationError.self) { try translate(#"{"model":"x","messages":[]}"#) }
        #expect(throws: TranslationError.self) {
            try translate(#"{"model":"x","messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"not json"}}]}]}"#)
        }
    }

    @Test func jsonModeIsAForcedToolWhoseInputIsTheContent() throws {
        let out = try translate(#"{"model":"x","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object","properties":{"name":{"type":"string"}}}}}}"#)
        #expect(out["tools"]?[0]?["name"] == "json_output")
        #expect(out["tools"]?[0]?["input_schema"] == json(#"{"type":"object","properties":{"name":{"type":"string"}}}"#))
        #expect(out["tool_choice"] == json(#"{"type":"tool","name":"json_output"}"#))
        let answer = #"{"id":"msg_2","model":"m","content":[{"type":"tool_use","id":"toolu_9","name":"json_output","input":{"name":"Ada"}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":7}}"#
        let whole = JSONValue.parse(OpenAIToAnthropic.response(Array(answer.utf8), status: 200, created: 1, jsonMode: true))!
        #expect(whole["choices"]?[0]?["message"] == json(#"{"role":"assistant","content":"{\"name\":\"Ada\"}"}"#))
        #expect(whole["choices"]?[0]?["finish_reason"] == "stop")
        var t = OpenAIToAnthropic.Stream(includeUsage: false, created: 1, jsonMode: true)
        var out2: [UInt8] = []
        for e in [#"{"type":"message_start","message":{"id":"msg_3","model":"m","usage":{"input_tokens":5,"output_tokens":1}}}"#,
                  #"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"json_output","input":{}}}"#,
                  #"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"name\": "}}"#,
                  #"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"Ada\"}"}}"#,
                  #"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#, #"{"type":"message_stop"}"#] {
            out2 += t.feed(Array("data: \(e)\n\n".utf8))
        }
        let chunks = String(decoding: out2, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty && $0 != "data: [DONE]" }
            .map { JSONValue.parse(String($0.dropFirst(6)))! }
        #expect(chunks.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined() == #"{"name": "Ada"}"#)
        #expect(chunks.allSatisfy { $0["choices"]?[0]?["delta"]?["tool_calls"] == nil })
        #expect(chunks.last?["choices"]?[0]?["finish_reason"] == "stop")
    }

    @Test func aWholeAnswerWithTextToolUseAndCacheUsage() {
        let body = """
        {"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
         "content":[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}],
         "stop_reason":"tool_use","stop_sequence":null,
         "usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":30,"output_tokens":15}}
        """
        let out = JSONValue.parse(OpenAIToAnthropic.response(Array(body.utf8), status: 200, created: 1700000000))!
        #expect(out == json("""
        {"id":"chatcmpl-msg_01","object":"chat.completion","created":1700000000,"model":"claude-sonnet-4-5-20250929",
         "choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","tool_calls":[
           {"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},
           "logprobs":null,"finish_reason":"tool_calls"}],
         "usage":{"prompt_tokens":150,"completion_tokens":15,"total_tokens":165,"prompt_tokens_details":{"cached_tokens":30}}}
        """))
    }

    @Test func errorsKeepTheirStatusInOpenAIsShape() {
        let body = #"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#
        let out = JSONValue.parse(OpenAIToAnthropic.response(Array(body.utf8), status: 429, created: 0))!
        #expect(out == json(#"{"error":{"message":"Number of request tokens has exceeded your per-minute rate limit","type":"rate_limit_error","param":null,"code":"rate_limit_error"}}"#))
    }

    /// The documentation's streamed tool use, split at awkward places.
    @Test func aStreamWithTextAndTwoToolCallsArrivesEventByEvent() {
        let events = [
            #"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2}}}"#,
            #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            #"{"type":"ping"}"#,
            #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}}"#,
            #"{"type":"content_block_stop","index":0}"#,
            #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"get_weather","input":{}}}"#,
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#,
            #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}"#,
            #"{"type":"content_block_stop","index":1}"#,
            #"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"get_weather","input":{}}}"#,
            #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Rome\"}"}}"#,
            #"{"type":"content_block_stop","index":2}"#,
            #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
            #"{"type":"message_stop"}"#,
        ]
        let wire = Array(events.map { e in "event: \(JSONValue.parse(e)!["type"]!.stringValue!)\ndata: \(e)\n\n" }.joined().utf8)
        var t = OpenAIToAnthropic.Stream(includeUsage: true, created: 7)
        var out: [UInt8] = []
        var i = 0
        while i < wire.count {  // 13-byte pieces: events and lines split anywhere
            out += t.feed(Array(wire[i..<min(i + 13, wire.count)]))
            i += 13
        }
        out += t.finish()
        let datas = String(decoding: out, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { String($0.dropFirst(6)) }
        #expect(datas.last == "[DONE]")
        let chunks = datas.dropLast().map { JSONValue.parse($0)! }
        #expect(chunks.allSatisfy { $0["id"]?.stringValue == "chatcmpl-msg_01" && $0["object"]?.stringValue == "chat.completion.chunk" })
        let deltas = chunks.compactMap { $0["choices"]?[0]?["delta"] }
        #expect(deltas[0] == json(#"{"role":"assistant","content":""}"#))
        #expect(deltas[1] == json(#"{"content":"Checking"}"#))
        #expect(deltas[2] == json(#"{"tool_calls":[{"index":0,"id":"toolu_a","type":"function","function":{"name":"get_weather","arguments":""}}]}"#))
        // Argument fragments with their indices, concatenating to the whole input.
        var args: [Int: String] = [:]
        for d in deltas { for c in d["tool_calls"]?.arrayValue ?? [] { args[c["index"]!.intValue!, default: ""] += c["function"]?["arguments"]?.stringValue ?? "" } }
        #expect(args == [0: #"{"city": "Paris"}"#, 1: #"{"city": "Rome"}"#])
        #expect(chunks[chunks.count - 2]["choices"]?[0]?["finish_reason"] == "tool_calls")
        #expect(chunks.last?["choices"] == .array([]))
        #expect(chunks.last?["usage"] == json(#"{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,"prompt_tokens_details":{"cached_tokens":0}}"#))
    }
}

@Suite struct AnthropicToOpenAITests {
    func json(_ s: String) -> JSONValue { JSONValue.parse(s)! }

    @Test func aMessagesRequestWithSystemImagesToolsAndResults() throws {
        let out = try AnthropicToOpenAI.request(json("""
        {"model":"openai/gpt-4o-mini","max_tokens":256,"system":"Be brief.","stop_sequences":["END"],"temperature":0.5,
         "tools":[{"name":"get_weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
         "tool_choice":{"type":"any","disable_parallel_tool_use":true},
         "messages":[{"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AA"}}]},
          {"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},{"type":"text","text":"And tomorrow?"}]}],
         "stream":true}
        """), model: "gpt-4o-mini", provider: "openai", options: .init())
        #expect(out == json("""
        {"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},
          {"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AA"}}]},
          {"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},
          {"role":"tool","tool_call_id":"toolu_1","content":"18C"},{"role":"user","content":"And tomorrow?"}],
         "max_tokens":256,"temperature":0.5,"stop":["END"],
         "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
         "tool_choice":"required","parallel_tool_calls":false,"stream":true,"stream_options":{"include_usage":true}}
        """))
        #expect(throws: TranslationError.self) {
            try AnthropicToOpenAI.request(json(#"{"model":"x","max_tokens":1,"top_k":5,"messages":[{"role":"user","content":"hi"}]}"#),
                                          model: "x", provider: "openai", options: .init())
        }
    }

    @Test func aWholeChatCompletionBecomesAMessage() {
        let body = """
        {"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,
         "tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},"finish_reason":"tool_calls"}],
         "usage":{"prompt_tokens":50,"completion_tokens":10,"total_tokens":60,"prompt_tokens_details":{"cached_tokens":20}}}
        """
        #expect(JSONValue.parse(AnthropicToOpenAI.response(Array(body.utf8), status: 200)) == json("""
        {"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"gpt-4o-mini",
         "content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}}],
         "stop_reason":"tool_use","stop_sequence":null,
         "usage":{"input_tokens":30,"output_tokens":10,"cache_read_input_tokens":20,"cache_creation_input_tokens":0}}
        """))
        let error = #"{"error":{"message":"Invalid API key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#
        #expect(JSONValue.parse(AnthropicToOpenAI.response(Array(error.utf8), status: 401)) ==
                json(#"{"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}"#))
    }

    @Test func aChunkStreamBecomesMessageEvents() {
        let chunks = [
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}]},"finish_reason":null}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            #"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}"#,
            "[DONE]",
        ]
        var t = AnthropicToOpenAI.Stream()
        var out: [UInt8] = []
        for c in chunks { out += t.feed(Array("data: \(c)\n\n".utf8)) }
        out += t.finish()
        let events = String(decoding: out, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
        let types = events.map { String($0.split(separator: "\n")[0].dropFirst(7)) }
        #expect(types == ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start",
                          "content_block_delta", "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta",
                          "content_block_stop", "message_delta", "message_stop"])
        let datas = events.map { JSONValue.parse(String($0.split(separator: "\n")[1].dropFirst(6)))! }
        #expect(datas[4]["content_block"] == json(#"{"type":"tool_use","id":"call_a","name":"f","input":{}}"#))
        #expect(datas[5]["delta"] == json(#"{"type":"input_json_delta","partial_json":"{\"a\":"}"#))
        #expect(datas[8]["index"] == 2)
        #expect(datas[11] == json(#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":9,"output_tokens":7,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#))
    }
}

@Suite struct JSONValueTests {
    @Test func roundTripsKeepingKeyOrderAndNumbers() {
        let text = #"{"b":1,"a":[true,false,null,1.50,-2e3,"é\n\"x\""],"c":{}}"#
        let v = JSONValue.parse(text)!
        #expect(v.text == #"{"b":1,"a":[true,false,null,1.50,-2e3,"é\n\"x\""],"c":{}}"#)
        #expect(v["a"]?[3]?.doubleValue == 1.5)
        #expect(JSONValue.parse("{\"a\":}") == nil && JSONValue.parse("[1,]") == nil && JSONValue.parse("1 2") == nil)
        #expect(JSONValue.parse(#""\ud83d\ude00""#)?.stringValue == "😀")
    }
}
