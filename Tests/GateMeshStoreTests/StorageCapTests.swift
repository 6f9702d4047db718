import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshStore
import Synchronization
import Testing

/// `storage.max_bytes`: the database file and its WAL stay under the cap while rows keep coming,
/// the oldest rows going first and their pages going back to the file system.
@Suite final class StorageCapTests {
    private var directories: [String] = []

    deinit {
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }

    func makeLog(maxBytes: Int?) throws -> (RequestLog, NodeStore) {
        let dir = NSTemporaryDirectory() + "gatemesh-cap-test-\(UUID().uuidString)"
        directories.append(dir)
        let store = try NodeStore(dataDir: dir)
        var configuration = RequestLog.Configuration()
        configuration.maxBytes = maxBytes
        return (try RequestLog(store: store, configuration: configuration), store)
    }

    /// A row carrying `bodyBytes` of request and of response body.
    func record(_ i: Int, bodyBytes: Int) -> RequestRecord {
        RequestRecord(
            logID: UUIDv7.make(unixMillis: UInt64(1_795_000_000_000 + i), randomHigh: 0, randomLow: UInt64(i)), node: "n1", gateway: "default",
            provider: "openai", requestedModel: "gpt-4o-mini", servedModel: nil, pricedAs: nil, method: "POST", path: "/chat/completions",
            status: 200, startedAtMs: 1_795_000_000_000 + Int64(i), durationMs: 10, usage: TokenUsage(input: 1, output: 1),
            cost: nil, metadata: RequestMetadata(),
            requestBody: [UInt8](repeating: UInt8(ascii: "a") + UInt8(i % 26), count: bodyBytes),
            responseBody: [UInt8](repeating: UInt8(ascii: "z"), count: bodyBytes))
    }

    @Test func theArithmeticKeepsTheWALAndTheFileApart() {
        let cap = 1_000_000
        #expect(StorageCap.walBudget(cap) == 100_000 && StorageCap.fileCeiling(cap) == 900_000 && StorageCap.target(cap) == 810_000)
        #expect(StorageCap.walBytes(17_000) == 17_000 + 100 + 65_536 + 32)
        let size = NodeStore.Size(fileBytes: 880_000, freeBytes: 20_000, walBytes: 0)
        // Free pages are taken first; past them the file grows.
        #expect(!StorageCap.mustMakeRoom(size: size, incoming: 40_000, cap: cap))
        #expect(StorageCap.mustMakeRoom(size: size, incoming: 40_001, cap: cap))
        // In use 860,000; with 30,000 incoming, down to 810,000.
        #expect(StorageCap.bytesToDelete(size: size, incoming: 30_000, cap: cap) == 80_000)
        #expect(!StorageCap.mustShrink(size: size, cap: cap))
        #expect(StorageCap.mustShrink(size: NodeStore.Size(fileBytes: 900_001), cap: cap))
        #expect(StorageCap.stored(1024) == 1024 && StorageCap.stored(1025) == 4096 && StorageCap.stored(8_185) == 12_288)
    }

    /// Rows go in transactions that fit the WAL budget (100,000 of a 1,000,000 cap: 34,000 of rows
    /// with the WAL's allowances); a row that alone would not is left out.
    @Test func rowsAreWrittenInTransactionsThatFitTheWAL() {
        let (ranges, tooLarge) = StorageCap.transactions([10_000, 20_000, 5_000, 200_000, 30_000, 1_000], cap: 1_000_000)
        #expect(ranges == [0..<2, 2..<4, 4..<6])
        #expect(tooLarge == [3])
        #expect(StorageCap.transactions([], cap: 1_000_000).ranges.isEmpty)
    }

    /// 27 MiB of rows in batches of 1 to 15, over six times the cap: the file and its WAL, watched
    /// from another thread while they are written, never pass it.
    @Test func theFileAndItsWALStayUnderTheCapAndKeepTheNewestRows() async throws {
        let cap = 4 << 20
        let (log, store) = try makeLog(maxBytes: cap)
        #expect(try store.canReclaim())
        let path = store.path
        let stop = Atomic<Bool>(false), largest = Atomic<Int>(0)
        let watcher = Thread {
            func size(_ p: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0 }
            while !stop.load(ordering: .relaxed) {
                let both = size(path) + size(path + "-wal")
                if both > largest.load(ordering: .relaxed) { largest.store(both, ordering: .relaxed) }
                usleep(100)
            }
        }
        watcher.start()
        var n = 0
        for batch in 0..<40 {
            for _ in 0..<(batch % 15 + 1) {
                log.append(record(n, bodyBytes: 41_000))
                n += 1
            }
            await log.flushQueued()
        }
        stop.store(true, ordering: .relaxed)
        #expect(largest.load(ordering: .relaxed) <= cap)
        #expect(try store.size().onDisk <= cap)
        let figures = log.diskFigures
        #expect(figures.deletedForSpace > 0)
        #expect(figures.droppedForSpace == 0 && figures.failedWrites == 0)
        let newest = try await log.page(LogFilter(), cursor: nil, limit: 1).records.first
        #expect(newest?.logID == record(n - 1, bodyBytes: 0).logID)
        let kept = try await log.page(LogFilter(), cursor: nil, limit: 1000).records.count
        #expect(kept > 20 && kept + figures.deletedForSpace == n)
    }

    /// A row that cannot fit even in an empty log is not written; its batch's other rows are
    /// counted with it, and nothing fails.
    @Test func rowsThatCannotFitAreDroppedAndCounted() async throws {
        let (log, store) = try makeLog(maxBytes: 1 << 20)
        log.append(record(1, bodyBytes: 800_000))
        await log.flushQueued()
        #expect(log.diskFigures.droppedForSpace == 1)
        #expect(try await log.page(LogFilter(), cursor: nil, limit: 10).records.isEmpty)
        #expect(try store.size().onDisk <= 1 << 20)
    }
}
