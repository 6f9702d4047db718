import CoreMetrics
import GateMeshAccounting
import GateMeshStore
import GateMeshUpstream
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
    }

    /// Counts one finished request.
    func record(_ r: RequestRecord) {
        let model = r.pricedAs.flatMap { $0.split(separator: "/", maxSplits: 1).last.map(String.init) } ?? "unpriced"
        let base = [("gateway", r.gateway), ("provider", r.provider)]
        CoreMetrics.Counter(label: "gatemesh_requests_total", dimensions: base + [("model", model), ("status", String(r.status))], factory: factory)
            .increment()
        CoreMetrics.Timer(label: "gatemesh_request_duration_seconds", dimensions: base, factory: factory)
            .recordMilliseconds(r.durationMs)
        if let ttfb = r.ttfbMs {
            CoreMetrics.Timer(label: "gatemesh_time_to_first_byte_seconds", dimensions: base, factory: factory).recordMilliseconds(ttfb)
        }
        for (kind, count) in [("input", r.usage.input), ("output", r.usage.output), ("cache_read", r.usage.cacheRead),
                              ("cache_write", r.usage.cacheWrite)] where count > 0 {
            CoreMetrics.Counter(label: "gatemesh_tokens_total", dimensions: base + [("model", model), ("kind", kind)], factory: factory)
                .increment(by: count)
        }
        if let cost = r.cost, cost.nanos > 0 {
            CoreMetrics.Counter(label: "gatemesh_cost_nanodollars_total", dimensions: base + [("model", model)], factory: factory)
                .increment(by: Int(cost.nanos))
        }
        if let status = r.cacheStatus {
            CoreMetrics.Counter(label: "gatemesh_cache_requests_total", dimensions: [("gateway", r.gateway), ("status", status.lowercased())],
                    factory: factory).increment()
        }
        if r.status == 502 || r.status == 504 || (r.status >= 500 && r.error != nil) {
            CoreMetrics.Counter(label: "gatemesh_upstream_errors_total", dimensions: [("provider", r.provider), ("status", String(r.status))],
                    factory: factory).increment()
        }
    }

    /// The Prometheus text exposition, with the gauges read at scrape time.
    func exposition(log: RequestLog, inFlight requests: Int, client: UpstreamClient) -> String {
        droppedRows.record(log.droppedRows)
        queuedRows.record(log.queuedRows)
        inFlight.record(requests)
        upstreamConnections.record(client.connectionsOpened)
        return registry.emitToString()
    }
}
