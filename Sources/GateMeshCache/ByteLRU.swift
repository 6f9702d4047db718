/// A least-recently-used map bounded by the total size of its values in bytes, with an expiry time
/// per entry. Every operation is O(1) except `removeAll(where:)` and `removeExpired`, which walk the
/// entries. Time is passed in (Unix ms); nothing here reads a clock. Not thread-safe: the shell
/// holds it behind a lock.
public struct ByteLRU<Value: Sendable>: Sendable {
    struct Node: Sendable {
        var key: String
        var value: Value?
        var size: Int
        var expiresAt: Int64
        var prev: Int
        var next: Int
    }

    public private(set) var capacityBytes: Int
    public private(set) var totalBytes = 0
    private var nodes: [Node] = []
    private var free: [Int] = []
    private var index: [String: Int] = [:]
    /// Most recently used; -1 when empty.
    private var head = -1
    /// Least recently used; -1 when empty.
    private var tail = -1
    public private(set) var evictions = 0

    public init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
    }

    public var count: Int { index.count }

    /// Changes the capacity (a config reload); a smaller one evicts least recently used entries
    /// until the total fits.
    public mutating func setCapacity(_ bytes: Int) {
        capacityBytes = bytes
        while totalBytes > capacityBytes, tail >= 0 {
            remove(at: tail)
            evictions += 1
        }
    }

    /// The value for `key` if present and not expired at `now`; marks it most recently used.
    /// An expired entry is removed.
    public mutating func get(_ key: String, now: Int64) -> Value? {
        guard let i = index[key] else { return nil }
        if nodes[i].expiresAt <= now {
            remove(at: i)
            return nil
        }
        moveToFront(i)
        return nodes[i].value
    }

    /// Whether `key` is present and unexpired, without touching its recency.
    public func contains(_ key: String, now: Int64) -> Bool {
        guard let i = index[key] else { return false }
        return nodes[i].expiresAt > now
    }

    /// Inserts or replaces; evicts least recently used entries until the total fits. A value larger
    /// than the whole capacity is not stored (returns false).
    @discardableResult
    public mutating func put(_ key: String, _ value: Value, size: Int, expiresAt: Int64) -> Bool {
        if let i = index[key] { remove(at: i) }
        guard size <= capacityBytes else { return false }
        while totalBytes + size > capacityBytes, tail >= 0 {
            remove(at: tail)
            evictions += 1
        }
        let node = Node(key: key, value: value, size: size, expiresAt: expiresAt, prev: -1, next: head)
        let i: Int
        if let reused = free.popLast() {
            nodes[reused] = node
            i = reused
        } else {
            nodes.append(node)
            i = nodes.count - 1
        }
        if head >= 0 { nodes[head].prev = i }
        head = i
        if tail < 0 { tail = i }
        index[key] = i
        totalBytes += size
        return true
    }

    @discardableResult
    public mutating func remove(_ key: String) -> Bool {
        guard let i = index[key] else { return false }
        remove(at: i)
        return true
    }

    /// Removes every entry whose key and value satisfy `predicate`; returns how many.
    @discardableResult
    public mutating func removeAll(where predicate: (String, Value) -> Bool) -> Int {
        let doomed = index.values.filter { i in nodes[i].value.map { predicate(nodes[i].key, $0) } ?? false }
        for i in doomed { remove(at: i) }
        return doomed.count
    }

    /// Removes entries expired at `now`; returns how many.
    @discardableResult
    public mutating func removeExpired(now: Int64) -> Int {
        let doomed = index.values.filter { nodes[$0].expiresAt <= now }
        for i in doomed { remove(at: i) }
        return doomed.count
    }

    /// Keys from most to least recently used (for tests and reports).
    public var keysByRecency: [String] {
        var out: [String] = []
        var i = head
        while i >= 0 {
            out.append(nodes[i].key)
            i = nodes[i].next
        }
        return out
    }

    private mutating func moveToFront(_ i: Int) {
        guard head != i else { return }
        unlink(i)
        nodes[i].prev = -1
        nodes[i].next = head
        if head >= 0 { nodes[head].prev = i }
        head = i
        if tail < 0 { tail = i }
    }

    private mutating func unlink(_ i: Int) {
        let p = nodes[i].prev, n = nodes[i].next
        if p >= 0 { nodes[p].next = n } else { head = n }
        if n >= 0 { nodes[n].prev = p } else { tail = p }
    }

    private mutating func remove(at i: Int) {
        unlink(i)
        index[nodes[i].key] = nil
        totalBytes -= nodes[i].size
        nodes[i].value = nil
        nodes[i].key = ""
        free.append(i)
    }
}
