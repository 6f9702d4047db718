import GateMeshCore

extension FuzzTargets {
    /// The `metadata` request header: a header that parses writes back (`json`) to one that
    /// parses the same; a bad one is a 400, never a trap.
    public static let metadata = FuzzTarget(
        name: "metadata",
        summary: "RequestMetadata.parse, then json → parse round trip",
        run: { data in
            guard let parsed = try? RequestMetadata.parse(String(decoding: data, as: UTF8.self)) else { return }
            let again = try? RequestMetadata.parse(parsed.json)
            FuzzCheck.require(again == parsed, "metadata does not survive json → parse")
            for (key, _) in parsed.entries { _ = parsed.text(key) }
        },
        seeds: {
            [
                #"{"team":"a","user":"u-1","tier":3,"beta":true,"score":-1.5e-3}"#,
                #" { "k\u00e9y" : "v\"\\\/\b\f\n\r\t\ud83d\ude00" } "#,
                #"{}"#, #"{"a":null}"#, #"{"a":{}}"#, #"{"a":1,"a":2}"#, #"{"a":01}"#,
            ].map { Array($0.utf8) }
        }
    )
}
