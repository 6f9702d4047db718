import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshLimits
import GRDB
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The request log: one SQLite row per request, written in batches off the request path.
///
/// Contract: `append` never blocks and never waits for the disk. Rows wait in a bounded queue;
/// the writer (this service's `run`) inserts them in one transaction every `flushInterval` or
/// as soon as `batchSize` are waiting. When the queue is full, new rows are dropped and counted
/// (`droppedRows`), never buffered without bound. On graceful shutdown every queued row is
/// written before `run` returns. Retention deletes rows past `retention` or beyond `maxRows`,
/// a thousand at a time. With `maxBytes`, the writer makes room before each batch: the database
/// file and its WAL stay under it (`StorageCap`).
public final class RequestLog: Service, Sendable {
    public struct Configuration: Sendable, Equatable {
        public var queueCapacity = 10_000
        public var batchSize = 500
        public var flushInterval: Duration = .milliseconds(100)
        /// Rows older than this are deleted; nil keeps them.
        public var retention: Duration? = .seconds(30 * 86_400)
        /// At most this many rows are kept; nil for no limit.
        public var maxRows: Int? = 1_000_000
        public var retentionInterval: Duration = .seconds(60)
        /// The cap on the database's bytes on disk (`storage.max_bytes`); nil for none.
        public var maxBytes: Int?
        public init() {}
    }

    let pool: DatabasePool
    public let store: NodeStore
    public let configuration: Configuration
    private let queue = NIOLockedValueBox(Queue())
    private let spendSource = NIOLockedValueBox<(any SpendSource)?>(nil)
    /// The `seq` of the next row written.
    private let nextSeq = NIOLockedValueBox<Int64>(1)
    /// Told of failed writes (`warnOnWriteErrors`), at most every 10 s; the last time it was.
    private let writeErrorWarning = NIOLockedValueBox<(call: (@Sendable (String, Int) -> Void)?, lastMs: Int64, unreported: Int)>((nil, 0, 0))

    /// What rewrites stored payloads before they are written (`logging.redact`).
    private let redactor = NIOLockedValueBox(Redactor(rules: []))

    /// Payloads are written through `redactor` from the next batch on.
    public func redact(with redactor: Redactor) { self.redactor.withLockedValue { $0 = redactor } }

    /// `warn` is called with the error and the rows lost since its last call, at most every 10 s,
    /// when batches fail to write (a full disk): the node serves on and the operator hears of it.
    public func warnOnWriteErrors(_ warn: @escaping @Sendable (String, Int) -> Void) {
        writeErrorWarning.withLockedValue { $0.call = warn }
    }

    /// Where the writer gets the node's own limit spend to persist with each batch.
    public func persistSpend(from source: any SpendSource) {
        spendSource.withLockedValue { $0 = source }
    }
    private let wake = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

    struct Queue {
        var rows: [RequestRecord] = []
        var dropped = 0
        var written = 0
        /// Rows not written because the disk (or the file system) refused the batch.
        var failedWrites = 0
        var lastWriteError: (atMs: Int64, message: String)?
        /// Rows not written because they would not fit under the cap with the log emptied.
        var droppedForSpace = 0
        /// Old rows deleted to keep the file under the cap.
        var deletedForSpace = 0
    }

