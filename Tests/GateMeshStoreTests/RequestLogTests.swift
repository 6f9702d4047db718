import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import Logging
import ServiceLifecycle
import Testing

/// A class so that `deinit` removes the data directories each test made.
@Suite final class RequestLogTests {
    private var directories: [String] = []

    deinit {
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }

    func makeLog(_ configure: (inout RequestLog.Configuration) -> Void = { _ in }) throws -> RequestLog {
        let dir = NSTemporaryDirectory() + "gatemesh-log-test-\(UUID().uuidString)"
        directories.append(dir)
        let store = try NodeStore(dataDir: dir)
        var configuration = RequestLog.Configuration()
        configure(&configuration)
        return try RequestLog(store: store, configuration: configuration)
    }

    func record(_ i: Int, ts: Int64 = 1_795_000_000_000, provider: String = "openai", team: String = "red",
                duration: Int = 10, cost: Int64 = 1000) -> RequestRecord {
        var metadata = RequestMetadata()
        metadata.entries = [("team", .string(team)), ("n", .number(String(i)))]
        return RequestRecord(
            logID: UUIDv7.make(unixMillis: UInt64(ts + Int64(i)), randomHigh: 0, randomLow: UInt64(i)), node: "n1", gateway: "default",
            provider: provider, requestedModel: "gpt-4o-mini", servedModel: "gpt-4o-mini", pricedAs: "openai/gpt-4o-mini",
            method: "POST", path: "/chat/completions", status: i % 5 == 0 ? 500 : 200, startedAtMs: ts + Int64(i), durationMs: duration,
            usage: TokenUsage(input: i, output: 2 * i), cost: Money(nanos: cost), metadata: metadata,
            requestBody: i == 1 ? Array("{\"a\":1}".utf8) : nil)
    }

    /// An alert is recorded once, listed until the webhook acknowledges it, and kept as fired.
    @Test func firedAlertsAreKeptUntilDeliveredAndRecordedOnce() async throws {
        let alerts = try makeLog().alerts
        try await alerts.record(rule: "b", scope: "", window: 7, permille: 500, ts: 1_000, body: "{}")
        try await alerts.record(rule: "b", scope: "", window: 7, permille: 500, ts: 2_000, body: "{}")
        try await alerts.record(rule: "b", scope: "", window: 7, permille: 800, ts: 3_000, body: "{}", deliveredTs: 3_000)
        #expect(try alerts.undelivered().map(\.permille) == [500])
        await alerts.markDelivered(rule: "b", scope: "", window: 7, permille: 500, ts: 4_000)
        #expect(try alerts.undelivered().isEmpty)
        #expect(try alerts.fired(sinceTs: 0).map(\.permille).sorted() == [500, 800])
        #expect(try alerts.fired(sinceTs: 2_500).map(\.permille) == [800])
    }

