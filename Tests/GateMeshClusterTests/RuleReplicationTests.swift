import GateMeshCore
import GateMeshCluster
import Testing

@Suite struct RuleReplicationTests {
    func record(_ id: String, _ ts: Int64, _ origin: String, deleted: Bool = false, def: String = "{}") -> RuleRecord {
        RuleRecord(id: id, gateway: "default", definition: deleted ? "" : def, createdTs: 1, updatedTs: ts, origin: origin, deleted: deleted)
    }

    /// Nodes of different versions compare digests: the value is pinned (computed outside Swift,
    /// from the FNV-1a bytes the digest is defined by).
    @Test func theDigestIsPinned() {
        var records = RuleRecords()
        _ = records.merge([record("r1", 1_800_000_000_123, "node-1"), record("r2", 1_800_000_000_456, "node-2", deleted: true)])
        #expect(records.digest() == 0xffb0_dc7c_5a64_dc9b)
    }

    @Test func theLatestVersionWinsInAnyOrderAndDuplicatesChangeNothing() {
        let changes = [
            record("a", 10, "n1", def: "{\"v\":1}"), record("a", 20, "n2", def: "{\"v\":2}"), record("b", 5, "n1"),
            record("a", 20, "n1", def: "{\"v\":3}"), record("b", 6, "n3", deleted: true), record("c", 7, "n2"),
        ]
        var rng = SplitMix64(seed: 42)
        var reference = RuleRecords(changes)
        for _ in 0..<50 {
            var shuffled = changes + changes.prefix(3)
            shuffled.shuffle(using: &rng)
            var r = RuleRecords()
            _ = r.merge(shuffled)
            #expect(r.byID == reference.byID)
            let (d1, d2) = (r.digest(), reference.digest())
            #expect(d1 == d2)
        }
        #expect(reference.byID["a"]?.definition == "{\"v\":2}")  // same time: the higher node name wins
        #expect(reference.byID["b"]?.deleted == true)
    }

    @Test func aDeleteWinsOverAnEditOfTheSameInstant() {
        var r = RuleRecords([record("a", 10, "n1")])
        let deleteKept = r.apply(record("a", 10, "n1", deleted: true))
        let editKept = r.apply(record("a", 10, "n1"))
        #expect(deleteKept && !editKept)
    }

    @Test func aChangeIsVersionedAboveWhatItReplaces() {
        let ahead = record("a", 5_000, "n2")
        #expect(RuleRecord.nextVersion(now: 1_000, after: ahead) == 5_001)
        #expect(RuleRecord.nextVersion(now: 9_000, after: ahead) == 9_000)
        #expect(RuleRecord.nextVersion(now: 9_000, after: nil) == 9_000)
    }

    @Test func digestsDifferWhenRecordsDo() {
        var a = RuleRecords([record("a", 1, "n1")]), b = RuleRecords([record("a", 2, "n1")])
        let (before, other) = (a.digest(), b.digest())
        #expect(before != other)
        _ = a.apply(record("a", 2, "n1"))
        let after = a.digest()
        #expect(after == other)
    }

    @Test func recordsRoundTripInBoundedFrames() throws {
        let big = String(repeating: "x", count: 300_000)
        let records = (0..<10).map { record("r\($0)", Int64($0), "n\($0)", deleted: $0 == 3, def: big) }
        let frames = RulesCodec.frames(records, budget: 1 << 20)
        #expect(frames.count > 1)
        #expect(frames.allSatisfy { $0.payload.count <= RulesCodec.frameBudgetBytes + 400_000 })
        let back = try frames.flatMap { try RulesCodec.decode($0.payload) }
        #expect(back == records)
        let d = try RulesCodec.decodeDigest(RulesCodec.digest(77, count: 10, reply: true).payload)
        #expect(d.digest == 77 && d.count == 10 && d.reply)
        #expect(throws: DecodeError.self) { try RulesCodec.decode([5, 1]) }
    }
}
