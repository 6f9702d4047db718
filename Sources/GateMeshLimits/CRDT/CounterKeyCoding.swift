import GateMeshCore

/// A counter's key (its rule, scope value and bucket) and its rights, on the wire and in the
/// journal: one form for the counters and rights frames and the reservation journal.
extension BinaryWriter {
    public mutating func counterKey(_ key: CounterMap.Key) {
        string(key.rule)
        string(key.scope)
        int(key.bucket)
    }

    /// Rights: the grants (from, to, amount), then the used, refunded and returned counts per
    /// holder, then the leases (from, to, until). One form for the counters frames and the journal.
    private mutating func counts(_ counts: [String: Int64]) {
        uint(UInt64(counts.count))
        for (holder, v) in counts {
            string(holder)
            int(v)
        }
    }

    public mutating func rights(_ r: RightsEntry) {
        uint(UInt64(r.granted.count))
        for (pair, v) in r.granted {
            string(pair.from)
            string(pair.to)
            int(v)
        }
        counts(r.used)
        counts(r.refunded)
        counts(r.returned)
        uint(UInt64(r.leases.count))
        for (pair, until) in r.leases {
            string(pair.from)
            string(pair.to)
            int(until)
        }
    }
}

extension BinaryReader {
    /// `maxScope` bounds the scope value's bytes (a scope joins several request values).
    public mutating func counterKey(maxScope: Int = 4096) throws(DecodeError) -> CounterMap.Key {
        CounterMap.Key(rule: try string(), scope: try string(max: maxScope), bucket: try int())
    }

    /// `maxSlots` bounds each figure's count of holders or pairs.
    public mutating func rights(maxSlots: Int) throws(DecodeError) -> RightsEntry {
        var granted: [RightsEntry.Pair: Int64] = [:]
        for _ in 0..<(try count(max: maxSlots)) {
            let pair = RightsEntry.Pair(from: try string(), to: try string())
            granted[pair] = try nonNegative()
        }
        var counts: [[String: Int64]] = []
        for _ in 0..<3 {
            var c: [String: Int64] = [:]
            for _ in 0..<(try count(max: maxSlots)) {
                let holder = try string()
                c[holder] = try nonNegative()
            }
            counts.append(c)
        }
        var leases: [RightsEntry.Pair: Int64] = [:]
        for _ in 0..<(try count(max: maxSlots)) {
            let pair = RightsEntry.Pair(from: try string(), to: try string())
            leases[pair] = try int()
        }
        return RightsEntry(granted: granted, used: counts[0], refunded: counts[1], returned: counts[2], leases: leases)
    }

    private mutating func nonNegative() throws(DecodeError) -> Int64 {
        let v = try int()
        guard v >= 0 else { throw DecodeError("a negative count of rights") }
        return v
    }
}
