import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshStore
import GateMeshUpstream
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Sends the request log to an HTTP sink (`logging.export`) as it is written: batches of rows,
/// one JSON object a line (NDJSON, each as `GET /api/logs/{id}` shows it, bodies included when
/// they were stored), gzip-compressed, POSTed in the order the rows were written.
///
/// At least once: the cursor (the `seq` of the last row the sink acknowledged with a 2xx) is
/// saved in the database after each batch, so a restart resumes after it; a batch that was sent
/// but not acknowledged (a timeout, a crash before the cursor was saved) is sent again. A sink
/// that fails is retried with backoff (1 s doubling to 60 s, with jitter), the batch unchanged.
/// Rows deleted before they were sent (retention, `storage.max_bytes`) are counted as skipped.
final class LogExporter: Service, Sendable {
    let config: LogExportConfig
    let log: RequestLog
    let client: UpstreamClient
    let node: String
    let logger: Logger

    struct Figures: Sendable {
        var exported = 0
        var batches = 0
        var failures = 0
        var skipped = 0
        var cursor: Int64 = 0
        var lastError: String?
        var lastSuccessMs: Int64?
    }

    let figures = NIOLockedValueBox(Figures())

    init(config: LogExportConfig, log: RequestLog, client: UpstreamClient, node: String, logger: Logger) {
        self.config = config
        self.log = log
        self.client = client
        self.node = node
        self.logger = logger
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await self.loop() }
    }

    private func loop() async throws {
        var cursor = (try? log.exportCursor()) ?? 0
        figures.withLockedValue { $0.cursor = cursor }
        var delay: Duration = .seconds(1)
        while !Task.isCancelled {
            let rows: [(seq: Int64, record: RequestRecord)]
            do {
                rows = try await log.rowsWritten(after: cursor, limit: config.batchRows)
            } catch {
                logger.warning("cannot read the request log to export it", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(config.intervalMs))
                continue
            }
            guard let first = rows.first, let last = rows.last else {
                try await Task.sleep(for: .milliseconds(config.intervalMs))
                continue
            }
            let body: [UInt8]
            do {
                body = try Gzip.compress(Self.ndjson(rows.map(\.record)))
            } catch {
                logger.error("cannot compress a batch of the request log; it is skipped", metadata: ["error": "\(error)"])
                cursor = last.seq
                try? await log.saveExportCursor(cursor)
                continue
            }
            if let failure = await send(body, rows: rows.count, first: first.seq, last: last.seq) {
                let wait = Duration.milliseconds(Int64(Double(delay.components.seconds * 1000) * Double.random(in: 0.8...1.2)))
                let failures = figures.withLockedValue { f in
                    f.failures += 1
                    f.lastError = failure
                    return f.failures
                }
                // Every failure is counted; the log line comes for the first and then every tenth.
                if failures % 10 == 1 {
                    logger.warning("the log export's sink failed; retrying the batch", metadata: [
                        "error": "\(failure)", "rows": "\(rows.count)", "retry_in_s": "\(wait.components.seconds)",
                    ])
                }
                try await Task.sleep(for: wait)
                delay = min(delay * 2, .seconds(60))
                continue
            }
            delay = .seconds(1)
            // Seqs between the cursor and the last row that were not read: deleted before export.
            let skipped = Int(last.seq - cursor) - rows.count
            cursor = last.seq
            try? await log.saveExportCursor(cursor)
            let now = WallClock.nowMs()
            figures.withLockedValue { f in
                f.exported += rows.count
                f.batches += 1
                f.skipped += max(0, skipped)
                f.cursor = cursor
                f.lastSuccessMs = now
                f.lastError = nil
            }
            if rows.count < config.batchRows { try await Task.sleep(for: .milliseconds(config.intervalMs)) }
        }
    }

    /// One POST; nil when the sink answered 2xx, else what went wrong.
    private func send(_ body: [UInt8], rows: Int, first: Int64, last: Int64) async -> String? {
        let headers: [(name: String, value: String)] = [
            ("content-type", "application/x-ndjson"), ("content-encoding", "gzip"), ("user-agent", "gatemesh-log-export"),
            ("x-gatemesh-node", node), ("x-gatemesh-rows", String(rows)), ("x-gatemesh-first-seq", String(first)),
            ("x-gatemesh-last-seq", String(last)),
        ]
        return await client.post(config.url, headers: headers, configured: config.headers, body: body,
                                 timeouts: UpstreamTimeouts(connectMs: 5000, firstByteMs: 30_000, totalMs: 60_000))
    }

    /// The rows as NDJSON: each as `GET /api/logs/{id}` shows it, one a line.
    static func ndjson(_ records: [RequestRecord]) -> [UInt8] {
        var out = ""
        for r in records {
            LogAPI.row(r, bodies: true).write(to: &out)
            out += "\n"
        }
        return Array(out.utf8)
    }
}
