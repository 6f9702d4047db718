import CGateMeshOpenSSL
import Foundation
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import GateMeshUpstream
import Logging
import NIOCore
import ServiceLifecycle

/// Sends budget alerts to the configured webhook, in order, retrying with exponential backoff
/// until the webhook answers 2xx (or a day has passed).
///
/// Each alert is recorded in SQLite before it is sent and marked when acknowledged, so a restart
/// neither fires a threshold twice in one window nor forgets an alert that was never delivered.
/// With a secret, every call carries `x-gatemesh-signature: sha256=<hex HMAC-SHA256 of the body>`
/// (computed with OpenSSL).
final class AlertDispatcher: Service, Sendable {
    struct Pending: Sendable {
        var key: LimitsEngine.AlertKey
        var body: String
    }

    let url: String
    let secret: String?
    let client: UpstreamClient
    let alerts: AlertStore
    let logger: Logger
    private let queue = AsyncStream<Pending>.makeStream(bufferingPolicy: .bufferingNewest(10_000))

    init(url: String, secret: String?, client: UpstreamClient, alerts: AlertStore, logger: Logger) {
        self.url = url
        self.secret = secret
        self.client = client
        self.alerts = alerts
        self.logger = logger
    }

    /// Queues an alert that just fired; records it first so it survives a restart.
    func fire(_ alert: LimitsEngine.Alert, node: String, now: Int64) {
        let body = Self.body(alert, node: node, now: now)
        let key = alert.key
        let alerts = self.alerts
        let continuation = queue.continuation
        Task {
            try? await alerts.record(rule: key.rule, scope: key.scope, window: key.window, permille: key.permille, ts: now, body: body)
            continuation.yield(Pending(key: key, body: body))
        }
    }

    /// Re-queues alerts that were recorded but never acknowledged (after a restart).
    func resumeUndelivered() {
        guard let pending = try? alerts.undelivered() else { return }
        for p in pending {
            queue.continuation.yield(Pending(key: .init(rule: p.rule, scope: p.scope, window: p.window, permille: p.permille), body: p.body))
        }
    }

    func run() async throws {
        resumeUndelivered()
        await withGracefulShutdownHandler {
            for await pending in queue.stream {
                await deliver(pending)
            }
        } onGracefulShutdown: { [queue] in
            queue.continuation.finish()
        }
    }

    private func deliver(_ pending: Pending) async {
        let started = Date()
        var delay: Duration = .seconds(1)
        while !Task.isCancelled {
            if await send(pending.body) {
                await alerts.markDelivered(rule: pending.key.rule, scope: pending.key.scope, window: pending.key.window,
                                             permille: pending.key.permille, ts: WallClock.nowMs())
                return
            }
            if Date().timeIntervalSince(started) > 86_400 {
                logger.error("giving up on a budget alert after a day of failed deliveries", metadata: ["rule": "\(pending.key.rule)"])
                return
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(300))
        }
    }

    /// One attempt; true when the webhook answered 2xx.
    private func send(_ body: String) async -> Bool {
        var headers: [(name: String, value: String)] = [("content-type", "application/json"), ("user-agent", "gatemesh-alerts")]
        if let secret { headers.append(("x-gatemesh-signature", "sha256=" + Self.hmacHex(key: secret, body: body))) }
        guard let failure = await client.post(url, headers: headers, body: Array(body.utf8),
                                              timeouts: UpstreamTimeouts(connectMs: 5000, firstByteMs: 10_000, totalMs: 30_000)) else { return true }
        logger.warning("budget alert webhook failed", metadata: ["error": "\(failure)"])
        return false
    }

    static func hmacHex(key: String, body: String) -> String {
        var mac = [UInt8](repeating: 0, count: 32)
        let k = Array(key.utf8)
        let d = Array(body.utf8)
        _ = copenssl_hmac_sha256(k, k.count, d, d.count, &mac)
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    static func body(_ a: LimitsEngine.Alert, node: String, now: Int64) -> String {
        AdminJSON.encode(AlertPayload(
            id: "\(a.rule.id)/\(a.scope)/\(a.window)/\(a.permille)", gateway: a.rule.gateway, rule: a.rule.id, scope: a.scope,
            threshold: Double(a.permille) / 1000, measure: a.rule.measure.rawValue, limit: Amount(a.rule.limit, a.rule.measure),
            spent: Amount(a.spent, a.rule.measure), windowStart: Timestamps.iso(a.windowStart), windowEnd: Timestamps.iso(a.windowEnd),
            node: node, time: Timestamps.iso(now)))
    }
}
