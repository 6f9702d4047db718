import GateMeshCore
import Testing

@Suite struct JSONObjectViewTests {
    func view(_ text: String) -> JSONObjectView? { JSONObjectView(Array(text.utf8)) }

    @Test func readsMembersInPlaceAsATreeWould() throws {
        let text = #" {"id":"x","model":"gpt-\u00e9","choices":[{"a":[1,2,{"b":null}]}],"usage":{"prompt_tokens":12,"#
            + #""completion_tokens":3.0,"big":1e3,"neg":-4,"frac":0.5,"details":{"cached_tokens":7}},"ok":true} "#
        let v = try #require(view(text))
        #expect(v.string("model") == "gpt-é")
        #expect(v.string("id") == "x")
        #expect(v.string("choices") == nil)
        #expect(v.object("choices") == nil)
        #expect(v.contains("ok") && !v.contains("missing"))
        let usage = try #require(v.object("usage"))
        #expect(usage.int("prompt_tokens") == 12)
        #expect(usage.int("completion_tokens") == 3)
        #expect(usage.int("big") == 1000)
        #expect(usage.int("neg") == -4)
        #expect(usage.int("frac") == nil)
        #expect(usage.object("details")?.int("cached_tokens") == 7)
        #expect(usage.int("details") == nil)
        // The same answers as the tree.
        let tree = try #require(JSONValue.parse(text))
        #expect(tree["usage"]?["prompt_tokens"]?.intValue == usage.int("prompt_tokens"))
        #expect(tree["usage"]?["big"]?.intValue == usage.int("big"))
    }

    @Test func aRepeatedKeyReadsItsLastValueAndEscapedKeysMatch() throws {
        let v = try #require(view(#"{"n":1,"n":2,"k\u0065y":"v"}"#))
        #expect(v.int("n") == 2)
        #expect(v.string("key") == "v")
    }

    @Test func onlyOneWholeObjectMakesAView() {
        for text in ["", "[]", "1", "\"s\"", "{", #"{"a":1"#, #"{"a":1}x"#, #"{"a":1}{}"#, #"{"a":01x}"#,
                     #"{"a":1.2.3}"#, #"{"a":tru}"#, #"{"a" 1}"#, #"{"a":[1,}"#] {
            #expect(view(text) == nil, "\(text)")
        }
        #expect(view(" {} ") != nil)
        let deep = String(repeating: "[", count: CanonicalJSON.maxDepth + 1) + String(repeating: "]", count: CanonicalJSON.maxDepth + 1)
        #expect(view(#"{"a":"# + deep + "}") == nil)
    }

    /// Found by fuzzing: a string skipped over (not read) was not checked for valid escapes, so the
    /// view, the request scan and `members(of:)` accepted documents the tree refuses.
    @Test func anInvalidEscapeInASkippedValueIsNotJSON() {
        for text in [#"{"a":"\ud8)d"}"#, #"{"a":"\x"}"#, #"{"a":["\u12"]}"#, #"{"a":"\udc00"}"#, #"{"a":"\ud800"}"#] {
            #expect(JSONValue.parse(text) == nil, "\(text)")
            #expect(view(text) == nil, "\(text)")
            #expect(JSONValue.members(of: Array(text.utf8), keys: []) == nil, "\(text)")
            #expect(JSONValue.scan(Array(text.utf8), keys: [], skipping: []) == nil, "\(text)")
        }
        #expect(view(#"{"a":"\ud83d\ude00\n\"\\\/\b\f\r\t"}"#) != nil)
    }
}
