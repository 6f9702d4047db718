import GateMeshAccounting
import GateMeshCore

extension FuzzTargets {
    /// The JSON reader in all its forms (tree, canonical form, in-place object view, one-pass
    /// scan, spans) and the request inspection built on it. They agree on what is JSON; the
    /// canonical form is a fixed point; a tree written out parses back to itself; the view reads
    /// what the tree holds; a body rewritten by the inspector is still JSON.
    public static let json = FuzzTarget(
        name: "json",
        summary: "JSONValue.parse, CanonicalJSON, JSONObjectView, JSONValue.scan, JSONSpans, RequestInspector",
        run: { bytes in
            let tree = JSONValue.parse(bytes)
            let canonical = CanonicalJSON.canonical(bytes)
            FuzzCheck.require((tree == nil) == (canonical == nil), "the tree and the canonical form disagree on what is JSON")
            if let canonical {
                FuzzCheck.require(CanonicalJSON.canonical(canonical) == canonical, "the canonical form is not canonical")
            }
            if let tree {
                FuzzCheck.require(JSONValue.parse(tree.bytes) == tree, "a JSON tree does not survive write → parse")
            }
            let view = JSONObjectView(bytes)
            FuzzCheck.require((view != nil) == (tree?.objectValue != nil), "the object view and the tree disagree on what is an object")
            // Keys are looked up by String: one with invalid UTF-8 reads as U+FFFD and has no name to look up by.
            if let view, let object = tree?.objectValue, String(validating: bytes, as: UTF8.self) != nil {
                for key in object.keys {
                    FuzzCheck.require(view.contains(key), "the object view misses key \(key)")
                    FuzzCheck.require(view.int(key) == object[key]?.intValue, "the object view reads \(key) as another number")
                    FuzzCheck.require(view.string(key) == object[key]?.stringValue, "the object view reads \(key) as another string")
                    FuzzCheck.require((view.object(key) != nil) == (object[key]?.objectValue != nil), "the object view reads \(key) as another object")
                }
            }
            let scan = JSONValue.scan(bytes, keys: ["model", "messages"], skipping: [Array("model".utf8)])
            FuzzCheck.require((scan != nil) == (view != nil), "the scan and the object view disagree on what is an object")
            FuzzCheck.require(JSONValue.members(of: bytes, keys: ["model"]).map { _ in true } == scan.map { _ in true },
                              "members(of:) and the scan disagree on what is an object")
            _ = JSONSpans.array(bytes[...])
            _ = JSONSpans.object(bytes[...])
            _ = JSONSpans.string(bytes[...])
            _ = JSONSpans.number(bytes[...])

            for format in [APIFormat.openAIChat, .googleGenerate] {
                _ = RequestInspector.inspect(format: format, path: "/v1beta/models/gemini-pro:generateContent", body: bytes)
            }
            if let rewritten = RequestInspector.replacingModel(in: bytes, with: "gpt-4o-mini") {
                FuzzCheck.require(JSONValue.parse(rewritten)?["model"] == .string("gpt-4o-mini"), "a body with its model replaced is not JSON")
            }
            if let added = RequestInspector.addingUsageRequest(to: bytes) {
                FuzzCheck.require(JSONValue.parse(added)?["stream_options"]?["include_usage"] == .bool(true),
                                  "a body with a usage request added is not JSON that asks for usage")
            }
        },
        seeds: {
            [
                #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, gateway"}],"max_tokens":12,"stream":true}"#,
                #"{"b":1,"a":[true,false,null,-0.5e+3,"\u00e9\ud83d\ude00\n\"\\\/"],"a":{"x":{}}}"#,
                #"  [1, 2.0, 1e2, "x", {"k": "v"}, []]  "#,
                #"{"stream_options":{"include_usage":false},"model":"m"}"#,
                #"{ }"#, #""just a string""#, "12345678901234567890", #"{"n":-9223372036854775808,"m":1.5e300}"#,
                String(repeating: "[", count: 600) + String(repeating: "]", count: 600),
            ].map { Array($0.utf8) }
        }
    )
}
