/// Request durations in milliseconds, counted by value: exact below 1,000 ms, and rounded to
/// three significant digits above (within 0.05 %: 12,345 ms counts as 12,300). Histograms add:
/// the sum of every node's histogram is the histogram of the whole cluster's requests, so a
/// percentile read from it is the cluster's percentile, not an average of the nodes' percentiles.
/// Its size is bounded by the distinct values (at most 1,000 below a second and 900 per decade
/// above), not by the number of requests. Pure.
public struct LatencyHistogram: Sendable, Equatable {
    /// Count per (rounded) value.
    public private(set) var counts: [Int: Int] = [:]
    public private(set) var total = 0

    public init() {}

    /// The value `ms` is counted as.
    public static func rounded(_ ms: Int) -> Int {
        guard ms >= 1000 else { return max(ms, 0) }
        var unit = 1
        while ms / unit >= 1000 { unit *= 10 }
        return (ms / unit + (ms % unit >= unit / 2 ? 1 : 0)) * unit
    }

    public mutating func add(_ ms: Int, count: Int = 1) {
        guard count > 0 else { return }
        counts[Self.rounded(ms), default: 0] += count
        total += count
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for (value, count) in other.counts { add(value, count: count) }
    }

    /// The nearest-rank percentile (`p` from 0 to 1): the smallest value at or below which at
    /// least `p` of the requests fall. Nil when empty.
    public func percentile(_ p: Double) -> Int? {
        guard total > 0 else { return nil }
        let rank = max(1, Int((Double(total) * p).rounded(.up)))
        var seen = 0
        for value in counts.keys.sorted() {
            seen += counts[value]!
            if seen >= rank { return value }
        }
        return counts.keys.max()
    }
}

/// What `/api/analytics` reports for one group or one time bucket.
public struct AnalyticsFigures: Sendable, Equatable {
    public var requests = 0
    public var errors = 0
    public var inputTokens = 0
    public var outputTokens = 0
    public var cacheReadTokens = 0
    public var cacheWriteTokens = 0
    public var cost = Money.zero
    public var savedCost = Money.zero
    public var cacheHits = 0
    public var cacheLookups = 0
    public var latencyP50Ms: Int?
    public var latencyP95Ms: Int?

    public init() {}

    public var cacheHitRatio: Double? { cacheLookups == 0 ? nil : Double(cacheHits) / Double(cacheLookups) }
}

/// Sums over log rows that add up across nodes: the figures without their percentiles, and the
/// latency histogram they come from.
public struct AnalyticsCell: Sendable, Equatable {
    public var figures = AnalyticsFigures()
    public var latency = LatencyHistogram()

    public init() {}

    /// One log row.
    public mutating func add(status: Int, inputTokens: Int, outputTokens: Int, cacheReadTokens: Int, cacheWriteTokens: Int,
                             cost: Money, saved: Money, cacheStatus: String?, durationMs: Int) {
        figures.requests += 1
        if status >= 400 { figures.errors += 1 }
        figures.inputTokens += inputTokens
        figures.outputTokens += outputTokens
        figures.cacheReadTokens += cacheReadTokens
        figures.cacheWriteTokens += cacheWriteTokens
        figures.cost += cost
        figures.savedCost += saved
        if cacheStatus == "HIT" || cacheStatus == "MISS" { figures.cacheLookups += 1 }
        if cacheStatus == "HIT" { figures.cacheHits += 1 }
        latency.add(durationMs)
    }

    public mutating func merge(_ other: AnalyticsCell) {
        figures.requests += other.figures.requests
        figures.errors += other.figures.errors
        figures.inputTokens += other.figures.inputTokens
        figures.outputTokens += other.figures.outputTokens
        figures.cacheReadTokens += other.figures.cacheReadTokens
        figures.cacheWriteTokens += other.figures.cacheWriteTokens
        figures.cost += other.figures.cost
        figures.savedCost += other.figures.savedCost
        figures.cacheHits += other.figures.cacheHits
        figures.cacheLookups += other.figures.cacheLookups
        latency.merge(other.latency)
    }

    /// The figures with their median and 95th percentile latency.
    public var final: AnalyticsFigures {
        var f = figures
        f.latencyP50Ms = latency.percentile(0.50)
        f.latencyP95Ms = latency.percentile(0.95)
        return f
    }
}

