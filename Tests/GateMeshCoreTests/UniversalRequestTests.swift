import GateMeshCore
import Testing

@Suite struct UniversalRequestTests {
    @Test func stepsKeepTheirQueryBytesAndTurnConfigIntoHeaders() throws {
        let text = """
            [ {"provider": "Anthropic", "endpoint": "v1/messages", "headers": {"X-Api-Key": "k", "anthropic-version": "2023-06-01"},
               "query": {"b": 0.70, "a": [1, 2]}, "config": {"requestTimeout": 5000, "maxAttempts": 2, "retryDelay": 10, "backoff": "linear"}},
              {"provider": "openai", "endpoint": "chat/completions", "authorization": "Bearer x", "query": {}} ]
            """
        let steps = try UniversalRequest.parse(Array(text.utf8))
        #expect(steps.count == 2)
        #expect(steps[0].provider == "anthropic" && steps[0].endpoint == "v1/messages")
        #expect(String(decoding: steps[0].body, as: UTF8.self) == #"{"b": 0.70, "a": [1, 2]}"#)
        #expect(steps[0].headers == [.init("x-api-key", "k"), .init("anthropic-version", "2023-06-01"),
                                     .init("x-gatemesh-request-timeout", "5000"), .init("x-gatemesh-max-attempts", "2"),
                                     .init("x-gatemesh-retry-delay", "10"), .init("x-gatemesh-backoff", "linear")])
        #expect(steps[1].headers == [.init("authorization", "Bearer x")] && steps[1].body == Array("{}".utf8))
    }

    @Test func mistakesAreNamed() {
        for (text, fragment) in [("{}", "JSON array"), ("[]", "empty"), ("[1]", "step 0 must be a JSON object"),
                                 (#"[{"provider":"a","endpoint":"b"},{"endpoint":"b"}]"#, "step 1: provider is required"),
                                 (#"[{"provider":"a"}]"#, "endpoint is required"),
                                 (#"[{"provider":"a","endpoint":"b","headers":{"bad name":"x"}}]"#, "headers.bad name"),
                                 (#"[{"provider":"a","endpoint":"b","headers":{"x":"a\nb"}}]"#, "headers.x"),
                                 (#"[{"provider":"a","endpoint":"b","config":{"timeout":1}}]"#, "unknown config key"),
                                 (#"[{"provider":"a","endpoint":"b"}] x"#, "JSON array")] {
            do {
                _ = try UniversalRequest.parse(Array(text.utf8))
                Issue.record("expected an error for \(text)")
            } catch {
                #expect(error.status == 400 && error.message.contains(fragment), "\(text): \(error.message)")
            }
        }
    }

    @Test func spansOfObjectsArraysStringsAndNumbers() {
        let members = JSONSpans.object(Array(#" {"a" : "x\"y", "b": [1, {"c": 2}], "d": -0.5e3 } "#.utf8)[...])
        #expect(members?.map(\.key) == ["a", "b", "d"])
        #expect(members.map { JSONSpans.string($0[0].value) } == "x\"y")
        #expect(members.map { String(decoding: $0[1].value, as: UTF8.self) } == #"[1, {"c": 2}]"#)
        #expect(members.map { JSONSpans.number($0[2].value) } == "-0.5e3")
        #expect(JSONSpans.array(Array("[1, \"two\", {}]".utf8)[...])?.count == 3)
        #expect(JSONSpans.array(Array("[1,]".utf8)[...]) == nil && JSONSpans.object(Array("{\"a\":1,}".utf8)[...]) == nil)
    }
}
