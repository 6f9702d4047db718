import GateMeshCluster
import Testing

@Suite struct PeerOutboxTests {
    func frame(_ tag: UInt8, size: Int = 10) -> [UInt8] { [tag] + Array(repeating: 0, count: size - 1) }

    /// A probe queued behind any amount of bulk goes out first; each class keeps its order.
    @Test func urgentFramesOvertakeWaitingBulk() {
        var box = PeerOutbox()
        for i in 0..<200 { box.push(frame(UInt8(i), size: 1_000), urgent: false) }
        box.push(frame(250), urgent: true)
        box.push(frame(251), urgent: true)
        do { let f = box.pop(); #expect(f?.first == 250) }
        do { let f = box.pop(); #expect(f?.first == 251) }
        var order: [UInt8] = []
        while let f = box.pop() { order.append(f[0]) }
        #expect(order == (0..<200).map { UInt8($0) })
        #expect(box.isEmpty && box.bulkBytes == 0)
    }

    /// Both classes are bounded: what does not fit is dropped and counted, and urgent frames
    /// still fit when bulk is full.
    @Test func theQueuesAreBounded() {
        var box = PeerOutbox(maxUrgent: 3, maxBulkBytes: 100)
        do { let ok = box.push(frame(1, size: 60), urgent: false); #expect(ok) }
        do { let ok = box.push(frame(2, size: 40), urgent: false); #expect(ok) }
        do { let ok = box.push(frame(3, size: 1), urgent: false); #expect(!ok) }
        #expect(box.bulkBytes == 100)
        for i in 0..<3 { let ok = box.push(frame(UInt8(10 + i)), urgent: true); #expect(ok) }
        do { let ok = box.push(frame(13), urgent: true); #expect(!ok) }
        #expect(box.dropped == 2)
        // A single frame larger than the bound goes when nothing else waits.
        var empty = PeerOutbox(maxBulkBytes: 100)
        do { let ok = empty.push(frame(1, size: 500), urgent: false); #expect(ok) }
        do { let ok = empty.push(frame(2, size: 1), urgent: false); #expect(!ok) }
    }

    /// Many pushes and pops keep the order (the head is compacted along the way).
    @Test func longRunsKeepTheirOrder() {
        var box = PeerOutbox(maxUrgent: 10_000)
        var next: UInt32 = 0, expected: UInt32 = 0
        for round in 0..<100 {
            for _ in 0..<(round % 7 + 1) { box.push(withUnsafeBytes(of: next) { Array($0) }, urgent: true); next += 1 }
            for _ in 0..<(round % 5 + 1) {
                guard let f = box.pop() else { break }
                #expect(f.withUnsafeBytes { $0.load(as: UInt32.self) } == expected)
                expected += 1
            }
        }
        while let f = box.pop() {
            #expect(f.withUnsafeBytes { $0.load(as: UInt32.self) } == expected)
            expected += 1
        }
        #expect(expected == next)
    }
}
