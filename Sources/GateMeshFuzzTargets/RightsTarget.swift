import GateMeshCluster
import GateMeshLimits

extension FuzzTargets {
    /// `.rightsAsk` payloads: whatever decodes re-encodes to something that decodes the same.
    public static let rights = FuzzTarget(
        name: "rights",
        summary: "RightsCodec decode → encode → decode",
        run: { data in
            guard let (holder, asks) = try? RightsCodec.decode(data) else { return }
            let again = try? RightsCodec.decode(RightsCodec.encode(holder: holder, asks).payload)
            FuzzCheck.require(again?.holder == holder && again?.asks == asks, "an ask for rights does not survive encode → decode")
        },
        seeds: { [RightsCodec.encode(holder: "n1/4", []).payload, RightsCodec.encode(holder: "n2/1", rightsSample).payload] }
    )

    static let rightsSample = [
        RightsCodec.Ask(key: .init(rule: "budget", scope: "team=a", bucket: 1_700_000_000_000), shortfall: 250, need: 300, rate: 40),
        RightsCodec.Ask(key: .init(rule: "rpm", scope: "", bucket: 0), shortfall: 1, need: 0),
    ]
}