    public init(store: NodeStore, configuration: Configuration = .init()) throws(StoreError) {
        self.pool = store.pool
        self.store = store
        defer {
            let last = (try? lastSeq()) ?? 0
            nextSeq.withLockedValue { $0 = last + 1 }
        }
        self.configuration = configuration
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError(message: "cannot create the request log in '\(store.path)': \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-request-log") { db in
            try db.execute(sql: """
                CREATE TABLE request_log (
                    log_id TEXT PRIMARY KEY NOT NULL,
                    ts INTEGER NOT NULL,
                    event_id TEXT, node TEXT NOT NULL, gateway TEXT NOT NULL, provider TEXT NOT NULL,
                    requested_model TEXT, served_model TEXT, priced_as TEXT,
                    method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,
                    duration_ms INTEGER NOT NULL, ttfb_ms INTEGER, streamed INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                    cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
                    usage_estimated INTEGER NOT NULL, cost_nanos INTEGER, saved_nanos INTEGER NOT NULL DEFAULT 0,
                    cache_status TEXT, attempts INTEGER NOT NULL, step INTEGER NOT NULL,
                    metadata TEXT NOT NULL, error TEXT, request_body BLOB, response_body BLOB
                ) WITHOUT ROWID;
                CREATE INDEX request_log_ts ON request_log(ts);
                CREATE INDEX request_log_gateway_ts ON request_log(gateway, ts);
                """)
        }
        migrator.registerMigration("v2-limit-charges") { db in
            try db.execute(sql: """
                CREATE TABLE limit_charges (
                    node TEXT NOT NULL, rule TEXT NOT NULL, scope TEXT NOT NULL, bucket INTEGER NOT NULL,
                    amount INTEGER NOT NULL, ts INTEGER NOT NULL
                );
                CREATE INDEX limit_charges_key ON limit_charges(node, rule, scope, bucket);
                CREATE INDEX limit_charges_ts ON limit_charges(ts);
                """)
        }
        migrator.registerMigration("v4-limit-spend") { db in
            // One row per counter instead of one per request and rule: what a node restores at
            // start, kept current in the same transaction as the log rows that caused it.
            try db.execute(sql: """
                CREATE TABLE limit_spend (
                    node TEXT NOT NULL, rule TEXT NOT NULL, scope TEXT NOT NULL, bucket INTEGER NOT NULL,
                    amount INTEGER NOT NULL, updated_ts INTEGER NOT NULL,
                    PRIMARY KEY (node, rule, scope, bucket)
                ) WITHOUT ROWID;
                INSERT INTO limit_spend (node, rule, scope, bucket, amount, updated_ts)
                    SELECT node, rule, scope, bucket, SUM(amount), MAX(ts) FROM limit_charges GROUP BY node, rule, scope, bucket;
                DROP TABLE limit_charges;
                CREATE INDEX limit_spend_updated ON limit_spend(updated_ts);
                """)
        }
        migrator.registerMigration("v3-alerts-fired") { db in
            try db.execute(sql: """
                CREATE TABLE alerts_fired (
                    rule TEXT NOT NULL, scope TEXT NOT NULL, window INTEGER NOT NULL, permille INTEGER NOT NULL,
                    ts INTEGER NOT NULL, delivered_ts INTEGER, body TEXT NOT NULL,
                    PRIMARY KEY (rule, scope, window, permille)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v6-log-seq") { db in
            // The order in which rows were written (log ids order them by start: a long stream's
            // row is written after later ones): what the export's cursor follows.
            try db.execute(sql: """
                ALTER TABLE request_log ADD COLUMN seq INTEGER;
                UPDATE request_log SET seq = (SELECT n FROM (SELECT log_id AS id, ROW_NUMBER() OVER (ORDER BY log_id) AS n FROM request_log) WHERE id = request_log.log_id);
                CREATE INDEX request_log_seq ON request_log(seq);
                """)
        }
        migrator.registerMigration("v5-principal") { db in
            // Who made each request: its virtual key, team, org and end user (docs/keys.md).
            try db.execute(sql: """
                ALTER TABLE request_log ADD COLUMN key_id TEXT;
                ALTER TABLE request_log ADD COLUMN team TEXT;
                ALTER TABLE request_log ADD COLUMN org TEXT;
                ALTER TABLE request_log ADD COLUMN end_user TEXT;
                CREATE INDEX request_log_team_ts ON request_log(team, ts) WHERE team IS NOT NULL;
                """)
        }
        return migrator
    }

    // MARK: - Appending (request path)

    /// Queues a row; returns false when the queue was full and the row was dropped.
    @discardableResult
    public func append(_ record: RequestRecord) -> Bool {
        let (accepted, full) = queue.withLockedValue { q -> (Bool, Bool) in
            guard q.rows.count < configuration.queueCapacity else {
                q.dropped += 1
                return (false, false)
            }
            q.rows.append(record)
            return (true, q.rows.count >= configuration.batchSize)
        }
        if full { wake.continuation.yield() }
        return accepted
    }

    public var droppedRows: Int { queue.withLockedValue { $0.dropped } }

    /// How the log fares with the disk: rows lost to write errors (a full disk) and the last
    /// error, rows dropped and deleted to keep under the cap.
    public struct DiskFigures: Sendable {
        public var failedWrites: Int
        public var lastWriteError: (atMs: Int64, message: String)?
        public var droppedForSpace: Int
        public var deletedForSpace: Int
    }

    public var diskFigures: DiskFigures {
        queue.withLockedValue { DiskFigures(failedWrites: $0.failedWrites, lastWriteError: $0.lastWriteError,
                                            droppedForSpace: $0.droppedForSpace, deletedForSpace: $0.deletedForSpace) }
    }
    public var writtenRows: Int { queue.withLockedValue { $0.written } }
    public var queuedRows: Int { queue.withLockedValue { $0.rows.count } }

    // MARK: - The writer

    public func run() async throws {
        let retentionEvery = configuration.retentionInterval
        var lastRetention = ContinuousClock.now
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [wake] in
                    // Ticks so that a quiet queue is still flushed within flushInterval.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.configuration.flushInterval)
                        wake.continuation.yield()
                    }
                }
                for await _ in wake.stream {
                    await flushQueued()
                    if ContinuousClock.now - lastRetention >= retentionEvery {
                        lastRetention = .now
                        await applyRetention(now: Date())
                    }
                }
                group.cancelAll()
            }
        } onGracefulShutdown: { [wake] in
            wake.continuation.finish()
        }
        await flushQueued()
    }

    /// Writes every queued row now (the writer does this on its own; tests and shutdown call it).
    public func flushQueued() async {
        while true {
            // Everything queued, taken in one swap: the lock, which every request's `append`
            // needs, is held for no copy. (Taking a prefix and removing it from the queue copied
            // every row under the lock: a few milliseconds every flush for the requests waiting.)
            let taken = queue.withLockedValue { q -> [RequestRecord] in
                var all: [RequestRecord] = []
                swap(&all, &q.rows)
                return all
            }
            // In transactions of at most 4 × batchSize rows; an empty one still writes the spend.
            let most = configuration.batchSize * 4
            var start = 0
            repeat {
                let end = min(taken.count, start + most)
                await write(start == 0 && end == taken.count ? taken : Array(taken[start..<end]))
                start = end
            } while start < taken.count
            if taken.isEmpty { return }
        }
    }

    private func write(_ taken: [RequestRecord]) async {
        var rows = taken
        // Payloads are redacted here, on the writer, off the request path, before they are stored.
        let redactor = self.redactor.withLockedValue { $0 }
        if !redactor.isEmpty {
            for i in rows.indices where rows[i].logged && (rows[i].requestBody != nil || rows[i].responseBody != nil) {
                rows[i].requestBody = rows[i].requestBody.map(redactor.redact(body:))
                rows[i].responseBody = rows[i].responseBody.map(redactor.redact(body:))
            }
        }
        guard let cap = configuration.maxBytes else { return await commit(rows) }
        // Under a cap: in transactions that fit the WAL budget, each after making room in the
        // file and followed by a checkpoint (`StorageCap`).
        var bytes = rows.map { $0.logged ? StorageCap.estimatedBytes($0) : 0 }
        let (ranges, tooLarge) = StorageCap.transactions(bytes, cap: cap)
        for i in tooLarge {
            rows[i].logged = false
            bytes[i] = 0
        }
        if !tooLarge.isEmpty { queue.withLockedValue { $0.droppedForSpace += tooLarge.count } }
        if ranges.isEmpty { return await commit(rows) }
        for range in ranges {
            var part = Array(rows[range])
            await makeRoom(for: &part, incoming: range.reduce(0) { $0 + bytes[$1] }, cap: cap)
            await commit(part)
            try? await store.checkpoint()
        }
    }

    /// Writes a batch's rows and the spend in one transaction.
    private func commit(_ batch: [RequestRecord]) async {
        // The batch's settlements are priced into the slot values written with the rows, and
        // applied to the live counters only once the transaction committed: a request's spend
        // counts (here and, through gossip, on peers) exactly when its row is durable.
        let settlements = batch.compactMap(\.settlement)
        let source = spendSource.withLockedValue { $0 }
        let spend = source?.prepare(settlements)
        guard !batch.isEmpty || !(spend?.slots.isEmpty ?? true) || spend?.mark != nil else { return }
        do {
            // Detached: a shutdown that cancels the writer must not cancel rows already taken.
            let pool = self.pool, nextSeq = self.nextSeq
            let now = WallClock.nowMs()
            try await Task.detached {
                try await pool.write { db in
                    var row = RowBinder()
                    let statement = try Self.insertStatement(db)
                    let logged = batch.reduce(0) { $0 + ($1.logged ? 1 : 0) }
                    var seq = nextSeq.withLockedValue { s in
                        defer { s += Int64(logged) }
                        return s
                    }
                    for i in batch.indices where batch[i].logged {
                        try Self.insert(batch[i], seq: seq, statement: statement, row: &row, db: db)
                        seq += 1
                    }
                    if let spend { try Self.upsertSpend(spend.slots, db: db, now: now) }
                    // The reservation journal's batch: its reservations' charges are durable
                    // exactly when this mark is (see `ReservationJournal.settling`).
                    if let mark = spend?.mark { try Self.setMeta(db, Self.spendBatchKey, mark.description) }
                }
            }.value
            if let spend { source?.commit(settlements, version: spend.version, mark: spend.mark) }
            queue.withLockedValue { $0.written += batch.count }
        } catch {
            // The rows are lost; the spend still counts (in memory), as the requests did happen.
            // A full disk: the node keeps serving, and says so (`diskFigures`, /cluster/status).
            source?.commit(settlements, version: nil, mark: nil)
            let now = WallClock.nowMs()
            queue.withLockedValue {
                $0.dropped += batch.count
                $0.failedWrites += batch.count
                $0.lastWriteError = (now, "\(error)")
            }
            let warn = writeErrorWarning.withLockedValue { w -> (@Sendable (String, Int) -> Void, Int)? in
                w.unreported += batch.count
                guard let call = w.call, now - w.lastMs >= 10_000 else { return nil }
                defer { w.lastMs = now; w.unreported = 0 }
                return (call, w.unreported)
            }
            if let (call, rows) = warn { call("\(error)", rows) }
        }
    }

    // MARK: - The size cap

    /// Before a transaction of `incoming` bytes under a cap: when it would grow the file past its
    /// ceiling, the oldest rows are deleted (their estimated bytes, down to `StorageCap.target`),
    /// their pages left free for the new rows; a file past its ceiling is shrunk a step at a time.
    /// Rows that still would not fit, with the log empty, are not written (their spend still is).
    private func makeRoom(for part: inout [RequestRecord], incoming: Int, cap: Int) async {
        for _ in 0..<10_000 {
            guard let size = try? store.size() else { return }
            if StorageCap.mustShrink(size: size, cap: cap), size.freeBytes > 0 {
                try? await store.reclaim(pages: StorageCap.shrinkPages(cap))
                continue
            }
            guard StorageCap.mustMakeRoom(size: size, incoming: incoming, cap: cap) || StorageCap.mustShrink(size: size, cap: cap) else { return }
            let deleted = (try? await deleteOldest(bytes: max(1, StorageCap.bytesToDelete(size: size, incoming: incoming, cap: cap)))) ?? 0
            queue.withLockedValue { $0.deletedForSpace += deleted }
            try? await store.checkpoint()
            if deleted == 0 {
                // Nothing left to delete: what does not fit is not written.
                var dropped = 0
                for i in part.indices where part[i].logged {
                    part[i].logged = false
                    dropped += 1
                }
                queue.withLockedValue { $0.droppedForSpace += dropped }
                return
            }
        }
    }

    /// Deletes the oldest rows until their estimated bytes reach `bytes`; returns how many.
    private func deleteOldest(bytes: Int) async throws -> Int {
        try await pool.write { db in
            var freed = 0, count = 0
            let select = try db.cachedStatement(sql: "SELECT log_id, \(StorageCap.rowBytesSQL) AS bytes FROM request_log ORDER BY log_id LIMIT 200")
            let delete = try db.cachedStatement(sql: "DELETE FROM request_log WHERE log_id = ?")
            while freed < bytes {
                let rows = try Row.fetchAll(select)
                if rows.isEmpty { break }
                for row in rows where freed < bytes {
                    try delete.execute(arguments: [row["log_id"] as String])
                    freed += row["bytes"] as Int
                    count += 1
                }
            }
            return count
        }
    }

    /// The row insert, compiled once per connection (looked up once per batch: the lookup hashes
    /// the SQL's text).
    static func insertStatement(_ db: Database) throws -> Statement {
        try db.cachedStatement(sql: """
            INSERT OR REPLACE INTO request_log (log_id, ts, event_id, node, gateway, provider, requested_model, served_model,
              priced_as, method, path, status, duration_ms, ttfb_ms, streamed, input_tokens, output_tokens, cache_read_tokens,
              cache_write_tokens, usage_estimated, cost_nanos, cache_status, attempts, step, metadata, error, request_body, response_body,
              saved_nanos, key_id, team, org, end_user, seq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    /// One logged row (the caller skips the others: they take no `seq`).
    static func insert(_ r: RequestRecord, seq: Int64, statement: Statement, row: inout RowBinder, db: Database) throws {
        // Bound in place (GRDB's arguments copy each of the 29 values, each string into an array).
        row.start()
        row.text(r.logID); row.int(r.startedAtMs); row.text(r.eventID); row.text(r.node); row.text(r.gateway)
        row.text(r.provider); row.text(r.requestedModel); row.text(r.servedModel); row.text(r.pricedAs); row.text(r.method)
        row.text(r.path); row.int(r.status); row.int(r.durationMs); row.int(r.ttfbMs); row.int(r.streamed ? 1 : 0)
        row.int(r.usage.input); row.int(r.usage.output); row.int(r.usage.cacheRead); row.int(r.usage.cacheWrite)
        row.int(r.usage.estimated ? 1 : 0); row.int(r.cost?.nanos); row.text(r.cacheStatus); row.int(r.attempts); row.int(r.step)
        row.text(r.metadata.json); row.text(r.error); row.blob(r.requestBody); row.blob(r.responseBody); row.int(r.savedNanos)
        row.text(r.principal?.key); row.text(r.principal?.team); row.text(r.principal?.org); row.text(r.principal?.user)
        row.int(seq)
        try row.execute(statement, db: db)
    }

    /// Writes absolute slot values (a node's G-counter slot only grows, so a repeated or older
    /// write never lowers what is saved).
    static func upsertSpend(_ slots: [LimitCharge], db: Database, now: Int64) throws {
        guard !slots.isEmpty else { return }
        let upsert = try db.cachedStatement(sql: """
            INSERT INTO limit_spend (node, rule, scope, bucket, amount, updated_ts) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (node, rule, scope, bucket) DO UPDATE SET amount = MAX(amount, excluded.amount),
                updated_ts = MAX(updated_ts, excluded.updated_ts)
            """)
        for c in slots { try upsert.execute(arguments: [c.node, c.rule, c.scope, c.bucket, c.amount, now]) }
    }

    static let spendBatchKey = "spend_batch"
    static let journalRecoveredKey = "journal_recovered_through"

    static func setMeta(_ db: Database, _ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?, ?)", arguments: [key, value])
    }

    /// What the reservation journal's recovery needs from the store: the last spend batch
    /// committed, and the run up to which earlier recoveries already charged the journal.
    public func journalMarks() throws -> (committed: SpendBatchMark?, recoveredThrough: UInt64) {
        try pool.read { db in
            let committed = try String.fetchOne(db, sql: "SELECT value FROM node_meta WHERE key = ?", arguments: [Self.spendBatchKey])
            let recovered = try String.fetchOne(db, sql: "SELECT value FROM node_meta WHERE key = ?", arguments: [Self.journalRecoveredKey])
            return (committed.flatMap(SpendBatchMark.init), recovered.flatMap { UInt64($0) } ?? 0)
        }
    }

    /// Writes the slots charged for the reservations a killed run left open, and marks the
    /// journal's runs up to `recoveredThrough` as charged, in one transaction (synchronous: the
    /// node admits nothing before).
    public func persistRecovery(_ slots: [LimitCharge], recoveredThrough: UInt64) throws {
        let now = WallClock.nowMs()
        try pool.write { db in
            try Self.upsertSpend(slots, db: db, now: now)
            try Self.setMeta(db, Self.journalRecoveredKey, String(recoveredThrough))
        }
    }

    /// The persisted limit spend: every node's slot (this node's and those merged from peers) per
    /// (rule, scope, bucket), for counters charged from `sinceTs` on.
    public func limitSpend(sinceTs: Int64) throws -> [LimitCharge] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT node, rule, scope, bucket, amount FROM limit_spend WHERE updated_ts >= ?", arguments: [sinceTs]).map {
                LimitCharge(node: $0["node"], rule: $0["rule"], scope: $0["scope"], bucket: $0["bucket"], amount: $0["amount"])
            }
        }
    }

