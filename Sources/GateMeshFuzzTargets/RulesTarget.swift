import GateMeshCluster
import GateMeshCore

extension FuzzTargets {
    /// `.rules` and `.rulesDigest` payloads (the same bytes tried as both): whatever decodes
    /// re-encodes to something that decodes the same.
    public static let rules = FuzzTarget(
        name: "rules",
        summary: "RulesCodec records and digests, decode → encode → decode",
        run: { data in
            if let records = try? RulesCodec.decode(data) {
                let again = try? RulesCodec.decode(RulesCodec.encode(records))
                FuzzCheck.require(again == records, "rule records do not survive encode → decode")
            }
            if let d = try? RulesCodec.decodeDigest(data) {
                let again = try? RulesCodec.decodeDigest(RulesCodec.digest(d.digest, count: d.count, reply: d.reply).payload)
                FuzzCheck.require(again.map { ($0.digest, $0.count, $0.reply) == (d.digest, d.count, d.reply) } ?? false,
                                  "a rules digest does not survive encode → decode")
            }
        },
        seeds: {
            [RulesCodec.encode([]), RulesCodec.encode(rulesSample), RulesCodec.digest(.max, count: 3, reply: false).payload]
        }
    )

    static let rulesSample = [
        RuleRecord(id: "team-a-daily", gateway: "default", definition: #"{"id":"team-a-daily","limit":"$5","window":{"calendar":"day"}}"#,
                   createdTs: 1_700_000_000_000, updatedTs: 1_700_000_000_001, origin: "n1"),
        RuleRecord(id: "gone", gateway: "g", definition: "", createdTs: 1, updatedTs: 2, origin: "n2", deleted: true),
    ]
}
