import Foundation
import GateMeshAccounting
import Testing

/// Analytics that add up across nodes: sums, and latency histograms whose merged percentiles are
/// those of all the requests together.
@Suite struct AnalyticsTests {
    @Test func valuesUnderASecondAreExactAndLargerOnesKeepThreeDigits() {
        #expect(LatencyHistogram.rounded(0) == 0)
        #expect(LatencyHistogram.rounded(-5) == 0)
        #expect(LatencyHistogram.rounded(999) == 999)
        #expect(LatencyHistogram.rounded(1000) == 1000)
        #expect(LatencyHistogram.rounded(12_345) == 12_300)
        #expect(LatencyHistogram.rounded(12_350) == 12_400)
        #expect(LatencyHistogram.rounded(9_996) == 10_000)
        #expect(LatencyHistogram.rounded(3_600_000) == 3_600_000)
    }

    /// Three nodes' durations: the merged histogram's percentiles are the nearest-rank
    /// percentiles of all of them, where averaging the nodes' own would be far off.
    @Test func mergedPercentilesAreTheClustersNotAnAverage() {
        let nodes = [[5, 6, 7, 8], [100, 110, 120], [900, 950, 990, 995, 999]]
        var merged = LatencyHistogram()
        for durations in nodes {
            var h = LatencyHistogram()
            for d in durations { h.add(d) }
            merged.merge(h)
        }
        let all = nodes.flatMap { $0 }.sorted()
        for p in [0.01, 0.25, 0.5, 0.75, 0.95, 1.0] {
            let rank = max(1, Int((Double(all.count) * p).rounded(.up)))
            #expect(merged.percentile(p) == all[rank - 1], "p\(p)")
        }
        #expect(merged.total == 12)
        #expect(LatencyHistogram().percentile(0.5) == nil)
    }

    @Test func partialsMergeAndTravelAsJSON() throws {
        func row(_ cell: inout AnalyticsCell, ms: Int, status: Int = 200, cache: String? = nil) {
            cell.add(status: status, inputTokens: 10, outputTokens: 2, cacheReadTokens: 1, cacheWriteTokens: 0,
                     cost: Money(nanos: 1_500), saved: Money(nanos: cache == "HIT" ? 700 : 0), cacheStatus: cache, durationMs: ms)
        }
        var a = AnalyticsPartial(), b = AnalyticsPartial()
        a.add(group: "openai", bucket: 0) { row(&$0, ms: 10) }
        a.add(group: "openai", bucket: 60_000) { row(&$0, ms: 20, cache: "MISS") }
        b.add(group: "openai", bucket: 60_000) { row(&$0, ms: 30, cache: "HIT") }
        b.add(group: nil, bucket: 0) { row(&$0, ms: 4_321, status: 502) }
        let wire = try JSONDecoder().decode(AnalyticsPartial.self, from: JSONEncoder().encode(b))
        #expect(wire == b)
        a.merge(wire)
        let result = a.result
        #expect(result.totals.requests == 4)
        #expect(result.totals.errors == 1)
        #expect(result.totals.cost == Money(nanos: 6_000))
        #expect(result.totals.savedCost == Money(nanos: 700))
        #expect(result.totals.cacheHitRatio == 0.5)
        #expect(result.totals.latencyP50Ms == 20)
        #expect(result.totals.latencyP95Ms == 4_320)
        let openai = try #require(result.groups.first { $0.key == "openai" })
        #expect(openai.totals.requests == 3)
        #expect(openai.series.map(\.startMs) == [0, 60_000])
        #expect(openai.series[1].figures.requests == 2)
        #expect(openai.series[1].figures.latencyP50Ms == 20)
        #expect(result.groups.contains { $0.key == nil && $0.totals.requests == 1 })
    }

    @Test func aHostileHistogramIsRefused() {
        let bad = Data(#"{"t":[1,0,0,0,0,0,0,0,0,0,5,-3],"g":[]}"#.utf8)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(AnalyticsPartial.self, from: bad) }
        let huge = Data(#"{"t":[9223372036854775807,0,0,0,0,0,0,0,0,0],"g":[]}"#.utf8)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(AnalyticsPartial.self, from: huge) }
        let cut = Data(#"{"t":[1,0,0],"g":[]}"#.utf8)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(AnalyticsPartial.self, from: cut) }
    }
}
