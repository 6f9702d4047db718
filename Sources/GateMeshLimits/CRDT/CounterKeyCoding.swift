import GateMeshCore

/// A counter's key on the wire and in the journal: its rule, scope value and bucket. One form for
/// the counters and rights frames and the reservation journal.
extension BinaryWriter {
    public mutating func counterKey(_ key: CounterMap.Key) {
        string(key.rule)
        string(key.scope)
        int(key.bucket)
    }
}

extension BinaryReader {
    /// `maxScope` bounds the scope value's bytes (a scope joins several request values).
    public mutating func counterKey(maxScope: Int = 4096) throws(DecodeError) -> CounterMap.Key {
        CounterMap.Key(rule: try string(), scope: try string(max: maxScope), bucket: try int())
    }
}
