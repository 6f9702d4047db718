import Foundation
import GateMeshCache
import GateMeshStore
import Testing

/// A class so that `deinit` removes the data directory.
@Suite final class CacheStoreTests {
    let directory = NSTemporaryDirectory() + "gatemesh-cache-test-\(UUID().uuidString)"

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func entry(_ gateway: String) -> CachedResponse {
        CachedResponse(gateway: gateway, provider: "openai", status: 200, headers: [.init(name: "content-type", value: "application/json")],
                       body: Array(#"{"ok":true}"#.utf8), chunkEnds: [11], streamed: false, createdAtMs: 1, expiresAtMs: 10_000,
                       costNanos: 5, servedModel: "m")
    }

    /// The WAL file is cut back after checkpoints, on every connection of the pool.
    @Test func theDatabaseIsInWALModeWithABoundedWALFile() throws {
        let store = try NodeStore(dataDir: directory)
        #expect(try store.journalMode() == "wal")
        #expect(try store.journalSizeLimit() == NodeStore.walSizeLimit)
    }

    @Test func aPutIsWrittenOnlyWhenStillWantedAndDeletesCountWhatWent() async throws {
        let disk = try CacheStore(store: NodeStore(dataDir: directory))
        try await disk.put("a", entry("g1"), if: { true })
        try await disk.put("b", entry("g1"), if: { false })  // a purge came in between: not written
        try await disk.put("c", entry("g2"), if: { true })
        #expect(await disk.get("a", now: 5)?.body == Array(#"{"ok":true}"#.utf8))
        #expect(await disk.get("b", now: 5) == nil)
        #expect(await disk.get("a", now: 10_001) == nil)  // expired
        #expect(try await disk.delete(gateway: "g1") == 1)
        #expect(try await disk.delete() == 1)
        #expect(await disk.get("c", now: 5) == nil)
    }
}
