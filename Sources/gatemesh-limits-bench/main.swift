// The limits replication benchmark (issue 16, part 4): how long admission waits for the lock it
// shares with replication while a rule holds 200,000 scope values and a full anti-entropy round
// runs. It drives the pure engine behind one lock, as `LimitsService` and `ClusterService` do:
//
//     swift run -c release gatemesh-limits-bench [scope values: 200000] [seconds per case: 5] [admissions/s: 20000]
//     swift run -c release gatemesh-limits-bench request-path [seconds: 5]   (see RequestPath.swift)
//
// Cases, each for the given time, one thread admitting and settling requests of random scope
// values in a loop (measuring each admit + settle, lock wait included) while another does:
// - nothing but delta ticks every 50 ms (the first sends the new peer every entry);
// - replication as built: a delta tick every 50 ms (digest every 2 s) and, every 2 s, a full
//   anti-entropy round: the digests, the differing rule's keys, its entries a frame (500) at a
//   time, each under the lock on its own, and a peer's dump of every entry merged a frame at a
//   time;
// - the same round done the earlier way: the digest recomputed from the whole table and the rule's
//   entries copied in one hold of the lock.
// Prints the admission latency percentiles per case and the longest hold of each replication step.
import Foundation
import GateMeshCluster
import GateMeshCore
import GateMeshLimits
import NIOConcurrencyHelpers

if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "request-path" {
    RequestPath.run(seconds: CommandLine.arguments.count > 2 ? Double(CommandLine.arguments[2]) ?? 5 : 5)
    exit(0)
}
let scopes = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 200_000 : 200_000
let seconds = CommandLine.arguments.count > 2 ? Double(CommandLine.arguments[2]) ?? 5 : 5
/// Admissions per second (paced; 0: as fast as one thread goes).
let rate = CommandLine.arguments.count > 3 ? Double(CommandLine.arguments[3]) ?? 20_000 : 20_000

let day: Int64 = 86_400_000
let rule = LimitRule(id: "per-user", gateway: "g", scope: [.split(.metadata("user"))], measure: .usd, limit: 1 << 60,
                     window: .fixed(lengthMs: day), enforcement: .soft)
func now() -> Int64 { WallClock.nowMs() }
func request(_ i: Int) -> LimitRequest {
    var m = RequestMetadata()
    m.entries = [("user", .string("u\(i)"))]
    return LimitRequest(gateway: "g", provider: "p", model: nil, metadata: m)
}

final class Holds: @unchecked Sendable {
    private let lock = NIOLock()
    private var longest: [String: Duration] = [:]
    func record(_ step: String, _ d: Duration) { lock.withLock { if d > longest[step] ?? .zero { longest[step] = d } } }
    var report: String { lock.withLock { longest.sorted { $0.key < $1.key }.map { "\($0.key) \(ms($0.value))" }.joined(separator: ", ") } }
}

func ms(_ d: Duration) -> String {
    let v = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    return String(format: "%.3f ms", v)
}

/// Runs `body` under the engine's lock and records how long it held it.
func held<T>(_ engine: NIOLockedValueBox<LimitsEngine>, _ holds: Holds, _ step: String, _ body: (inout LimitsEngine) -> T) -> T {
    engine.withLockedValue { e in
        let start = ContinuousClock.now
        let out = body(&e)
        holds.record(step, ContinuousClock.now - start)
        return out
    }
}

// The node's counters: one entry per scope value, spent by this node.
let t0 = now()
let setup: LimitsEngine = {
    var e = LimitsEngine(node: "a", rules: [rule], counters: CounterMap(node: "a", startVersion: 1 << 44, epoch: 1))
    for i in 0..<scopes {
        if case .admit(let r) = e.admit(request(i), estimate: LimitAmounts(costNanos: 100), now: t0) {
            e.settle(r.id, actual: LimitAmounts(costNanos: 90))
        }
    }
    return e
}()
// A peer's dump: every entry, with the peer's own spend, in frames of 500 (decoded off the lock).
let dump: [Frame] = {
    let bucket = rule.window.bucket(at: t0)
    var peer = CounterMap(node: "b")
    for i in 0..<scopes { peer.spend(.init(rule: "per-user", scope: "metadata.user=u\(i)", bucket: bucket), 7) }
    return Replicator.frames(peer.delta(since: 0))
}()
print("\(scopes) scope values; a peer's dump is \(dump.count) frames")

enum Mode: String { case none = "no replication", built = "replication as built", whole = "the earlier way (whole-table holds)" }

