import Foundation
import GateMeshCache
import GateMeshCore
import GRDB

/// The response cache on disk: one row per key in `response_cache`, so a restart keeps the cache.
/// The in-memory LRU in front of it (the server's `ResponseCache`) is filled from here at start and
/// on a memory miss. Writes happen after the answer was sent, never while a client waits.
public final class CacheStore: Sendable {
    let pool: DatabasePool

    public init(store: NodeStore) throws(StoreError) {
        pool = store.pool
        do {
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1-response-cache") { db in
                try db.execute(sql: """
                    CREATE TABLE response_cache (
                        key TEXT PRIMARY KEY NOT NULL, gateway TEXT NOT NULL, provider TEXT NOT NULL, status INTEGER NOT NULL,
                        headers TEXT NOT NULL, body BLOB NOT NULL, chunk_ends TEXT NOT NULL, streamed INTEGER NOT NULL,
                        created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, cost_nanos INTEGER, served_model TEXT,
                        size INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX response_cache_expires ON response_cache(expires_ms);
                    CREATE INDEX response_cache_created ON response_cache(created_ms);
                    CREATE INDEX response_cache_gateway ON response_cache(gateway);
                    """)
            }
            try migrator.migrate(pool)
        } catch {
            throw StoreError(message: "cannot create the response cache in '\(store.path)': \(error)")
        }
    }

    /// Unexpired entries, newest first, until `maxBytes` (for filling memory at start).
    public func load(maxBytes: Int, now: Int64) throws -> [(key: String, response: CachedResponse)] {
        try pool.read { db in
            var out: [(key: String, response: CachedResponse)] = []
            var total = 0
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM response_cache WHERE expires_ms > ? ORDER BY created_ms DESC", arguments: [now])
            while let row = try rows.next() {
                let r = Self.decode(row)
                if total + r.size > maxBytes { break }
                total += r.size
                out.append((row["key"], r))
            }
            return out
        }
    }

    public func get(_ key: String, now: Int64) async -> CachedResponse? {
        try? await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM response_cache WHERE key = ? AND expires_ms > ?", arguments: [key, now]).map(Self.decode)
        }
    }

    /// Stores `r` under `key` unless `stillWanted`, asked inside the write transaction, says no.
    /// Writes are serialized, so a purge's delete that follows the check comes after the insert.
    /// Async: the caller's thread is not blocked while a log batch holds the writer.
    public func put(_ key: String, _ r: CachedResponse, if stillWanted: @escaping @Sendable () -> Bool) async throws {
        try await pool.write { db in
            guard stillWanted() else { return }
            try Self.insert(key, r, db: db)
        }
    }

    /// Deletes one key, a gateway's entries, or (both nil) every entry; returns how many.
    public func delete(key: String? = nil, gateway: String? = nil) async throws -> Int {
        try await pool.write { db in try Self.delete(key: key, gateway: gateway, db: db) }
    }

    static func insert(_ key: String, _ r: CachedResponse, db: Database) throws {
        try db.execute(sql: """
            INSERT OR REPLACE INTO response_cache (key, gateway, provider, status, headers, body, chunk_ends, streamed, created_ms,
                expires_ms, cost_nanos, served_model, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [key, r.gateway, r.provider, r.status, Self.encode(r.headers), Data(r.body),
                             r.chunkEnds.map(String.init).joined(separator: ","), r.streamed, r.createdAtMs, r.expiresAtMs,
                             r.costNanos, r.servedModel, r.size])
    }

    static func delete(key: String?, gateway: String?, db: Database) throws -> Int {
        if let key {
            try db.execute(sql: "DELETE FROM response_cache WHERE key = ?", arguments: [key])
        } else if let gateway {
            try db.execute(sql: "DELETE FROM response_cache WHERE gateway = ?", arguments: [gateway])
        } else {
            try db.execute(sql: "DELETE FROM response_cache")
        }
        return db.changesCount
    }

    /// Deletes expired entries, then the oldest until the total size is within `maxBytes`.
    /// Returns how many went.
    /// An entry's bytes on disk, in SQL, from its `size` (headers and body): an entry larger
    /// than a quarter of a 4 KiB page spills to overflow pages and takes them whole; a smaller one
    /// shares a page, and takes its bytes (`StorageCap.stored`); each with a row's overhead.
    static let onDiskSQL = "(\(StorageCap.storedSQL("size")) + 64)"

    /// Deletes expired entries, then the oldest until the entries' bytes on disk (`onDiskSQL`)
    /// are within `maxBytes`. Returns how many went.
    public func purge(now: Int64, maxBytes: Int) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM response_cache WHERE expires_ms <= ?", arguments: [now])
            var removed = db.changesCount
            var total = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(\(Self.onDiskSQL)), 0) FROM response_cache") ?? 0
            while total > maxBytes {
                let oldest = try Row.fetchAll(db, sql: "SELECT key, \(Self.onDiskSQL) AS bytes FROM response_cache ORDER BY created_ms LIMIT 100")
                if oldest.isEmpty { break }
                for row in oldest where total > maxBytes {
                    try db.execute(sql: "DELETE FROM response_cache WHERE key = ?", arguments: [row["key"] as String])
                    total -= row["bytes"] as Int
                    removed += 1
                }
            }
            return removed
        }
    }

    /// The entries and their bytes on disk.
    public func stats() throws -> (entries: Int, bytes: Int) {
        try pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(\(Self.onDiskSQL)), 0) AS b FROM response_cache")
            return (row?["n"] ?? 0, row?["b"] ?? 0)
        }
    }

    static func encode(_ headers: [HeaderField]) -> String {
        // Header names and values never hold NUL or newline (HTTP forbids them): a safe separator.
        headers.map { "\($0.name)\u{0}\($0.value)" }.joined(separator: "\n")
    }

    static func decode(_ row: Row) -> CachedResponse {
        let headerText: String = row["headers"]
        let headers = headerText.isEmpty ? [] : headerText.split(separator: "\n", omittingEmptySubsequences: true).compactMap { line -> HeaderField? in
            let parts = line.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2 ? .init(name: String(parts[0]), value: String(parts[1])) : nil
        }
        let ends: String = row["chunk_ends"]
        let body: Data = row["body"]
        return CachedResponse(gateway: row["gateway"], provider: row["provider"], status: row["status"], headers: headers,
                              body: [UInt8](body), chunkEnds: ends.split(separator: ",").compactMap { Int($0) }, streamed: row["streamed"],
                              createdAtMs: row["created_ms"], expiresAtMs: row["expires_ms"], costNanos: row["cost_nanos"],
                              servedModel: row["served_model"])
    }
}
