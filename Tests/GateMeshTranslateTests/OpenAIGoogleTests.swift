import GateMeshCore
import GateMeshTranslate
import Testing

/// Golden tests of OpenAI chat ⇄ Google AI Studio generateContent, on samples shaped like
/// ai.google.dev/api/generate-content and the function-calling guide.
@Suite struct OpenAIToGoogleTests {
    func json(_ s: String) -> JSONValue { JSONValue.parse(s)! }

    @Test func systemMultiTurnImagesAndGenerationConfig() throws {
        let out = try OpenAIToGoogle.request(json("""
        {"model":"google-ai-studio/gemini-2.5-flash","messages":[{"role":"system","content":"Be brief."},
          {"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AA"}}]},
          {"role":"assistant","content":"A cat."},{"role":"user","content":"Sure?"}],
         "max_tokens":100,"temperature":0.3,"top_p":0.8,"n":2,"seed":7,"stop":["END"],"response_format":{"type":"json_object"}}
        """), options: .init())
        #expect(out == json("""
        {"contents":[{"role":"user","parts":[{"text":"What is this?"},{"inlineData":{"mimeType":"image/jpeg","data":"/9j/4AA"}}]},
                     {"role":"model","parts":[{"text":"A cat."}]},{"role":"user","parts":[{"text":"Sure?"}]}],
         "systemInstruction":{"parts":[{"text":"Be brief."}]},
         "generationConfig":{"maxOutputTokens":100,"temperature":0.3,"topP":0.8,"candidateCount":2,"seed":7,"stopSequences":["END"],
                             "responseMimeType":"application/json"}}
        """))
    }

    @Test func functionDeclarationsCallsAndResponsesByName() throws {
        let out = try OpenAIToGoogle.request(json("""
        {"model":"x","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
         "tool_choice":{"type":"function","function":{"name":"get_weather"}},
         "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}},
         "messages":[{"role":"user","content":"Paris?"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},
          {"role":"tool","tool_call_id":"call_9","content":"{\\"temp\\":18}"},{"role":"tool","tool_call_id":"call_9","content":"plain"}]}
        """), options: .init())
        #expect(out["tools"] == json(#"[{"functionDeclarations":[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}]"#))
        #expect(out["toolConfig"] == json(#"{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}}"#))
        #expect(out["generationConfig"] == json(#"{"responseMimeType":"application/json","responseSchema":{"type":"object"}}"#))
        #expect(out["contents"] == json("""
        [{"role":"user","parts":[{"text":"Paris?"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},
         {"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"temp":18}}},
                                 {"functionResponse":{"name":"get_weather","response":{"content":"plain"}}}]}]
        """))
        #expect(throws: TranslationError.self) {
            try OpenAIToGoogle.request(json(#"{"model":"x","messages":[{"role":"tool","tool_call_id":"nope","content":"x"}]}"#), options: .init())
        }
        #expect(throws: TranslationError.self) {
            try OpenAIToGoogle.request(json(#"{"model":"x","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":2}}"#), options: .init())
        }
    }

    @Test func aWholeAnswerWithAFunctionCallAndThoughts() {
        let body = """
        {"candidates":[{"content":{"role":"model","parts":[{"text":"thinking...","thought":true},{"text":"Calling."},
          {"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},"finishReason":"STOP","index":0}],
         "usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":12,"thoughtsTokenCount":30,"cachedContentTokenCount":8,"totalTokenCount":82},
         "modelVersion":"gemini-2.5-flash","responseId":"abc"}
        """
        let out = JSONValue.parse(OpenAIToGoogle.response(Array(body.utf8), status: 200, model: "gemini-2.5-flash", created: 5))!
        #expect(out["id"] == "chatcmpl-abc" && out["model"] == "gemini-2.5-flash")
        let choice = out["choices"]?[0]
        #expect(choice?["finish_reason"] == "tool_calls" && choice?["message"]?["content"] == "Calling.")
        #expect(choice?["message"]?["tool_calls"]?[0]?["function"] == json(#"{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}"#))
        #expect(choice?["message"]?["tool_calls"]?[0]?["index"] == nil)
        #expect(out["usage"] == json("""
        {"prompt_tokens":40,"completion_tokens":42,"total_tokens":82,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":30}}
        """))
        let error = #"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#
        #expect(JSONValue.parse(OpenAIToGoogle.response(Array(error.utf8), status: 429, model: "m", created: 0)) ==
                json(#"{"error":{"message":"Resource has been exhausted","type":"rate_limit_error","param":null,"code":"RESOURCE_EXHAUSTED"}}"#))
    }

    @Test func aStreamOfTextThenTwoCallsEndsWithFinishUsageAndDone() {
        let events = [
            #"{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me "}]},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
            #"{"candidates":[{"content":{"role":"model","parts":[{"text":"check."}]},"index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4}}"#,
            #"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f","args":{"a":1}}},{"functionCall":{"name":"g","args":{}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":20,"totalTokenCount":29}}"#,
        ]
        var t = OpenAIToGoogle.Stream(includeUsage: true, model: "gemini-2.5-flash", created: 3)
        var out: [UInt8] = []
        for e in events { out += t.feed(Array("data: \(e)\r\n\r\n".utf8)) }
        out += t.finish()
        let datas = String(decoding: out, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { String($0.dropFirst(6)) }
        #expect(datas.last == "[DONE]")
        let chunks = datas.dropLast().map { JSONValue.parse($0)! }
        #expect(chunks.allSatisfy { $0["id"] == "chatcmpl-r1" })
        #expect(chunks[0]["choices"]?[0]?["delta"] == json(#"{"role":"assistant","content":""}"#))
        #expect(chunks[1]["choices"]?[0]?["delta"]?["content"] == "Let me ")
        #expect(chunks[2]["choices"]?[0]?["delta"]?["content"] == "check.")
        let calls = chunks[3]["choices"]?[0]?["delta"]?["tool_calls"]?.arrayValue ?? []
        #expect(calls.map { $0["index"]?.intValue } == [0, 1])
        #expect(calls.map { $0["function"]?["arguments"]?.stringValue } == [#"{"a":1}"#, "{}"])
        #expect(chunks[4]["choices"]?[0]?["finish_reason"] == "tool_calls")
        #expect(chunks[5]["usage"]?["completion_tokens"] == 20 && chunks[5]["choices"] == .array([]))
    }
}

@Suite struct GoogleEmbeddingsTests {
    @Test func requestsAndVectorsAsFloatsOrBase64() throws {
        let req = try GoogleEmbeddings.request(JSONValue.parse(#"{"model":"g/e","input":["a","b"],"dimensions":2}"#)!, model: "gemini-embedding-001")
        #expect(req == JSONValue.parse("""
        {"requests":[{"model":"models/gemini-embedding-001","content":{"parts":[{"text":"a"}]},"outputDimensionality":2},
                     {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"b"}]},"outputDimensionality":2}]}
        """))
        let answer = Array(#"{"embeddings":[{"values":[1.0,-2.0]}]}"#.utf8)
        let b64 = JSONValue.parse(GoogleEmbeddings.response(answer, status: 200, model: "m", base64: true))!
        #expect(b64["data"]?[0]?["embedding"] == "AACAPwAAAMA=")  // 1.0 and -2.0 as little-endian float32
        let floats = JSONValue.parse(GoogleEmbeddings.response(answer, status: 200, model: "m", base64: false))!
        #expect(floats["data"]?[0]?["embedding"] == JSONValue.parse("[1.0,-2.0]"))
        #expect(throws: TranslationError.self) { try GoogleEmbeddings.request(JSONValue.parse(#"{"input":[[1,2]]}"#)!, model: "m") }
    }
}

@Suite struct TranslationEdgeTests {
    @Test func noOpValuesOfUnsupportedParametersAreNotRefused() throws {
        let body = JSONValue.parse(#"{"model":"x","messages":[{"role":"user","content":"hi"}],"logprobs":false,"presence_penalty":0,"logit_bias":{}}"#)!
        _ = try OpenAIToAnthropic.request(body, model: "m", options: .init())
        _ = try OpenAIToGoogle.request(body, options: .init())
    }

    @Test func anOversizedWholeAnswerPassesThroughUntranslated() {
        var t = WholeBodyTranslator { _ in Array("translated".utf8) }
        let big = [UInt8](repeating: 0x20, count: WholeBodyTranslator.maxBytes)
        #expect(t.feed(Array("{".utf8)).isEmpty)
        #expect(t.feed(big).count == big.count + 1)
        #expect(t.feed([1, 2]) == [1, 2])
        #expect(t.finish().isEmpty)
    }
}

@Suite struct StreamErrorTests {
    func datas(_ out: [UInt8]) -> [String] {
        String(decoding: out, as: UTF8.self).components(separatedBy: "\n\n").filter { !$0.isEmpty }
    }

    @Test func anAnthropicErrorEventEndsTheChunkStreamWithAnOpenAIError() {
        var t = OpenAIToAnthropic.Stream(includeUsage: false, created: 1)
        var out = t.feed(Array(#"data: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#.utf8) + [10, 10])
        out += t.feed(Array(#"event: error\#ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.utf8) + [10, 10])
        out += t.feed(Array(#"data: {"type":"message_stop"}"#.utf8) + [10, 10])
        let events = datas(out)
        #expect(events.count == 2)
        #expect(JSONValue.parse(String(events[1].dropFirst(6)))?["error"]?["message"] == "Overloaded")
        #expect(!events.contains("data: [DONE]"), "a stream that failed does not say it is done")
    }

    @Test func anOpenAIErrorChunkBecomesAnAnthropicErrorEvent() {
        var t = AnthropicToOpenAI.Stream()
        var out = t.feed(Array(#"data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#.utf8) + [10, 10])
        out += t.feed(Array(#"data: {"error":{"message":"server exploded","type":"server_error"}}"#.utf8) + [10, 10])
        out += t.finish()
        let events = datas(out)
        #expect(events.last?.hasPrefix("event: error") == true)
        #expect(!events.contains { $0.hasPrefix("event: message_stop") })
    }

    @Test func anAnthropicClientReachesGoogleThroughTheOpenAIFormat() {
        var t = ChainedTranslator(OpenAIToGoogle.Stream(includeUsage: true, model: "gemini", created: 1), AnthropicToOpenAI.Stream())
        let e = #"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hello"},{"functionCall":{"name":"f","args":{"a":1}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}"#
        var out = t.feed(Array("data: \(e)\r\n\r\n".utf8))
        out += t.finish()
        let types = datas(out).map { String($0.split(separator: "\n")[0].dropFirst(7)) }
        #expect(types == ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start",
                          "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
        let delta = JSONValue.parse(String(datas(out)[7].split(separator: "\n")[1].dropFirst(6)))!
        #expect(delta["delta"]?["stop_reason"] == "tool_use" && delta["usage"]?["output_tokens"] == 4)
    }
}
