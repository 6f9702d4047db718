import Foundation
import GateMeshAccounting
import GateMeshCore
import GateMeshLimits
import GateMeshStore
import NIOConcurrencyHelpers
import ServiceLifecycle

/// The node's budgets and rate limits: the pure `LimitsEngine` behind a lock, with the clock read
/// here and a service that expires overdue reservations and passed buckets every second.
///
/// Every decision is in memory; nothing here waits on the disk or the network.
final class LimitsService: Service, Sendable {
    private let engine: NIOLockedValueBox<LimitsEngine>
    let rules: [LimitRule]
    let node: String
    let log: RequestLog
    /// How far back persisted charges can still count toward some window.
    let lookbackMs: Int64
    let alerts: AlertDispatcher?
    let nodeName: String

    /// Restores this node's own counters from the charges persisted with its log rows, so a node
    /// killed and restarted comes back with the spend its log shows and never rewinds its slot.
    init(node: String, nodeName: String, rules: [LimitRule], reservationTimeoutMs: Int, log: RequestLog, alerts: AlertDispatcher?) throws {
        self.rules = rules
        self.node = node
        self.nodeName = nodeName
        self.log = log
        self.alerts = alerts
        self.lookbackMs = (rules.map(\.window.maxLengthMs).max() ?? 0) + Int64(reservationTimeoutMs)
        let now = Self.now()
        // Versions must exceed any this node used before a restart: start from the clock.
        var engine = LimitsEngine(node: node, rules: rules, counters: CounterMap(node: node, startVersion: UInt64(now) << 10),
                                  reservationTimeoutMs: Int64(reservationTimeoutMs))
        if !rules.isEmpty {
            for c in try log.limitCharges(node: node, sinceTs: now - lookbackMs) {
                engine.restore(.init(rule: c.rule, scope: c.scope, bucket: c.bucket), spent: c.amount)
            }
            engine.markFired(try log.firedAlerts(sinceTs: now - lookbackMs).map {
                LimitsEngine.AlertKey(rule: $0.rule, scope: $0.scope, window: $0.window, permille: $0.permille)
            })
            engine.expire(now: now)
        }
        self.engine = NIOLockedValueBox(engine)
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    var isEmpty: Bool { rules.isEmpty }

    func admit(_ request: LimitRequest, estimate: LimitAmounts, skipping: Set<String> = []) -> LimitsEngine.Decision {
        let now = Self.now()
        return engine.withLockedValue { $0.admit(request, estimate: estimate, now: now, skipping: skipping) }
    }

    /// Settles a reservation; returns the charges to persist with the request's log row.
    func settle(_ id: UInt64, actual: LimitAmounts) -> [LimitCharge] {
        let now = Self.now()
        let (charged, due) = engine.withLockedValue { engine in
            let charged = engine.settle(id, actual: actual)
            return (charged, charged.isEmpty ? [] : engine.dueAlerts(for: charged.map(\.key), now: now))
        }
        for alert in due { alerts?.fire(alert, node: nodeName, now: now) }
        return charged.map {
            LimitCharge(node: node, rule: $0.key.rule, scope: $0.key.scope, bucket: $0.key.bucket, amount: $0.amount)
        }
    }

    func release(_ id: UInt64) {
        engine.withLockedValue { $0.release(id) }
    }

    func run() async throws {
        guard !rules.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        var ticks = 0
        for await _ in AsyncTimerSequence.seconds(1).cancelOnGracefulShutdown() {
            let now = Self.now()
            engine.withLockedValue { _ = $0.expire(now: now) }
            ticks += 1
            if ticks % 600 == 0 { await log.deleteLimitCharges(before: now - lookbackMs) }
        }
    }

    /// Every rule and scope value with its figures, for `/api/budgets`.
    func report() -> String {
        let now = Self.now()
        return engine.withLockedValue { engine in
            var out = "{\"time\":\(LogAPI.iso(now)),\"rules\":["
            for (i, rule) in engine.rules.enumerated() {
                if i > 0 { out += "," }
                let span = rule.window.span(at: now)
                let resets = rule.window.bucketLeavesAt(rule.window.activeBuckets(at: now).lowerBound)
                out += "{\"id\":\(JSON.quoted(rule.id)),\"gateway\":\(JSON.quoted(rule.gateway)),\"measure\":\(JSON.quoted(rule.measure.rawValue)),"
                out += "\"limit\":\(Self.amount(rule.limit, rule.measure)),\"window\":\(JSON.quoted(rule.window.description)),"
                out += "\"window_start\":\(LogAPI.iso(span.start)),\"window_end\":\(LogAPI.iso(span.end)),\"resets_at\":\(LogAPI.iso(resets)),"
                out += "\"action\":" + (rule.action == .block ? "\"block\"" : {
                    if case .downgrade(_, let model) = rule.action { return "{\"downgrade\":\(JSON.quoted(model))}" }
                    return "null"
                }())
                out += ",\"scopes\":["
                var scopes = engine.scopes(of: rule, now: now)
                if scopes.isEmpty && !rule.scope.contains(where: { if case .split = $0 { return true } else { return false } }) { scopes = [""] }
                for (j, scope) in scopes.enumerated() {
                    if j > 0 { out += "," }
                    let f = engine.figures(rule: rule, scope: scope, now: now)
                    let remaining = max(0, rule.limit - f.spent - f.reserved)
                    let state = f.spent + f.reserved >= rule.limit ? "exhausted" : (f.spent + f.reserved) * 1000 >= rule.limit * 800 ? "warning" : "ok"
                    out += "{\"scope\":\(JSON.quoted(scope)),\"spent\":\(Self.amount(f.spent, rule.measure)),\"reserved\":\(Self.amount(f.reserved, rule.measure)),"
                    out += "\"remaining\":\(Self.amount(remaining, rule.measure)),\"state\":\"\(state)\"}"
                }
                out += "]}"
            }
            return out + "]}"
        }
    }

    /// An amount as JSON: dollars as a decimal string for money, a number otherwise.
    static func amount(_ v: Int64, _ measure: LimitRule.Measure) -> String {
        measure == .usd ? JSON.quoted(Money(nanos: v).dollars) : String(v)
    }
}

/// A tick every `interval`, for housekeeping loops.
struct AsyncTimerSequence: AsyncSequence, Sendable {
    typealias Element = Void
    let interval: Duration
    static func seconds(_ n: Int64) -> AsyncTimerSequence { AsyncTimerSequence(interval: .seconds(n)) }

    struct AsyncIterator: AsyncIteratorProtocol {
        let interval: Duration
        mutating func next() async -> Void? {
            do { try await Task.sleep(for: interval) } catch { return nil }
            return ()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(interval: interval) }
}
