import Foundation
import GateMeshCore
import GRDB

/// The node's embedded SQLite database (WAL mode) in its data directory.
///
/// This issue keeps only the node's identity here; the request log, the cache and the budget
/// counters add their own tables through `migrator`. Writes from the request path go through a
/// batching writer (added with the request log), never straight to SQLite.
public final class NodeStore: Sendable {
    public let path: String
    let pool: DatabasePool

    /// The facts the store keeps about this node across restarts.
    public struct Identity: Sendable, Equatable {
        /// Stable across restarts: created on first start, never changed after.
        public var nodeID: String
        /// How many times this data directory has been opened, this start included.
        public var starts: Int
    }

    /// The WAL file's size after a checkpoint (bytes).
    public static let walSizeLimit = 4 << 20

    /// Opens (creating when missing) `dataDir/gatemesh.sqlite`. Throws `StoreError` with the path
    /// and the reason when the directory cannot be created or the database cannot be opened.
    public init(dataDir: String) throws(StoreError) {
        do {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        } catch {
            throw StoreError(message: "cannot create the data directory '\(dataDir)': \(error.localizedDescription)")
        }
        path = (dataDir as NSString).appendingPathComponent("gatemesh.sqlite")
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        // GRDB's default, userInitiated, runs database work above the request path's priority
        // (libdispatch on Linux makes it nice -4): a request log batch then delays the requests
        // running beside it. Reads keep the request path's priority; writes (log batches, spend,
        // cache entries, rules) run below it.
        configuration.qos = .default
        configuration.writeTargetQueue = DispatchQueue(label: "gatemesh.store.writer", qos: .utility)
        configuration.label = "gatemesh"
        // SQLite never shrinks the WAL file on its own: it would keep the size of the largest
        // burst (a minute's log trim while readers hold snapshots). Past a checkpoint it is cut
        // back to this, so the file on disk says what the WAL holds (found by bench/soak.py).
        //
        // secure_delete FAST, whatever the distribution's default (Debian's is ON): a delete
        // zeroes what it leaves in the b-tree pages it writes anyway, but does not write every
        // freed overflow page (a log row's bodies) a second time through the WAL. Under
        // `storage.max_bytes` a delete of old rows must not itself grow the WAL by what it frees;
        // freed pages are written over when the next rows take them.
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_size_limit = \(Self.walSizeLimit)")
            try db.execute(sql: "PRAGMA secure_delete = FAST")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // Pages freed by deletes go back to the file system on request (`reclaim`), which a
            // size cap needs (`storage.max_bytes`). SQLite takes this only with a VACUUM once the
            // file has its WAL header: cheap on a new, empty file; an older file is converted
            // once by `enableReclaim`.
            try pool.writeWithoutTransaction { db in
                if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master") == 0 {
                    try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                    try db.execute(sql: "VACUUM")
                }
            }
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError(message: "cannot open the database '\(path)': \(error)")
        }
    }

    // MARK: - Size on disk

    /// The database's bytes on disk: the file, the part of it that holds nothing (free pages,
    /// given back by `reclaim`), and the WAL file.
    public struct Size: Sendable, Equatable {
        public var fileBytes = 0
        public var freeBytes = 0
        public var walBytes = 0

        public init(fileBytes: Int = 0, freeBytes: Int = 0, walBytes: Int = 0) {
            self.fileBytes = fileBytes
            self.freeBytes = freeBytes
            self.walBytes = walBytes
        }

        /// What the file and its WAL take on disk.
        public var onDisk: Int { fileBytes + walBytes }
    }

    public func size() throws -> Size {
        let (pages, free, pageSize) = try pool.read { db in
            (try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0, try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0,
             try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096)
        }
        let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        return Size(fileBytes: pages * pageSize, freeBytes: free * pageSize, walBytes: wal)
    }

    /// Whether freed pages can be given back (`PRAGMA auto_vacuum` is incremental).
    public func canReclaim() throws -> Bool {
        try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") == 2 }
    }

    /// Turns incremental vacuum on for a file made before this build: one `VACUUM`, which
    /// rewrites the file (it needs as much free disk again, and holds writes meanwhile).
    public func enableReclaim() throws {
        guard try !canReclaim() else { return }
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "VACUUM")
        }
    }

    /// Gives up to `pages` free pages back to the file system (moving pages from the file's end
    /// into free ones, through the WAL), then checkpoints.
    public func reclaim(pages: Int) async throws {
        try await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA incremental_vacuum(\(max(1, pages)))") }
        try await checkpoint()
    }

    /// Writes the WAL into the file and cuts it back to nothing (it cannot while a read holds an
    /// older snapshot: then at the next call).
    public func checkpoint() async throws {
        try await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-node-meta") { db in
            try db.create(table: "node_meta") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
        }
        migrator.registerMigration("v2-limit-rules") { db in
            // Rules made through the admin API (the config's rules live in the config file).
            try db.create(table: "limit_rules", options: .withoutRowID) { t in
                t.primaryKey("id", .text)
                t.column("gateway", .text).notNull()
                t.column("definition", .text).notNull()
                t.column("created_ts", .integer).notNull()
                t.column("updated_ts", .integer).notNull()
            }
        }
        migrator.registerMigration("v3-rule-versions") { db in
            // Rules replicate between nodes as last-writer-wins records: the node that made each
            // version, and tombstones for deleted rules (so a delete reaches every node).
            try db.alter(table: "limit_rules") { t in
                t.add(column: "origin", .text).notNull().defaults(to: "")
                t.add(column: "deleted", .boolean).notNull().defaults(to: false)
            }
        }
        return migrator
    }

    /// Records one more start of this node and returns its identity.
    public func recordStart(nodeName: String) throws(StoreError) -> Identity {
        do {
            return try pool.write { db in
                let existingID = try String.fetchOne(db, sql: "SELECT value FROM node_meta WHERE key = 'node_id'")
                let nodeID = existingID ?? UUID().uuidString.lowercased()
                let starts = (try Int.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM node_meta WHERE key = 'starts'") ?? 0) + 1
                try db.execute(sql: "INSERT OR REPLACE INTO node_meta(key, value) VALUES ('node_id', ?), ('starts', ?), ('node_name', ?)",
                               arguments: [nodeID, String(starts), nodeName])
                return Identity(nodeID: nodeID, starts: starts)
            }
        } catch {
            throw StoreError(message: "cannot write to the database '\(path)': \(error)")
        }
    }

    // MARK: - Cluster members

    /// The ids of the cluster members this node has ever seen and that have not departed: what a
    /// `strict` budget's counters are owned among (a dead member keeps its keys until it returns).
    /// Kept across restarts, so that a restarted node does not take itself for the owner of the
    /// keys of members it has not heard from yet. Empty for a node that has never been in a cluster.
    public func membersSeen() throws(StoreError) -> Set<String> {
        do {
            let text = try pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM node_meta WHERE key = 'members_seen'") }
            return Set((text ?? "").split(separator: "\n").map(String.init))
        } catch {
            throw StoreError(message: "cannot read the cluster members in '\(path)': \(error)")
        }
    }

    /// Replaces the stored members (`membersSeen`).
    public func saveMembersSeen(_ ids: Set<String>) throws(StoreError) {
        do {
            try pool.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO node_meta(key, value) VALUES ('members_seen', ?)",
                               arguments: [ids.sorted().joined(separator: "\n")])
            }
        } catch {
            throw StoreError(message: "cannot write the cluster members to '\(path)': \(error)")
        }
    }

    // MARK: - Rules made through the admin API

    /// Every stored rule and tombstone, oldest first.
    public func storedRules() throws(StoreError) -> [RuleRecord] {
        do {
            return try pool.read { db in
                try Row.fetchAll(db, sql: """
                    SELECT id, gateway, definition, created_ts, updated_ts, origin, deleted FROM limit_rules ORDER BY created_ts, id
                    """).map {
                    RuleRecord(id: $0["id"], gateway: $0["gateway"], definition: $0["definition"], createdTs: $0["created_ts"],
                               updatedTs: $0["updated_ts"], origin: $0["origin"], deleted: $0["deleted"])
                }
            }
        } catch {
            throw StoreError(message: "cannot read the rules in '\(path)': \(error)")
        }
    }

    /// In one transaction: inserts or replaces the records in `save` (rules and tombstones), and
    /// forgets the persisted spend of the rules in `forgetSpend` (rules deleted, or whose window
    /// changed). Synchronous: the admin API answers after the disk.
    public func changeRules(save: [RuleRecord], forgetSpend: Set<String>) throws(StoreError) {
        do {
            try pool.write { db in
                let upsert = try db.cachedStatement(sql: """
                    INSERT OR REPLACE INTO limit_rules (id, gateway, definition, created_ts, updated_ts, origin, deleted)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """)
                for r in save {
                    try upsert.execute(arguments: [r.id, r.gateway, r.definition, r.createdTs, r.updatedTs, r.origin, r.deleted])
                }
                if !forgetSpend.isEmpty, try db.tableExists("limit_spend") {
                    for id in forgetSpend { try db.execute(sql: "DELETE FROM limit_spend WHERE rule = ?", arguments: [id]) }
                }
            }
        } catch {
            throw StoreError(message: "cannot write the rules to '\(path)': \(error)")
        }
    }

    /// The journal mode SQLite reports (`wal` once opened).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// The WAL size limit SQLite reports for a connection (`walSizeLimit` on every one).
    public func journalSizeLimit() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA journal_size_limit") ?? -1 }
    }
}

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
