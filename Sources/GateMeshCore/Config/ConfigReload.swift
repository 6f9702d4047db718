/// What a config reload may change in place, and a canonical text of a config to digest.
///
/// A running node changes providers, gateways (with their tokens, rules, routes, retries and
/// cache TTLs), the admin token, cache sizes, upstream timeouts, the body-size limit, the logged
/// payload size and the default output-token estimate in place. The settings below are read once
/// when the node starts (listeners, identity, the data directory, the peer transport, the HTTP
/// server's header limits, the log writer, the alert sender): a reload that changes one of them is
/// refused whole, naming them, and the node goes on with the config it has.
extension Settings {
    /// The config keys that differ between this config (in force) and `new` and take a restart.
    public func restartOnlyChanges(to new: Settings) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ key: String, _ a: T, _ b: T) { if a != b { out.append(key) } }
        check("node.name", node.name, new.node.name)
        check("node.region", node.region, new.node.region)
        check("node.listen", node.listen, new.node.listen)
        check("node.data_dir", node.dataDir, new.node.dataDir)
        check("node.drain_timeout", node.drainTimeoutMs, new.node.drainTimeoutMs)
        switch (cluster, new.cluster) {
        case (nil, nil): break
        case (nil, _?), (_?, nil): out.append("cluster")
        case (let a?, let b?):
            check("cluster.listen", a.listen, b.listen)
            check("cluster.advertise", a.advertise, b.advertise)
            check("cluster.seeds", a.seeds, b.seeds)
            check("cluster.tls.ca", a.caFile, b.caFile)
            check("cluster.tls.cert", a.certFile, b.certFile)
            check("cluster.tls.key", a.keyFile, b.keyFile)
            check("cluster.max_frame_bytes", a.maxFrameBytes, b.maxFrameBytes)
            check("cluster.idle_timeout", a.idleTimeoutMs, b.idleTimeoutMs)
            check("cluster.profile", a.profile, b.profile)
            check("cluster.probe_interval", a.probeIntervalMs, b.probeIntervalMs)
            check("cluster.probe_timeout", a.probeTimeoutMs, b.probeTimeoutMs)
            check("cluster.suspicion_min", a.suspicionMinMs, b.suspicionMinMs)
        }
        check("upstream.http2", upstream.http2, new.upstream.http2)
        check("upstream.ca_file", upstream.caFile, new.upstream.caFile)
        check("upstream.response_buffer_bytes", upstream.responseBufferBytes, new.upstream.responseBufferBytes)
        check("limits.max_header_bytes", limits.maxHeaderBytes, new.limits.maxHeaderBytes)
        check("limits.max_header_count", limits.maxHeaderCount, new.limits.maxHeaderCount)
        check("limits.max_connections", limits.maxConnections, new.limits.maxConnections)
        check("logging.retention", logging.retentionMs, new.logging.retentionMs)
        check("logging.max_rows", logging.maxRows, new.logging.maxRows)
        check("logging.queue_size", logging.queueSize, new.logging.queueSize)
        check("storage.max_bytes", storage.maxBytes, new.storage.maxBytes)
        check("logging.export", logging.export, new.logging.export)
        check("telemetry.otlp", otlp, new.otlp)
        check("reservations.timeout", reservations.timeoutMs, new.reservations.timeoutMs)
        check("reservations.rights_wait", reservations.rightsWaitMs, new.reservations.rightsWaitMs)
        check("alerts.webhook", alerts.webhook, new.alerts.webhook)
        check("alerts.secret", alerts.secret, new.alerts.secret)
        return out
    }

    /// The top-level sections that differ between this config and `new` (for the reload's log
    /// line and answer).
    public func changedSections(to new: Settings) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ key: String, _ a: T, _ b: T) { if a != b { out.append(key) } }
        check("node", node, new.node)
        check("admin", admin, new.admin)
        check("limits", limits, new.limits)
        check("upstream", upstream, new.upstream)
        check("providers", providers, new.providers)
        check("gateways", gateways, new.gateways)
        check("logging", logging, new.logging)
        check("reservations", reservations, new.reservations)
        check("alerts", alerts, new.alerts)
        check("cache", cache, new.cache)
        check("cluster", cluster, new.cluster)
        return out
    }
}

/// A canonical text of a value for digests: every stored property by name, in declaration order,
/// with the entries of dictionaries and sets sorted, so two processes with equal settings write
/// the same text (Swift's dictionaries iterate in a per-process order). Texts are comparable only
/// between builds of the same version.
public enum CanonicalText {
    public static func of(_ value: Any) -> String {
        var out = ""
        write(value, into: &out)
        return out
    }

    static func write(_ value: Any, into out: inout String) {
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            if let some = mirror.children.first { write(some.value, into: &out) } else { out += "nil" }
        case .dictionary:
            let entries = mirror.children.map { entry -> String in
                let pair = Array(Mirror(reflecting: entry.value).children)
                guard pair.count == 2 else { return of(entry.value) }
                return of(pair[0].value) + ":" + of(pair[1].value)
            }.sorted()
            out += "{" + entries.joined(separator: ",") + "}"
        case .set:
            out += "<" + mirror.children.map { of($0.value) }.sorted().joined(separator: ",") + ">"
        case .collection:
            out += "[" + mirror.children.map { of($0.value) }.joined(separator: ",") + "]"
        case .struct, .class, .tuple, .enum:
            guard !mirror.children.isEmpty else {
                out += String(reflecting: value)
                return
            }
            out += "\(mirror.subjectType)("
            for (i, child) in mirror.children.enumerated() {
                if i > 0 { out += "," }
                out += (child.label ?? "") + "="
                write(child.value, into: &out)
            }
            out += ")"
        default:
            out += String(reflecting: value)
        }
    }
}