func run(_ mode: Mode) {
    let engine = NIOLockedValueBox(setup)
    // Its own copy of the setup's tables before the clock starts (copy-on-write would make the
    // first change under the lock pay for copying them).
    engine.withLockedValue { e in
        e.expire(now: now())
        if case .admit(let r) = e.admit(request(0), estimate: LimitAmounts(costNanos: 1), now: now()) { e.settle(r.id, actual: LimitAmounts(costNanos: 1)) }
        e.merge([.init(rule: "per-user", scope: "fresh", bucket: rule.window.bucket(at: now())): CounterMap.Entry(spent: GCounter(slots: ["c": 1]))])
    }
    let holds = Holds()
    let stop = NIOLockedValueBox(false)
    let replication = Thread {
        var replicator = Replicator(seed: 1)
        var nextRound = now() + 500
        while !stop.withLockedValue({ $0 }) {
            let t = now()
            if mode == .whole {
                // Earlier, a new peer got every entry in one hold of the lock.
                _ = held(engine, holds, "delta tick") { e in e.withCounters { replicator.tick(now: t, counters: &$0, peers: ["b"]) } }
            } else {
                var later = Replicator.Later()
                _ = held(engine, holds, "delta tick") { e in e.withCounters { replicator.tick(now: t, counters: &$0, peers: ["b"], later: &later) } }
                if !later.whole.isEmpty {
                    // As the shell does: every entry, a frame at a time.
                    var position: Int? = 0
                    while let start = position {
                        let (entries, next) = held(engine, holds, "a frame of entries") { e in
                            e.withCounters { $0.entries(ofRule: "per-user", from: start, count: 500) }
                        }
                        position = next
                        _ = CountersCodec.encode(entries)
                    }
                }
            }
            if mode != .none && t >= nextRound {
                nextRound = t + 2_000
                let theirs = ["per-user": UInt64(0)]
                replicator.needsDigests = false
                if mode == .built {
                    var ours = held(engine, holds, "digests") { e in e.withCounters { $0.digests() } }
                    if ours == nil {
                        // The first time, over the whole table a frame at a time (as the shell does).
                        let since = held(engine, holds, "digests: begin") { e in e.withCounters { $0.beginDigests() } }
                        var position: Int? = 0
                        while let start = position {
                            position = held(engine, holds, "digests: a frame") { e in e.withCounters { $0.digestRule("per-user", from: start, count: 500) } }
                            // A pause between steps, as the shell makes: a mutex is not fair, and
                            // a thread that takes it back at once would starve admission.
                            usleep(100)
                        }
                        held(engine, holds, "digests: end") { e in e.withCounters { $0.endDigests(since: since) } }
                        ours = held(engine, holds, "digests") { e in e.withCounters { $0.digests() } }
                    }
                    let differing = Replicator.differing(theirs: theirs, ours: ours ?? [:])
                    for rule in differing {
                        var position: Int? = 0
                        while let start = position {
                            let (entries, next) = held(engine, holds, "a frame of entries") { e in
                                e.withCounters { $0.entries(ofRule: rule, from: start, count: 500) }
                            }
                            position = next
                            _ = CountersCodec.encode(entries)
                        }
                    }
                } else {
                    let frames = held(engine, holds, "digest and answer in one hold") { e in
                        e.withCounters { c -> [Frame] in
                            let ours = CountersCodec.digest(c)
                            let differing = Replicator.differing(theirs: theirs, ours: ours)
                            return Replicator.frames(c.entries.filter { differing.contains($0.key.rule) })
                        }
                    }
                    _ = frames.count
                }
                for frame in dump {
                    let entries = try! CountersCodec.decode(frame.payload)
                    _ = held(engine, holds, "merge a frame") { $0.merge(entries) }
                }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }
    replication.start()
    var samples: [Duration] = []
    samples.reserveCapacity(2_000_000)
    let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    var i = 0
    let begun = ContinuousClock.now
    var done = 0.0
    while ContinuousClock.now < end {
        if rate > 0 {
            // Paced: a node's admissions arrive spread out, not back to back.
            done += 1
            let due = begun + .nanoseconds(Int64(done / rate * 1e9))
            while ContinuousClock.now < due {}
        }
        i = (i &* 1_103_515_245 &+ 12_345) & 0x7fff_ffff
        let r = request(i % scopes)
        let start = ContinuousClock.now
        let t = now()
        let decision = engine.withLockedValue { $0.admit(r, estimate: LimitAmounts(costNanos: 100), now: t) }
        if case .admit(let reservation) = decision {
            engine.withLockedValue { _ = $0.settle(reservation.id, actual: LimitAmounts(costNanos: 90)) }
        }
        samples.append(ContinuousClock.now - start)
    }
    stop.withLockedValue { $0 = true }
    while !replication.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    samples.sort()
    func p(_ q: Double) -> String { ms(samples[min(samples.count - 1, Int(Double(samples.count) * q))]) }
    print("| \(mode.rawValue) | \(samples.count) | \(p(0.5)) | \(p(0.99)) | \(p(0.999)) | \(ms(samples.last!)) | \(holds.report) |")
}

print("| case | admissions | p50 | p99 | p99.9 | max | longest hold of each replication step |")
print("|---|---:|---:|---:|---:|---:|---|")
for mode in [Mode.none, .built, .whole] { run(mode) }
