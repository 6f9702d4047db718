import CoreMetrics
import GateMeshAccounting
import GateMeshCluster
import GateMeshCore
import GateMeshStore
import GateMeshUpstream
import NIOConcurrencyHelpers
import Prometheus

/// The node's Prometheus metrics, recorded through swift-metrics with a factory of the node's
/// own (so several nodes in one process, as in tests, never share counters).
///
/// Label values are bounded: the `model` label is the price-table entry a request was priced as
/// (or `unpriced`), never the client's free-form model string, so a client cannot blow up the
/// number of series.
final class NodeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let droppedRows: CoreMetrics.Gauge
    let queuedRows: CoreMetrics.Gauge
    let inFlight: CoreMetrics.Gauge
    let upstreamConnections: CoreMetrics.Gauge
    let journalOpen: CoreMetrics.Gauge
    let counters: CoreMetrics.Gauge

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
        ]
        self.factory = factory
        droppedRows = CoreMetrics.Gauge(label: "gatemesh_log_rows_dropped", factory: factory)
        queuedRows = CoreMetrics.Gauge(label: "gatemesh_log_rows_queued", factory: factory)
        inFlight = CoreMetrics.Gauge(label: "gatemesh_requests_in_flight", factory: factory)
        upstreamConnections = CoreMetrics.Gauge(label: "gatemesh_upstream_connections_opened", factory: factory)
        journalOpen = CoreMetrics.Gauge(label: "gatemesh_journal_open_reservations", factory: factory)
        counters = CoreMetrics.Gauge(label: "gatemesh_limit_counters", factory: factory)
    }

    /// The handles one kind of request updates, each made on first use and kept (making one means
    /// a registry lookup under a lock and building its label strings: too much for every request).
    /// Made lazily so that no series appears before it has a count.
    final class Handles: Sendable {
        let gateway: String, provider: String, model: String, status: Int
        let factory: PrometheusMetricsFactory
        /// The counters below, by `Slot`, made on first use.
        private let made = NIOLockedValueBox<[CoreMetrics.Counter?]>(Array(repeating: nil, count: Slot.allCases.count))
        let duration: CoreMetrics.Timer
        let ttfb: CoreMetrics.Timer

        enum Slot: Int, CaseIterable {
            case requests, input, output, cacheRead, cacheWrite, cost, cacheHit, cacheMiss, cacheBypass, upstreamErrors
        }

        init(gateway: String, provider: String, model: String, status: Int, factory: PrometheusMetricsFactory) {
            (self.gateway, self.provider, self.model, self.status, self.factory) = (gateway, provider, model, status, factory)
            let base = [("gateway", gateway), ("provider", provider)]
            duration = CoreMetrics.Timer(label: "gatemesh_request_duration_seconds", dimensions: base, factory: factory)
            ttfb = CoreMetrics.Timer(label: "gatemesh_time_to_first_byte_seconds", dimensions: base, factory: factory)
        }

        /// The counter of `slot`, made with its labels the first time.
        func counter(_ slot: Slot) -> CoreMetrics.Counter {
            made.withLockedValue { m in
                if let c = m[slot.rawValue] { return c }
                let (label, dimensions) = labels(slot)
                let c = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
                m[slot.rawValue] = c
                return c
            }
        }

        private func labels(_ slot: Slot) -> (String, [(String, String)]) {
            let base = [("gateway", gateway), ("provider", provider)]
            switch slot {
            case .requests: return ("gatemesh_requests_total", base + [("model", model), ("status", String(status))])
            case .input, .output, .cacheRead, .cacheWrite:
                return ("gatemesh_tokens_total", base + [("model", model), ("kind", NodeMetrics.tokenKinds[slot.rawValue - Slot.input.rawValue])])
            case .cost: return ("gatemesh_cost_nanodollars_total", base + [("model", model)])
            case .cacheHit, .cacheMiss, .cacheBypass:
                return ("gatemesh_cache_requests_total", [("gateway", gateway), ("status", ["hit", "miss", "bypass"][slot.rawValue - Slot.cacheHit.rawValue])])
            case .upstreamErrors: return ("gatemesh_upstream_errors_total", [("provider", provider), ("status", String(status))])
            }
        }
    }

    /// What a request's handles are kept under.
    struct HandlesKey: Hashable {
        var gateway: String, provider: String, model: Substring, status: Int
    }

    private let handles = NIOLockedValueBox<[HandlesKey: Handles]>([:])
    /// Per org and team (the virtual key's): requests and cost. Teams are made by operators, so
    /// the series stay as few as the teams.
    private let teams = NIOLockedValueBox<[String: (requests: CoreMetrics.Counter, cost: CoreMetrics.Counter)]>([:])
    static let tokenKinds = ["input", "output", "cache_read", "cache_write"]

    /// Counts one finished request: no string is built for a kind of request seen before.
    func record(_ r: RequestRecord) {
        // The price-table entry's model (`provider/model`), or `unpriced`.
        let model: Substring = r.pricedAs.map { p in p.lastIndex(of: "/").map { p[p.index(after: $0)...] } ?? p[...] } ?? "unpriced"
        let key = HandlesKey(gateway: r.gateway, provider: r.provider, model: model, status: r.status)
        let factory = self.factory
        let h = handles.withLockedValue { all in
            if let h = all[key] { return h }
            let h = Handles(gateway: r.gateway, provider: r.provider, model: String(model), status: r.status, factory: factory)
            all[key] = h
            return h
        }
        h.counter(.requests).increment()
        h.duration.recordMilliseconds(r.durationMs)
        if let ttfb = r.ttfbMs { h.ttfb.recordMilliseconds(ttfb) }
        if r.usage.input > 0 { h.counter(.input).increment(by: r.usage.input) }
        if r.usage.output > 0 { h.counter(.output).increment(by: r.usage.output) }
        if r.usage.cacheRead > 0 { h.counter(.cacheRead).increment(by: r.usage.cacheRead) }
        if r.usage.cacheWrite > 0 { h.counter(.cacheWrite).increment(by: r.usage.cacheWrite) }
        if let cost = r.cost, cost.nanos > 0 { h.counter(.cost).increment(by: Int(cost.nanos)) }
        switch r.cacheStatus {
        case "HIT": h.counter(.cacheHit).increment()
        case "MISS": h.counter(.cacheMiss).increment()
        case "BYPASS": h.counter(.cacheBypass).increment()
        default: break
        }
        if let team = r.principal?.team {
            let org = r.principal?.org ?? ""
            let factory = self.factory
            let counters = teams.withLockedValue { all in
                if let c = all[org + "\u{0}" + team] { return c }
                let dimensions = [("org", org), ("team", team)]
                let c = (CoreMetrics.Counter(label: "gatemesh_team_requests_total", dimensions: dimensions, factory: factory),
                         CoreMetrics.Counter(label: "gatemesh_team_cost_nanodollars_total", dimensions: dimensions, factory: factory))
                all[org + "\u{0}" + team] = c
                return c
            }
            counters.requests.increment()
            if let cost = r.cost, cost.nanos > 0 { counters.cost.increment(by: Int(cost.nanos)) }
        }
        if r.status == 502 || r.status == 504 || (r.status >= 500 && r.error != nil) {
            h.counter(.upstreamErrors).increment()
        }
    }

    /// The Prometheus text exposition, with the gauges read at scrape time.
    func exposition(log: RequestLog, inFlight requests: Int, client: UpstreamClient, limits: LimitsService? = nil,
                    cluster: ClusterService? = nil, exporter: LogExporter? = nil, traces: TraceExporter? = nil) -> String {
        if let traces {
            let s = traces.state.withLockedValue { ($0.exported, $0.dropped, $0.queue.count + $0.chains.count) }
            gauge("gatemesh_trace_spans_exported").record(s.0)
            gauge("gatemesh_trace_spans_dropped").record(s.1)
            gauge("gatemesh_trace_spans_queued").record(s.2)
        }
        if let exporter {
            let f = exporter.figures.withLockedValue { $0 }
            gauge("gatemesh_log_export_rows").record(f.exported)
            gauge("gatemesh_log_export_failures").record(f.failures)
            gauge("gatemesh_log_export_skipped_rows").record(f.skipped)
            if let last = try? log.lastSeq() { gauge("gatemesh_log_export_lag_rows").record(max(0, last - f.cursor)) }
        }
        if let cluster { recordCluster(cluster) }
        if let limits { recordRules(limits, peers: cluster.map { 1 + $0.readPeers.ask.count } ?? 1) }
        if let limits {
            journalOpen.record(limits.journal.openCount)
            counters.record(limits.engine.withLockedValue { $0.counters.count })
        }
        droppedRows.record(log.droppedRows)
        queuedRows.record(log.queuedRows)
        inFlight.record(requests)
        upstreamConnections.record(client.connectionsOpened)
        if let size = try? log.store.size() {
            gauge("gatemesh_storage_file_bytes").record(size.fileBytes)
            gauge("gatemesh_storage_wal_bytes").record(size.walBytes)
            gauge("gatemesh_storage_free_bytes").record(size.freeBytes)
        }
        gauge("gatemesh_storage_max_bytes").record(log.configuration.maxBytes ?? 0)
        let d = log.diskFigures
        gauge("gatemesh_log_rows_deleted_for_space").record(d.deletedForSpace)
        gauge("gatemesh_log_rows_dropped_for_space").record(d.droppedForSpace)
        gauge("gatemesh_log_rows_failed_writes").record(d.failedWrites)
        return registry.emitToString()
    }

    /// Each peer: its state (1 for the one it is in, 0 for the others), round trip, traffic since
    /// start both ways, and the age of its last counter delta (the gossip lag).
    private func recordCluster(_ cluster: ClusterService) {
        for p in cluster.peerFigures {
            let peer = [("peer", p.name)]
            for state in [Membership.State.alive, .suspect, .dead, .left] {
                gauge("gatemesh_cluster_peer_state", peer + [("state", state.description)]).record(p.state == state ? 1 : 0)
            }
            if let rtt = p.rttMs { gauge("gatemesh_cluster_peer_rtt_seconds", peer).record(Double(rtt) / 1000) }
            if let age = p.deltaAgeSeconds { gauge("gatemesh_cluster_peer_delta_age_seconds", peer).record(age) }
            gauge("gatemesh_cluster_peer_frames_received", peer).record(p.framesReceived)
            gauge("gatemesh_cluster_peer_bytes_received", peer).record(p.bytesReceived)
            gauge("gatemesh_cluster_peer_frames_sent", peer).record(p.framesSent)
            gauge("gatemesh_cluster_peer_bytes_sent", peer).record(p.bytesSent)
        }
    }

    /// Each rule: its mode, the rights leased to the nodes now (summed over its scope values, in
    /// its measure: nano-dollars, requests or tokens), and how far the cluster can go over it
    /// now: `strict` never; `bounded` by the rights the nodes hold (what a node cut off may still
    /// use unheard); `soft` by what the nodes admit within the gossip delay, which depends on the
    /// traffic (docs/budgets.md) and is not exported (-1).
    private func recordRules(_ limits: LimitsService, peers: Int) {
        var leased: [String: (rule: LimitRule, rights: Int64)] = [:]
        for c in limits.contributions() {
            leased[c.rule.id, default: (c.rule, 0)].rights += c.byNode.values.reduce(0) { $0 + $1.rights }
        }
        for rule in limits.engine.withLockedValue({ $0.rules }) {
            let labels = [("rule", rule.id)]
            for mode in [LimitRule.Enforcement.soft, .bounded, .strict] {
                gauge("gatemesh_limit_rule_mode", labels + [("mode", mode.rawValue)]).record(rule.enforcement == mode ? 1 : 0)
            }
            let rights = leased[rule.id]?.rights ?? 0
            gauge("gatemesh_limit_leased_rights", labels).record(rule.enforcement == .soft ? 0 : rights)
            let bound: Int64 = switch rule.enforcement {
            case .strict: 0
            case .bounded: peers > 1 ? rights : 0
            case .soft: peers > 1 ? -1 : 0
            }
            gauge("gatemesh_limit_overshoot_bound", labels).record(bound)
        }
    }

    /// Gauges read at scrape time, by label and dimensions, made on first use and kept.
    private let scraped = NIOLockedValueBox<[String: CoreMetrics.Gauge]>([:])

    func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return scraped.withLockedValue { made in
            if let g = made[key] { return g }
            let g = CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
            made[key] = g
            return g
        }
    }
}