/// Analytics before percentiles are read: what one node answers for its own rows, and what the
/// asking node adds up over every node's answer (`merge`) before it reads the result (`result`).
public struct AnalyticsPartial: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public var totals = AnalyticsCell()
        /// By the bucket's start (Unix ms, a multiple of the step: the same buckets on every node).
        public var series: [Int64: AnalyticsCell] = [:]

        public init() {}
    }

    public var totals = AnalyticsCell()
    /// By the group's value (nil: no value, or no grouping).
    public var groups: [String?: Group] = [:]

    public init() {}

    /// One log row of group `key` in the bucket starting at `bucket`.
    public mutating func add(group key: String?, bucket: Int64, _ row: (inout AnalyticsCell) -> Void) {
        row(&totals)
        var group = groups[key] ?? Group()
        row(&group.totals)
        row(&group.series[bucket, default: AnalyticsCell()])
        groups[key] = group
    }

    public mutating func merge(_ other: AnalyticsPartial) {
        totals.merge(other.totals)
        for (key, theirs) in other.groups {
            var group = groups[key] ?? Group()
            group.totals.merge(theirs.totals)
            for (bucket, cell) in theirs.series { group.series[bucket, default: AnalyticsCell()].merge(cell) }
            groups[key] = group
        }
    }

    /// The figures with their percentiles; groups by cost, then requests, the larger first.
    public var result: AnalyticsResult {
        let groups = groups.map { key, group in
            AnalyticsResult.Group(key: key, totals: group.totals.final,
                                  series: group.series.keys.sorted().map { ($0, group.series[$0]!.final) })
        }.sorted { ($0.totals.cost, $0.totals.requests, $1.key ?? "") > ($1.totals.cost, $1.totals.requests, $0.key ?? "") }
        return AnalyticsResult(totals: totals.final, groups: groups)
    }
}

public struct AnalyticsResult: Sendable {
    public struct Group: Sendable {
        /// The group's value (a provider, model, gateway or metadata value); nil for "none".
        public var key: String?
        public var totals: AnalyticsFigures
        /// One entry per step that had traffic, keyed by the bucket's start (Unix ms).
        public var series: [(startMs: Int64, figures: AnalyticsFigures)]
    }

    public var totals: AnalyticsFigures
    public var groups: [Group]
}

// MARK: - On the peer link

/// A node's partial answer travels to the asking node as JSON: each cell as one array of its ten
/// sums followed by its histogram's value and count pairs, each group as its key, totals and
/// bucket and cell pairs.
extension AnalyticsCell: Codable {
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        let f = figures
        for n in [f.requests, f.errors, f.inputTokens, f.outputTokens, f.cacheReadTokens, f.cacheWriteTokens] { try c.encode(n) }
        try c.encode(f.cost.nanos)
        try c.encode(f.savedCost.nanos)
        try c.encode(f.cacheHits)
        try c.encode(f.cacheLookups)
        for (value, count) in latency.counts.sorted(by: { $0.key < $1.key }) {
            try c.encode(value)
            try c.encode(count)
        }
    }

    /// The largest figure a peer's part may hold: sums of up to 128 nodes' parts stay far from
    /// 64-bit overflow (a merge must never trap on what a peer sent).
    static let maxFigure = 1 << 56

    public init(from decoder: any Decoder) throws {
        var c = try decoder.unkeyedContainer()
        func figure() throws -> Int {
            let n = try c.decode(Int.self)
            guard (0...AnalyticsCell.maxFigure).contains(n) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "a figure must be from 0 to 2^56, got \(n)")
            }
            return n
        }
        self.init()
        figures.requests = try figure()
        figures.errors = try figure()
        figures.inputTokens = try figure()
        figures.outputTokens = try figure()
        figures.cacheReadTokens = try figure()
        figures.cacheWriteTokens = try figure()
        figures.cost = Money(nanos: Int64(try figure()))
        figures.savedCost = Money(nanos: Int64(try figure()))
        figures.cacheHits = try figure()
        figures.cacheLookups = try figure()
        while !c.isAtEnd {
            let value = try figure(), count = try figure()
            guard count > 0 else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "a latency count must be positive") }
            latency.add(value, count: count)
        }
    }
}

extension AnalyticsPartial: Codable {
    private enum Keys: String, CodingKey { case totals = "t", groups = "g" }
    private enum GroupKeys: String, CodingKey { case key = "k", totals = "t", series = "s" }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(totals, forKey: .totals)
        var list = c.nestedUnkeyedContainer(forKey: .groups)
        for (key, group) in groups {
            var g = list.nestedContainer(keyedBy: GroupKeys.self)
            try g.encode(key, forKey: .key)
            try g.encode(group.totals, forKey: .totals)
            var series = g.nestedUnkeyedContainer(forKey: .series)
            for (bucket, cell) in group.series {
                try series.encode(bucket)
                try series.encode(cell)
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init()
        totals = try c.decode(AnalyticsCell.self, forKey: .totals)
        var list = try c.nestedUnkeyedContainer(forKey: .groups)
        while !list.isAtEnd {
            let g = try list.nestedContainer(keyedBy: GroupKeys.self)
            var group = Group()
            group.totals = try g.decode(AnalyticsCell.self, forKey: .totals)
            var series = try g.nestedUnkeyedContainer(forKey: .series)
            while !series.isAtEnd {
                let bucket = try series.decode(Int64.self)
                group.series[bucket] = try series.decode(AnalyticsCell.self)
            }
            groups[try g.decodeIfPresent(String.self, forKey: .key)] = group
        }
    }
}
