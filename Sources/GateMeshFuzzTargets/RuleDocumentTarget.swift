import GateMeshConfig

extension FuzzTargets {
    /// Rule documents, as the admin API reads them (`POST /api/rules`): rules or a
    /// `ConfigError`, never a trap.
    public static let ruleDocument = FuzzTarget(
        name: "rule-document",
        summary: "RuleDocument.parse (the admin API's rules)",
        run: { data in
            let text = String(decoding: data, as: UTF8.self)
            _ = try? RuleDocument.parse(text, gateways: ["default", "g"])
            _ = try? RuleDocument.parse(text, gateways: ["default"], single: "r1")
        },
        seeds: {
            [
                #"{"id":"team-a","gateway":"default","limit":"$5","window":{"calendar":"month","time_zone":"UTC"},"split_by":["metadata.team"],"alerts":[0.8]}"#,
                #"[{"id":"rpm","gateway":"g","limit":"60 requests","window":{"fixed":"1m"},"action":"reject"},{"id":"x","gateway":"default","limit":"$1","window":{"rolling":"1h","bucket":"1m"},"action":{"downgrade":{"model":"gpt-4o-mini"}}}]"#,
                #"{"gateway":"default","limit":"$0.01","window":{"sliding":"10s"},"enforcement":"strict"}"#,
                #"{"id":"big","gateway":"default","limit":"$1","window":{"fixed":"1e300s"}}"#,
                "[]", "null", "{", #"{"id":"a","gateway":"nope"}"#,
            ].map { Array($0.utf8) }
        }
    )
}
