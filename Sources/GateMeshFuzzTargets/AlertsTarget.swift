import GateMeshCluster
import GateMeshLimits

extension FuzzTargets {
    /// `.alertsFired` payloads: whatever decodes re-encodes to something that decodes the same.
    public static let alerts = FuzzTarget(
        name: "alerts",
        summary: "AlertsCodec decode → encode → decode",
        run: { data in
            guard let keys = try? AlertsCodec.decode(data) else { return }
            let again = try? AlertsCodec.decode(AlertsCodec.encode(keys).payload)
            FuzzCheck.require(again == keys, "fired alerts do not survive encode → decode")
        },
        seeds: { [AlertsCodec.encode([]).payload, AlertsCodec.encode(alertsSample).payload] }
    )

    static let alertsSample = [
        LimitsEngine.AlertKey(rule: "monthly", scope: "team=a", window: 1_700_000_000_000, permille: 800),
        LimitsEngine.AlertKey(rule: "daily", scope: "", window: -5, permille: 1000),
    ]
}