    @Test func rowsAreWrittenInBatchesAndReadBackNewestFirst() async throws {
        let log = try makeLog()
        for i in 1...25 { #expect(log.append(record(i))) }
        await log.flushQueued()
        #expect(log.writtenRows == 25)
        let first = try await log.page(LogFilter(), cursor: nil, limit: 10)
        #expect(first.records.map { $0.usage.input } == Array((16...25).reversed()))
        let second = try await log.page(LogFilter(), cursor: first.nextCursor, limit: 10)
        let third = try await log.page(LogFilter(), cursor: second.nextCursor, limit: 10)
        #expect(third.records.count == 5 && third.nextCursor == nil)
        let one = try #require(try await log.record(id: record(1).logID))
        #expect(one.requestBody == Array("{\"a\":1}".utf8))
        #expect(one.metadata.text("team") == "red" && one.cost == Money(nanos: 1000))
    }

    /// A stand-in for the limits: slot values and a version, and what the writer acknowledged.
    final class FakeSpend: SpendSource, @unchecked Sendable {
        let lock = NSLock()
        var slots: [LimitCharge] = []
        var version: UInt64 = 0
        var acknowledged: UInt64 = 0
        var settled: [UInt64] = []
        var mark: SpendBatchMark?
        var committedMarks: [SpendBatchMark] = []
        func prepare(_ settlements: [PendingSettlement]) -> (slots: [LimitCharge], version: UInt64, mark: SpendBatchMark?) {
            lock.lock()
            defer { lock.unlock() }
            return (slots, version, mark)
        }
        func commit(_ settlements: [PendingSettlement], version: UInt64?, mark: SpendBatchMark?) {
            lock.lock()
            settled += settlements.map(\.reservation)
            if let version {
                acknowledged = version
                slots = []
            }
            if let mark { committedMarks.append(mark) }
            self.mark = nil
            lock.unlock()
        }
        func set(_ new: [LimitCharge], version v: UInt64) {
            lock.lock()
            slots = new
            version = v
            lock.unlock()
        }
    }

    @Test func theNodesSpendIsSavedWithOrWithoutRowsAsAbsoluteSlotsThatNeverGoBack() async throws {
        let log = try makeLog()
        let spend = FakeSpend()
        log.persistSpend(from: spend)
        func charge(_ amount: Int64, scope: String = "") -> LimitCharge {
            LimitCharge(node: "n1", rule: "daily", scope: scope, bucket: 7, amount: amount)
        }
        // Without any row (logging off, or rows dropped), the spend is still written.
        spend.set([charge(5), charge(2, scope: "team=red")], version: 10)
        await log.flushQueued()
        #expect(spend.acknowledged == 10 && log.writtenRows == 0)
        // With rows; an older (smaller) figure for the same slot never lowers what is saved.
        spend.set([charge(9), charge(1, scope: "team=red")], version: 20)
        var settling = record(1)
        settling.settlement = PendingSettlement(reservation: 77, actual: LimitAmounts(costNanos: 5))
        #expect(log.append(settling))
        await log.flushQueued()
        #expect(spend.acknowledged == 20 && log.writtenRows == 1)
        #expect(spend.settled == [77], "settled after the batch was written")
        let saved = try log.limitSpend(sinceTs: 0).filter { $0.node == "n1" }.sorted { $0.scope < $1.scope }
        #expect(saved.map(\.amount) == [9, 2])
        #expect(try log.limitSpend(sinceTs: 0).allSatisfy { $0.node == "n1" })
    }

    @Test func theJournalsBatchMarkIsCommittedWithTheSpendEvenWithoutRows() async throws {
        let log = try makeLog()
        let spend = FakeSpend()
        log.persistSpend(from: spend)
        #expect(try log.journalMarks().committed == nil)
        spend.mark = SpendBatchMark(epoch: 3, batch: 7)
        await log.flushQueued()
        #expect(spend.committedMarks == [SpendBatchMark(epoch: 3, batch: 7)])
        #expect(try log.journalMarks().committed == SpendBatchMark(epoch: 3, batch: 7))
        try log.persistRecovery([LimitCharge(node: "n1", rule: "daily", scope: "", bucket: 7, amount: 42)], recoveredThrough: 3)
        #expect(try log.journalMarks().recoveredThrough == 3)
        #expect(try log.limitSpend(sinceTs: 0).map(\.amount) == [42])
    }

    @Test func eachRulesCountersAreDeletedPastTheirOwnCutoff() async throws {
        let log = try makeLog()
        try log.persistRecovery([LimitCharge(node: "n1", rule: "per-user-rpm", scope: "metadata.user=a", bucket: 7, amount: 1),
                                 LimitCharge(node: "n2", rule: "per-user-rpm", scope: "metadata.user=b", bucket: 7, amount: 2),
                                 LimitCharge(node: "n1", rule: "monthly", scope: "", bucket: 7, amount: 3)], recoveredThrough: 1)
        let later = Int64(Date().timeIntervalSince1970 * 1000) + 60_000
        // The rate limit's cutoff has passed its rows; the budget's has not, nor the longest window's.
        await log.deleteLimitCharges(before: 0, rules: ["per-user-rpm": later, "monthly": 0])
        #expect(try log.limitSpend(sinceTs: 0).map(\.rule) == ["monthly"])
        await log.deleteLimitCharges(before: later)
        #expect(try log.limitSpend(sinceTs: 0).isEmpty)
    }

    @Test func aFullQueueDropsAndCountsInsteadOfWaiting() throws {
        let log = try makeLog { $0.queueCapacity = 3 }
        #expect((1...5).map { log.append(record($0)) } == [true, true, true, false, false])
        #expect(log.droppedRows == 2 && log.queuedRows == 3)
    }

    @Test func filtersByStatusClassProviderAndMetadata() async throws {
        let log = try makeLog()
        for i in 1...10 { log.append(record(i, provider: i <= 4 ? "anthropic" : "openai", team: i % 2 == 0 ? "blue" : "red")) }
        await log.flushQueued()
        var f = LogFilter()
        f.statusClass = 5
        #expect(try await log.page(f, cursor: nil, limit: 100).records.count == 2)
        f = LogFilter()
        f.provider = "anthropic"
        f.metadataKey = "team"
        f.metadataValue = "blue"
        #expect(try await log.page(f, cursor: nil, limit: 100).records.map { $0.usage.input } == [4, 2])
        f = LogFilter()
        f.metadataKey = "n"
        f.metadataValue = "7"
        #expect(try await log.page(f, cursor: nil, limit: 100).records.count == 1)
    }

    @Test func metadataFiltersCompareTheJSONTextOfNumbersAndBooleans() async throws {
        let log = try makeLog()
        for (i, vip) in [(1, true), (2, false), (3, true)] {
            var r = record(i)
            r.metadata.entries = [("vip", .bool(vip)), ("score", .number(i == 1 ? "12.50" : "7"))]
            log.append(r)
        }
        await log.flushQueued()
        var f = LogFilter()
        f.metadataKey = "vip"
        f.metadataValue = "true"
        #expect(try await log.page(f, cursor: nil, limit: 10).records.count == 2)
        f.metadataKey = "score"
        f.metadataValue = "12.50"
        #expect(try await log.page(f, cursor: nil, limit: 10).records.count == 1)
        let groups = try await log.analytics(LogFilter(), groupBy: .metadata("vip"), stepMs: 60_000).groups
        #expect(Set(groups.compactMap(\.key)) == ["true", "false"])
    }

    @Test func analyticsTotalsGroupsSeriesAndPercentiles() async throws {
        let log = try makeLog()
        for i in 1...20 {
            log.append(record(i, ts: 1_795_000_000_000 + Int64(i / 10) * 60_000, team: i <= 15 ? "red" : "blue", duration: i * 10, cost: 7))
        }
        await log.flushQueued()
        let result = try await log.analytics(LogFilter(), groupBy: .metadata("team"), stepMs: 60_000)
        #expect(result.totals.requests == 20 && result.totals.errors == 4)
        #expect(result.totals.cost == Money(nanos: 140))
        #expect(result.totals.inputTokens == 210 && result.totals.outputTokens == 420)
        #expect(result.totals.latencyP50Ms == 100 && result.totals.latencyP95Ms == 190)
        let red = try #require(result.groups.first { $0.key == "red" })
        #expect(red.totals.requests == 15 && red.series.count == 2)
        #expect(red.series.map(\.figures.requests) == [9, 6])
    }

    @Test func retentionDeletesByAgeAndByCount() async throws {
        let log = try makeLog { $0.retention = .seconds(3600); $0.maxRows = 5 }
        let now = Date()
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        for i in 1...3 { log.append(record(i, ts: nowMs - 7_200_000)) }
        for i in 4...12 { log.append(record(i, ts: nowMs)) }
        await log.flushQueued()
        await log.applyRetention(now: now)
        let left = try await log.page(LogFilter(), cursor: nil, limit: 100).records.map { $0.usage.input }
        #expect(left == [12, 11, 10, 9, 8])
    }

    @Test func gracefulShutdownWritesWhatIsQueued() async throws {
        let log = try makeLog { $0.flushInterval = .seconds(60); $0.batchSize = 1000 }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [log], logger: logger)
        let running = Task { try await group.run() }
        for i in 1...7 { log.append(record(i)) }
        try await Task.sleep(for: .milliseconds(50))
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(log.writtenRows == 7 && log.queuedRows == 0)
    }
}