    /// The fired alerts, in the same database.
    public var alerts: AlertStore { AlertStore(pool: pool) }

    /// Deletes limit counters last charged before `ts` (no window can still count them), and
    /// those of each rule in `rules` last charged before that rule's own cutoff (its window can no
    /// longer count them: a per-second rate limit's buckets go after a minute or so, not after the
    /// longest window of any rule, which a monthly budget makes 31 days).
    public func deleteLimitCharges(before ts: Int64, rules: [String: Int64] = [:]) async {
        _ = try? await pool.write { db in
            try db.execute(sql: "DELETE FROM limit_spend WHERE updated_ts < ?", arguments: [ts])
            let perRule = try db.cachedStatement(sql: "DELETE FROM limit_spend WHERE updated_ts < ? AND rule = ?")
            for (rule, cutoff) in rules where cutoff > ts { try perRule.execute(arguments: [cutoff, rule]) }
        }
    }

    /// Deletes rows past the retention age or beyond the row limit, a thousand per transaction.
    public func applyRetention(now: Date) async {
        if let retention = configuration.retention {
            let cutoff = Int64(now.timeIntervalSince1970 * 1000) - Int64(retention.components.seconds) * 1000
            await deleteInBatches(sql: "DELETE FROM request_log WHERE log_id IN (SELECT log_id FROM request_log WHERE ts < ? LIMIT 1000)",
                                  arguments: [cutoff])
        }
        if let maxRows = configuration.maxRows {
            while let count = try? await pool.read({ db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM request_log") ?? 0 }),
                  count > maxRows {
                let excess = min(count - maxRows, 1000)
                let deleted = (try? await pool.write { db -> Int in
                    try db.execute(sql: "DELETE FROM request_log WHERE log_id IN (SELECT log_id FROM request_log ORDER BY log_id LIMIT ?)",
                                   arguments: [excess])
                    return db.changesCount
                }) ?? 0
                if deleted == 0 { break }
            }
        }
    }

    private func deleteInBatches(sql: String, arguments: StatementArguments) async {
        while true {
            let deleted = (try? await pool.write { db -> Int in
                try db.execute(sql: sql, arguments: arguments)
                return db.changesCount
            }) ?? 0
            if deleted < 1000 { return }
        }
    }
}

/// The limits, for the request log's writer: it persists their spend with its batches and settles
/// the batch's reservations once the batch is on disk.
public protocol SpendSource: AnyObject, Sendable {
    /// The slot values (absolute) to write with a batch: every slot changed since the last commit,
    /// with this node's own slots including what `settlements` will add; the version of it; and
    /// the reservation journal's batch mark to commit in the same transaction (nil: none).
    func prepare(_ settlements: [PendingSettlement]) -> (slots: [LimitCharge], version: UInt64, mark: SpendBatchMark?)
    /// The batch is on disk (or, with `version` nil, could not be written): apply the settlements.
    func commit(_ settlements: [PendingSettlement], version: UInt64?, mark: SpendBatchMark?)
}
