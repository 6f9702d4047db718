/// What waits to be written on one peer link, once the socket takes no more (its send buffer and
/// the channel's high-water mark are full). Two classes: **urgent** frames (membership probes,
/// acks and gossip, and the rights round trip that requests wait on) go out before any **bulk**
/// frame (counter deltas and whole tables, digests, cache entries, rules) that waits, so a probe
/// never queues behind megabytes of replication, and a slow link does not look like a dead node.
/// Both are bounded: past `maxUrgent` frames or `maxBulkBytes` a new frame is dropped (and
/// counted; membership repairs itself, and the shell resets the peer's replication, so it is sent
/// every entry once the link drains), and a counter delta that would wait is not made at all (the
/// replicator skips a backlogged peer, whose next delta then covers both: coalesced, not piled
/// up). Pure.
public struct PeerOutbox: Sendable {
    public var maxUrgent: Int
    public var maxBulkBytes: Int

    private var urgent = Fifo()
    private var bulk = Fifo()
    public private(set) var bulkBytes = 0
    public private(set) var dropped = 0

    public init(maxUrgent: Int = 1_024, maxBulkBytes: Int = 8 << 20) {
        self.maxUrgent = maxUrgent
        self.maxBulkBytes = maxBulkBytes
    }

    /// Queues a frame's bytes; false when the queue is full and the frame was dropped.
    @discardableResult
    public mutating func push(_ bytes: [UInt8], urgent isUrgent: Bool) -> Bool {
        if isUrgent {
            guard urgent.count < maxUrgent else { dropped += 1; return false }
            urgent.push(bytes)
        } else {
            // One frame larger than the whole bound still goes when nothing else waits.
            guard bulk.count == 0 || bulkBytes + bytes.count <= maxBulkBytes else { dropped += 1; return false }
            bulk.push(bytes)
            bulkBytes += bytes.count
        }
        return true
    }

    /// The next frame to write: urgent ones first, each class in the order queued.
    public mutating func pop() -> [UInt8]? {
        if let u = urgent.pop() { return u }
        guard let b = bulk.pop() else { return nil }
        bulkBytes -= b.count
        return b
    }

    public var isEmpty: Bool { urgent.count == 0 && bulk.count == 0 }
    public var count: Int { urgent.count + bulk.count }

    /// Drops everything (the link closed).
    public mutating func removeAll() {
        urgent = Fifo()
        bulk = Fifo()
        bulkBytes = 0
    }

    /// A FIFO on an array with a moving head, compacted when half of it is spent.
    struct Fifo: Sendable {
        private var items: [[UInt8]] = []
        private var head = 0
        var count: Int { items.count - head }
        mutating func push(_ x: [UInt8]) { items.append(x) }
        mutating func pop() -> [UInt8]? {
            guard head < items.count else { return nil }
            let x = items[head]
            items[head] = []
            head += 1
            if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return x
        }
    }
}
