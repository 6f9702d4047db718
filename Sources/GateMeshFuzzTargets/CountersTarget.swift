import GateMeshCluster
import GateMeshCore
import GateMeshLimits

extension FuzzTargets {
    /// `.counters` and `.digest` payloads (the same bytes tried as both): whatever decodes
    /// re-encodes to something that decodes the same.
    public static let counters = FuzzTarget(
        name: "counters",
        summary: "CountersCodec entries and digests, decode → encode → decode",
        run: { data in
            if let entries = try? CountersCodec.decode(data) {
                let again = try? CountersCodec.decode(CountersCodec.encode(entries))
                FuzzCheck.require(again == entries, "counter entries do not survive encode → decode")
            }
            if let digest = try? CountersCodec.decodeDigest(data) {
                let again = try? CountersCodec.decodeDigest(CountersCodec.encodeDigest(digest))
                FuzzCheck.require(again == digest, "a counters digest does not survive encode → decode")
            }
        },
        seeds: {
            [
                CountersCodec.encode([:]), CountersCodec.encode(countersSample),
                CountersCodec.encode([CounterMap.Key(rule: "rpm", scope: "", bucket: -1): CounterMap.Entry(spent: GCounter(slots: ["n": 0]))]),
                CountersCodec.encodeDigest(["budget": .max, "rpm": 0]),
            ]
        }
    )

    static let rightsEntrySample = RightsEntry(
        granted: [.init(from: "n1", to: "n2"): 500], used: ["n2": 120], refunded: ["n2": 5], returned: ["n2/3": 1],
        leases: [.init(from: "n1", to: "n2"): 1_700_000_000_000]
    )

    static let countersSample: [CounterMap.Key: CounterMap.Entry] = [
        CounterMap.Key(rule: "team-budget", scope: "team=a", bucket: 1_700_000_000_000): CounterMap.Entry(
            spent: GCounter(slots: ["n1": 1_000_000, "n2": 7]),
            reserved: VersionedSlots(slots: ["n1": .init(value: 30, version: 4, leaseUntil: 1_700_000_060_000)]),
            rights: rightsEntrySample
        ),
        CounterMap.Key(rule: "rpm", scope: "", bucket: 0): CounterMap.Entry(spent: GCounter(slots: ["n3": 1])),
    ]
}
