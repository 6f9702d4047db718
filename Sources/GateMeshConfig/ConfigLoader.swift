import GateMeshAccounting
import GateMeshCore
import Yams

/// Reads a YAML config into a validated `Settings`. Pure: the caller reads the file and
/// passes the environment, so every rule here is testable without I/O.
///
/// Unknown keys are errors (a typo must not silently disable a setting), and so are keys of the
/// product's config shape that this build does not enforce yet: a budget that is accepted but not
/// enforced would be worse than a refusal.
public enum ConfigLoader {
    public static func parse(yaml: String, environment: [String: String]) throws(ConfigError) -> Settings {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(key: "", line: nil, message: "not valid YAML: \(error)")
        }
        var config = Settings()
        guard let root else { return config }
        let reader = Reader(environment: environment)
        let top = try reader.mapping(root, key: "")
        try reader.checkKeys(top, key: "", allowed: ["node", "admin", "limits", "upstream", "providers", "gateways", "cluster", "logging", "reservations", "alerts", "cache", "storage", "telemetry"])

        if let node = top.value("node") { try reader.readNode(node, into: &config.node) }
        if let admin = top.value("admin") {
            let m = try reader.mapping(admin, key: "admin")
            try reader.checkKeys(m, key: "admin", allowed: ["token"])
            if let token = m.value("token") {
                let value = try reader.string(token, key: "admin.token", allowEmpty: true)
                config.admin.token = value.isEmpty ? nil : value
            }
        }
        if let limits = top.value("limits") { try reader.readLimits(limits, into: &config.limits) }
        if let upstream = top.value("upstream") { try reader.readUpstream(upstream, into: &config.upstream) }
        if let logging = top.value("logging") { try reader.readLogging(logging, into: &config.logging) }
        if let c = top.value("cache") {
            let m = try reader.mapping(c, key: "cache")
            try reader.checkKeys(m, key: "cache", allowed: ["memory", "disk", "max_entry", "purge_interval"])
            if let v = m.value("memory") { config.cache.memoryBytes = try reader.bytes(v, key: "cache.memory", range: 0...(1 << 40)) }
            if let v = m.value("disk") { config.cache.diskBytes = try reader.bytes(v, key: "cache.disk", range: 0...(1 << 50)) }
            if let v = m.value("max_entry") { config.cache.maxEntryBytes = try reader.bytes(v, key: "cache.max_entry", range: 1024...(1 << 30)) }
            if let v = m.value("purge_interval") {
                config.cache.purgeIntervalMs = try reader.durationMs(v, key: "cache.purge_interval", range: 1000...86_400_000)
            }
        }
        if let t = top.value("telemetry") {
            let m = try reader.mapping(t, key: "telemetry")
            try reader.checkKeys(m, key: "telemetry", allowed: ["otlp"])
            if let o = m.value("otlp") { config.otlp = try reader.otlp(o) }
        }
        if let st = top.value("storage") {
            let m = try reader.mapping(st, key: "storage")
            try reader.checkKeys(m, key: "storage", allowed: ["max_bytes"])
            if let v = m.value("max_bytes") {
                config.storage.maxBytes = try reader.bytes(v, key: "storage.max_bytes", range: 0...(1 << 50))
                guard config.storage.maxBytes == 0 || config.storage.maxBytes >= 1 << 20 else {
                    throw ConfigError(key: "storage.max_bytes", line: v.mark?.line,
                                      message: "must be 0 (no cap) or at least 1MiB, got \(config.storage.maxBytes) bytes")
                }
            }
        }
        // The cache's copy on disk is in the same file: it may take at most half of the cap, so
        // that the request log keeps room (beyond the cap it is the log that gives way).
        // A cache entry is written in one transaction, through the WAL, which holds a tenth of the cap.
        if config.storage.maxBytes > 0, config.cache.maxEntryBytes > config.storage.maxBytes / 20 {
            throw ConfigError(key: "cache.max_entry", line: nil,
                              message: "is \(config.cache.maxEntryBytes) bytes, more than a twentieth of storage.max_bytes (\(config.storage.maxBytes)): an entry goes through the WAL, which holds a tenth of the cap; set cache.max_entry to at most \(config.storage.maxBytes / 20)")
        }
        if config.storage.maxBytes > 0, config.cache.diskBytes > config.storage.maxBytes / 2 {
            throw ConfigError(key: "cache.disk", line: nil,
                              message: "is \(config.cache.diskBytes) bytes, more than half of storage.max_bytes (\(config.storage.maxBytes)): the cache's copy on disk is in the same database file; set cache.disk to at most \(config.storage.maxBytes / 2)")
        }
        if let a = top.value("alerts") {
            let m = try reader.mapping(a, key: "alerts")
            try reader.checkKeys(m, key: "alerts", allowed: ["webhook", "secret"])
            if let w = m.value("webhook") { config.alerts.webhook = try reader.httpURL(w, key: "alerts.webhook") }
            if let s = m.value("secret") {
                let secret = try reader.string(s, key: "alerts.secret", allowEmpty: true)
                config.alerts.secret = secret.isEmpty ? nil : secret
            }
        }
        if let r = top.value("reservations") {
            let m = try reader.mapping(r, key: "reservations")
            try reader.checkKeys(m, key: "reservations", allowed: ["default_output_tokens", "timeout", "rights_wait"])
            if let v = m.value("default_output_tokens") {
                config.reservations.defaultOutputTokens = try reader.int(v, key: "reservations.default_output_tokens", range: 1...10_000_000)
            }
            if let v = m.value("timeout") { config.reservations.timeoutMs = try reader.durationMs(v, key: "reservations.timeout", range: 1000...86_400_000) }
            if let v = m.value("rights_wait") {
                config.reservations.rightsWaitMs = try reader.durationMs(v, key: "reservations.rights_wait", range: 0...60_000)
            }
        }
        if let providers = top.value("providers") { config.providers = try reader.readProviders(providers) }
        if let gateways = top.value("gateways") {
            config.gateways = try reader.readGateways(gateways, providers: ProviderCatalogue(overrides: config.providers))
        }
        if config.alerts.webhook == nil,
           let (g, rule) = config.gateways.lazy.flatMap({ g in g.limits.map { (g, $0) } }).first(where: { !$0.1.alertPermille.isEmpty }) {
            throw ConfigError(key: "alerts.webhook", line: nil,
                              message: "rule '\(rule.id)' of gateway '\(g.id)' has alerts, but no alerts.webhook is configured to send them to")
        }
        if let cluster = top.value("cluster") { config.cluster = try reader.readCluster(cluster) }
        return config
    }
}

// MARK: - Reading typed values with precise errors

struct Reader {
    let environment: [String: String]
    /// False for documents that are not config files (the admin API's rules): `${…}` stays literal.
    var expandsEnvironment = true

    func mapping(_ node: Node, key: String) throws(ConfigError) -> Node.Mapping {
        guard case .mapping(let m) = node else {
            throw ConfigError(key: key, line: node.mark?.line, message: "expected a mapping of keys to values")
        }
        return m
    }

    func sequence(_ node: Node, key: String) throws(ConfigError) -> Node.Sequence {
        guard case .sequence(let s) = node else {
            throw ConfigError(key: key, line: node.mark?.line, message: "expected a list")
        }
        return s
    }

    func checkKeys(_ m: Node.Mapping, key: String, allowed: Set<String>, later: [String: String] = [:]) throws(ConfigError) {
        for (k, v) in m {
            guard let name = k.string else {
                throw ConfigError(key: key, line: k.mark?.line, message: "keys must be strings")
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            if let what = later[name] {
                throw ConfigError(key: path, line: v.mark?.line,
                                  message: "\(what) is not available in this build yet; remove '\(name)' to start")
            }
            if !allowed.contains(name) {
                throw ConfigError(key: path, line: k.mark?.line,
                                  message: "unknown key; expected one of: \(allowed.sorted().joined(separator: ", "))")
            }
        }
    }

    /// A scalar as a string, with `${ENV}` expanded.
    func string(_ node: Node, key: String, allowEmpty: Bool = false) throws(ConfigError) -> String {
        guard case .scalar(let s) = node else {
            throw ConfigError(key: key, line: node.mark?.line, message: "expected a single value, not a list or mapping")
        }
        guard expandsEnvironment else {
            if s.string.isEmpty && !allowEmpty { throw ConfigError(key: key, line: s.mark?.line, message: "must not be empty") }
            return s.string
        }
        let expanded: EnvironmentExpansion.Result
        do {
            expanded = try EnvironmentExpansion.expand(s.string, environment: environment)
        } catch {
            throw ConfigError(key: key, line: s.mark?.line, message: error.message)
        }
        if expanded.value.isEmpty && !allowEmpty {
            let why = expanded.missing.isEmpty ? "" :
                " (environment variable \(expanded.missing.joined(separator: ", ")) is not set)"
            throw ConfigError(key: key, line: s.mark?.line, message: "must not be empty\(why)")
        }
        // An optional value that is exactly one unset variable means "not set"; an unset variable
        // inside a longer value ("Bearer ${TOKEN}") is a mistake that must not pass silently.
        if !expanded.missing.isEmpty && !expanded.value.isEmpty {
            throw ConfigError(key: key, line: s.mark?.line,
                              message: "environment variable \(expanded.missing.joined(separator: ", ")) is not set; use ${NAME:-fallback} for a default")
        }
        return expanded.value
    }

    func int(_ node: Node, key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try string(node, key: key)
        guard let value = Int(text.replacing("_", with: "")), range.contains(value) else {
            throw ConfigError(key: key, line: node.mark?.line,
                              message: "expected a whole number from \(range.lowerBound) to \(range.upperBound), got '\(text)'")
        }
        return value
    }

    func bool(_ node: Node, key: String) throws(ConfigError) -> Bool {
        let text = try string(node, key: key).lowercased()
        switch text {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigError(key: key, line: node.mark?.line, message: "expected true or false, got '\(text)'")
        }
    }

    /// A duration: `250ms`, `30s`, `5m`, `2h`, `1d`, or a bare number of seconds. Returns milliseconds.
    /// One of an enum's spellings; anything else is an error listing them (`expected lan or wan, got 'moon'`).
    func choice<E: RawRepresentable>(_ node: Node, key: String, expected: String) throws(ConfigError) -> E where E.RawValue == String {
        let text = try string(node, key: key)
        guard let value = E(rawValue: text) else {
            throw ConfigError(key: key, line: node.mark?.line, message: "expected \(expected), got '\(text)'")
        }
        return value
    }

    func durationMs(_ node: Node, key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try string(node, key: key)
        guard let ms = Units.durationMs(text), range.contains(ms) else {
            throw ConfigError(key: key, line: node.mark?.line,
                              message: "expected a duration such as 500ms, 30s or 5m between \(Units.describeMs(range.lowerBound)) and \(Units.describeMs(range.upperBound)), got '\(text)'")
        }
        return ms
    }

    /// A size: bytes, or a number with KB, KiB, MB, MiB, GB, GiB.
    func bytes(_ node: Node, key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int {
        let text = try string(node, key: key)
        guard let n = Units.bytes(text), range.contains(n) else {
            throw ConfigError(key: key, line: node.mark?.line,
                              message: "expected a size such as 65536, 64KiB or 32MiB from \(range.lowerBound) to \(range.upperBound) bytes, got '\(text)'")
        }
        return n
    }

    // MARK: Sections

    func readNode(_ node: Node, into out: inout NodeConfig) throws(ConfigError) {
        let m = try mapping(node, key: "node")
        try checkKeys(m, key: "node", allowed: ["name", "region", "listen", "data_dir", "drain_timeout"])
        if let v = m.value("name") {
            out.name = try string(v, key: "node.name")
            guard Names.isValidName(out.name) else {
                throw ConfigError(key: "node.name", line: v.mark?.line, message: Names.rule)
            }
        }
        if let v = m.value("region") { out.region = try string(v, key: "node.region") }
        if let v = m.value("listen") {
            let text = try string(v, key: "node.listen")
            guard let address = ListenAddress.parse(text) else {
                throw ConfigError(key: "node.listen", line: v.mark?.line,
                                  message: "expected host:port such as 127.0.0.1:8787 or [::1]:8787, got '\(text)'")
            }
            out.listen = address
        }
        if let v = m.value("data_dir") { out.dataDir = try string(v, key: "node.data_dir") }
        if let v = m.value("drain_timeout") { out.drainTimeoutMs = try durationMs(v, key: "node.drain_timeout", range: 0...3_600_000) }
    }

    func readLimits(_ node: Node, into out: inout LimitsConfig) throws(ConfigError) {
        let m = try mapping(node, key: "limits")
        try checkKeys(m, key: "limits", allowed: ["max_body_bytes", "max_header_bytes", "max_header_count", "max_connections"])
        if let v = m.value("max_body_bytes") { out.maxBodyBytes = try bytes(v, key: "limits.max_body_bytes", range: 1...(1 << 30)) }
        if let v = m.value("max_header_bytes") { out.maxHeaderBytes = try bytes(v, key: "limits.max_header_bytes", range: 1024...(1 << 20)) }
        if let v = m.value("max_header_count") { out.maxHeaderCount = try int(v, key: "limits.max_header_count", range: 8...10_000) }
        if let v = m.value("max_connections") { out.maxConnections = try int(v, key: "limits.max_connections", range: 1...1_000_000) }
    }

    func readUpstream(_ node: Node, into out: inout UpstreamConfig) throws(ConfigError) {
        let m = try mapping(node, key: "upstream")
        try checkKeys(m, key: "upstream", allowed: [
            "connect_timeout", "first_byte_timeout", "total_timeout", "http2", "ca_file", "response_buffer_bytes",
        ])
        if let v = m.value("connect_timeout") { out.connectTimeoutMs = try durationMs(v, key: "upstream.connect_timeout", range: 1...600_000) }
        if let v = m.value("first_byte_timeout") { out.firstByteTimeoutMs = try durationMs(v, key: "upstream.first_byte_timeout", range: 1...86_400_000) }
        if let v = m.value("total_timeout") { out.totalTimeoutMs = try durationMs(v, key: "upstream.total_timeout", range: 0...86_400_000) }
        if let v = m.value("http2") { out.http2 = try bool(v, key: "upstream.http2") }
        if let v = m.value("ca_file") { out.caFile = try string(v, key: "upstream.ca_file") }
        if let v = m.value("response_buffer_bytes") {
            out.responseBufferBytes = try bytes(v, key: "upstream.response_buffer_bytes", range: 16_384...(64 << 20))
        }
    }

    func readLogging(_ node: Node, into out: inout LoggingConfig) throws(ConfigError) {
        let m = try mapping(node, key: "logging")
        try checkKeys(m, key: "logging", allowed: ["retention", "max_rows", "queue_size", "max_payload_bytes", "redact", "export"])
        if let v = m.value("retention") { out.retentionMs = try durationMs(v, key: "logging.retention", range: 0...(3650 * 86_400_000)) }
        if let v = m.value("max_rows") { out.maxRows = try int(v, key: "logging.max_rows", range: 0...1_000_000_000) }
        if let v = m.value("queue_size") { out.queueSize = try int(v, key: "logging.queue_size", range: 1...10_000_000) }
        if let v = m.value("max_payload_bytes") { out.maxPayloadBytes = try bytes(v, key: "logging.max_payload_bytes", range: 0...(16 << 20)) }
        if let v = m.value("redact") { out.redact = try redactRules(v) }
        if let v = m.value("export") { out.export = try logExport(v) }
    }

    /// `telemetry.otlp: {endpoint, headers, sample_ratio, queue_size}`.
    func otlp(_ node: Node) throws(ConfigError) -> OTLPConfig {
        let m = try mapping(node, key: "telemetry.otlp")
        try checkKeys(m, key: "telemetry.otlp", allowed: ["endpoint", "headers", "sample_ratio", "queue_size"])
        var out = OTLPConfig(endpoint: try httpURL(m, "endpoint", of: "telemetry.otlp", node, what: "an endpoint (the collector's /v1/traces URL)"))
        if let h = m.value("headers") { out.headers = try headerMap(h, key: "telemetry.otlp.headers") }
        if let v = m.value("sample_ratio") {
            guard let text = v.string, let ratio = Double(text), (0...1).contains(ratio) else {
                throw ConfigError(key: "telemetry.otlp.sample_ratio", line: v.mark?.line, message: "expected a number from 0 to 1")
            }
            out.sampleRatio = ratio
        }
        if let v = m.value("queue_size") { out.queueSize = try int(v, key: "telemetry.otlp.queue_size", range: 1...1_000_000) }
        return out
    }

    /// The required `http://` or `https://` URL under `field` of the mapping `m` at `key`.
    func httpURL(_ m: Node.Mapping, _ field: String, of key: String, _ node: Node, what: String) throws(ConfigError) -> String {
        guard let u = m.value(field) else { throw ConfigError(key: key, line: node.mark?.line, message: "needs \(what)") }
        return try httpURL(u, key: "\(key).\(field)")
    }

    /// An `http://` or `https://` URL (a webhook, a sink, a collector).
    func httpURL(_ node: Node, key: String) throws(ConfigError) -> String {
        let url = try string(node, key: key)
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ConfigError(key: key, line: node.mark?.line, message: "expected an http:// or https:// URL, got '\(url)'")
        }
        return url
    }

    /// Header names (letters, digits, '-') to values without line breaks.
    func headerMap(_ node: Node, key: String) throws(ConfigError) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in try mapping(node, key: key) {
            guard let name = k.string, !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
                throw ConfigError(key: key, line: k.mark?.line, message: "header names are letters, digits and '-'")
            }
            let value = try string(v, key: "\(key).\(name)", allowEmpty: true)
            guard !value.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                throw ConfigError(key: "\(key).\(name)", line: v.mark?.line, message: "a header value cannot hold a line break")
            }
            out[name] = value
        }
        return out
    }

    /// `logging.export: {url, headers, batch_rows, interval}`.
    func logExport(_ node: Node) throws(ConfigError) -> LogExportConfig {
        let m = try mapping(node, key: "logging.export")
        try checkKeys(m, key: "logging.export", allowed: ["url", "headers", "batch_rows", "interval"])
        var out = LogExportConfig(url: try httpURL(m, "url", of: "logging.export", node, what: "a url"))
        if let h = m.value("headers") { out.headers = try headerMap(h, key: "logging.export.headers") }
        if let v = m.value("batch_rows") { out.batchRows = try int(v, key: "logging.export.batch_rows", range: 1...10_000) }
        if let v = m.value("interval") { out.intervalMs = try durationMs(v, key: "logging.export.interval", range: 100...3_600_000) }
        return out
    }

    /// `logging.redact`: a list of built-in rule names and `{pattern, replace}` mappings.
    func redactRules(_ node: Node) throws(ConfigError) -> [RedactRule] {
        var out: [RedactRule] = []
        for (i, item) in try sequence(node, key: "logging.redact").enumerated() {
            let key = "logging.redact[\(i)]"
            if let name = item.string, item.mapping == nil {
                guard Redactor.builtIn(name) != nil else {
                    throw ConfigError(key: key, line: item.mark?.line,
                                      message: "unknown rule '\(name)': the built-in ones are \(Redactor.builtInNames.joined(separator: ", ")); or give {pattern, replace}")
                }
                out.append(RedactRule(name: name))
                continue
            }
            let m = try mapping(item, key: key)
            try checkKeys(m, key: key, allowed: ["pattern", "replace"])
            guard let p = m.value("pattern") else { throw ConfigError(key: key, line: item.mark?.line, message: "needs a pattern") }
            let pattern = try string(p, key: "\(key).pattern")
            let replace = try m.value("replace").map { n throws(ConfigError) in try string(n, key: "\(key).replace", allowEmpty: true) } ?? "[REDACTED]"
            do {
                _ = try Redactor.rule("pattern", pattern: pattern, replace: replace)
            } catch {
                throw ConfigError(key: "\(key).pattern", line: p.mark?.line, message: "not a valid regular expression: \(error)")
            }
            out.append(RedactRule(name: "pattern \(i)", pattern: pattern, replace: replace))
        }
        return out
    }

    func readProviders(_ node: Node) throws(ConfigError) -> [String: ProviderConfig] {
        let m = try mapping(node, key: "providers")
        let known = Set(ProviderSpec.builtIn.map(\.id)).union(ProviderSpec.aliases.keys)
        var out: [String: ProviderConfig] = [:]
        for (k, v) in m {
            guard let name = k.string else { throw ConfigError(key: "providers", line: k.mark?.line, message: "keys must be strings") }
            let key = "providers.\(name)"
            let isCustom = name.hasPrefix("custom-")
            if isCustom {
                let suffix = name.dropFirst("custom-".count)
                guard Names.isValidName(String(suffix)) else {
                    throw ConfigError(key: key, line: k.mark?.line, message: "custom provider names are custom-{name}; " + Names.rule)
                }
            } else if !known.contains(name) {
                throw ConfigError(key: key, line: k.mark?.line,
                                  message: "unknown provider; built-in providers are \(known.sorted().joined(separator: ", ")), and any OpenAI-compatible server can be added as custom-{name}")
            }
            var config = ProviderConfig()
            if case .scalar(let s) = v, s.string.isEmpty || s.string == "~" || s.string == "null" {
                // `openai:` with nothing under it keeps the defaults.
            } else {
                let pm = try mapping(v, key: key)
                try checkKeys(pm, key: key, allowed: ["base_url", "api_key", "models"])
                if let models = pm.value("models") { config.models = try readPrices(models, key: "\(key).models") }
                if let b = pm.value("base_url") {
                    let url = try string(b, key: "\(key).base_url")
                    guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8,
                          !url.contains("?"), !url.contains("#"), !url.contains(where: { $0 == " " }) else {
                        throw ConfigError(key: "\(key).base_url", line: b.mark?.line,
                                          message: "expected an http:// or https:// URL without query or fragment, got '\(url)'")
                    }
                    config.baseURL = url
                }
                if let a = pm.value("api_key") {
                    let keyValue = try string(a, key: "\(key).api_key", allowEmpty: true)
                    config.apiKey = keyValue.isEmpty ? nil : keyValue
                }
            }
            if isCustom && config.baseURL == nil {
                throw ConfigError(key: "\(key).base_url", line: v.mark?.line,
                                  message: "a custom provider needs a base_url, e.g. http://127.0.0.1:11434/v1")
            }
            let canonical = ProviderSpec.aliases[name] ?? name
            if let other = out.keys.first(where: { (ProviderSpec.aliases[$0] ?? $0) == canonical }) {
                throw ConfigError(key: key, line: k.mark?.line,
                                  message: "'\(name)' and '\(other)' name the same provider; configure it once")
            }
            out[name] = config
        }
        return out
    }

    /// `models: {gpt-x: {input: "1.25", output: "10", cache_read: "0.125"}}`, dollars per million tokens.
    func readPrices(_ node: Node, key: String) throws(ConfigError) -> [String: PriceOverride] {
        let m = try mapping(node, key: key)
        var out: [String: PriceOverride] = [:]
        for (k, v) in m {
            guard let model = k.string, !model.isEmpty else { throw ConfigError(key: key, line: k.mark?.line, message: "model ids must be strings") }
            let modelKey = "\(key).\(model)"
            let pm = try mapping(v, key: modelKey)
            try checkKeys(pm, key: modelKey, allowed: ["input", "output", "cache_read", "cache_write"])
            func price(_ name: String, required: Bool) throws(ConfigError) -> String? {
                guard let node = pm.value(name) else {
                    if required { throw ConfigError(key: "\(modelKey).\(name)", line: v.mark?.line, message: "required (dollars per million tokens)") }
                    return nil
                }
                let text = try string(node, key: "\(modelKey).\(name)")
                guard TokenPrice(dollarsPerMillion: text) != nil else {
                    throw ConfigError(key: "\(modelKey).\(name)", line: node.mark?.line,
                                      message: "expected dollars per million tokens such as 0.15 (at most six decimals), got '\(text)'")
                }
                return text
            }
            out[model] = PriceOverride(input: try price("input", required: true)!, output: try price("output", required: true)!,
                                       cacheRead: try price("cache_read", required: false), cacheWrite: try price("cache_write", required: false))
        }
        return out
    }

    /// One budget or rate limit. Budgets count money (`usd`) or tokens; rate limits count requests
    /// or tokens. See docs/budgets.md for the shape.
    func readRule(_ node: Node, key: String, gateway: String, budget: Bool, extraKeys: Set<String> = [], defaultID: String? = nil) throws(ConfigError) -> LimitRule {
        let m = try mapping(node, key: key)
        let measures = budget ? ["usd", "tokens", "input_tokens", "output_tokens"] : ["requests", "tokens", "input_tokens", "output_tokens"]
        let otherMeasure = budget ? "requests" : "usd"
        if let misplaced = m.value(otherMeasure) {
            throw ConfigError(key: "\(key).\(otherMeasure)", line: misplaced.mark?.line,
                              message: "'\(otherMeasure)' is not a measure of a \(budget ? "budget" : "rate limit"): budgets count usd or tokens, rate limits count requests or tokens")
        }
        try checkKeys(m, key: key, allowed: Set(["id", "scope", "window", "action", "alerts", "enforcement"] + measures).union(extraKeys))
        let id: String
        if let idNode = m.value("id") {
            id = try string(idNode, key: "\(key).id")
            guard Names.isValidName(id) else { throw ConfigError(key: "\(key).id", line: idNode.mark?.line, message: Names.rule) }
        } else if let defaultID {
            guard Names.isValidName(defaultID) else { throw ConfigError(key: "\(key).id", line: nil, message: Names.rule) }
            id = defaultID
        } else {
            throw ConfigError(key: "\(key).id", line: node.mark?.line, message: "every rule needs an id")
        }

        // The measure and its limit: exactly one.
        let present = measures.filter { m.value($0) != nil }
        guard present.count == 1, let measureKey = present.first, let limitNode = m.value(measureKey) else {
            throw ConfigError(key: key, line: node.mark?.line, message: "set exactly one of \(measures.joined(separator: ", ")) as the limit")
        }
        let measure: LimitRule.Measure
        let limit: Int64
        switch measureKey {
        case "usd":
            let text = try string(limitNode, key: "\(key).usd")
            guard let money = Money.parseDollars(text), money.nanos > 0 else {
                throw ConfigError(key: "\(key).usd", line: limitNode.mark?.line, message: "expected a positive dollar amount such as 50 or 0.25, got '\(text)'")
            }
            measure = .usd
            limit = money.nanos
        default:
            measure = measureKey == "requests" ? .requests : measureKey == "tokens" ? .totalTokens
                : measureKey == "input_tokens" ? .inputTokens : .outputTokens
            limit = Int64(try int(limitNode, key: "\(key).\(measureKey)", range: 1...Int(Int32.max) * 1000))
        }

        // The scope: split_by (one or a list) and only (a mapping of dimension to value).
        var scope: [LimitRule.Scope] = []
        if let scopeNode = m.value("scope") {
            let sm = try mapping(scopeNode, key: "\(key).scope")
            try checkKeys(sm, key: "\(key).scope", allowed: ["split_by", "only"])
            if let split = sm.value("split_by") {
                let names: [(String, Node)]
                if case .sequence(let seq) = split {
                    names = try seq.enumerated().map { (j, n) throws(ConfigError) in (try string(n, key: "\(key).scope.split_by[\(j)]"), n) }
                } else {
                    names = [(try string(split, key: "\(key).scope.split_by"), split)]
                }
                for (name, n) in names { scope.append(.split(try dimension(name, key: "\(key).scope.split_by", line: n.mark?.line))) }
            }
            if let only = sm.value("only") {
                for (k, v) in try mapping(only, key: "\(key).scope.only") {
                    let name = k.string ?? ""
                    let d = try dimension(name, key: "\(key).scope.only", line: k.mark?.line)
                    scope.append(.only(d, try string(v, key: "\(key).scope.only.\(name)")))
                }
            }
        }

        // The window.
        guard let windowNode = m.value("window") else {
            throw ConfigError(key: "\(key).window", line: node.mark?.line, message: "every rule needs a window, e.g. {calendar: day} or {sliding: 1m}")
        }
        let window = try readWindow(windowNode, key: "\(key).window", budget: budget)

        // The action.
        var action = LimitRule.Action.block
        if let a = m.value("action") {
            if case .scalar = a {
                let text = try string(a, key: "\(key).action")
                guard text == "block" else {
                    throw ConfigError(key: "\(key).action", line: a.mark?.line, message: "expected block or {downgrade: {model: …}}, got '\(text)'")
                }
            } else {
                let am = try mapping(a, key: "\(key).action")
                try checkKeys(am, key: "\(key).action", allowed: ["downgrade"])
                guard let d = am.value("downgrade") else {
                    throw ConfigError(key: "\(key).action", line: a.mark?.line, message: "expected block or {downgrade: {model: …}}")
                }
                let dm = try mapping(d, key: "\(key).action.downgrade")
                try checkKeys(dm, key: "\(key).action.downgrade", allowed: ["model", "provider"])
                guard let model = dm.value("model") else {
                    throw ConfigError(key: "\(key).action.downgrade.model", line: d.mark?.line, message: "the model to serve instead is required")
                }
                action = .downgrade(provider: try dm.value("provider").map { n throws(ConfigError) in try string(n, key: "\(key).action.downgrade.provider") },
                                    model: try string(model, key: "\(key).action.downgrade.model"))
            }
        }

        // Alerts: fractions of the limit.
        var alerts: [Int] = []
        if let a = m.value("alerts") {
            for (j, n) in try sequence(a, key: "\(key).alerts").enumerated() {
                let text = try string(n, key: "\(key).alerts[\(j)]")
                guard let f = Double(text), f > 0, f <= 10 else {
                    throw ConfigError(key: "\(key).alerts[\(j)]", line: n.mark?.line, message: "expected a fraction of the limit such as 0.8, got '\(text)'")
                }
                alerts.append(Int((f * 1000).rounded()))
            }
        }
        // Enforcement: how hard the limit holds in a cluster.
        var enforcement = LimitRule.Enforcement.defaultMode(for: window, kind: budget ? .budget : .rateLimit)
        if let e = m.value("enforcement") {
            let mode: LimitRule.Enforcement = try choice(e, key: "\(key).enforcement", expected: "soft, bounded or strict")
            guard mode == .soft || LimitRule.Enforcement.allowed(for: window) else {
                throw ConfigError(key: "\(key).enforcement", line: e.mark?.line,
                                  message: "\(mode.rawValue) needs a calendar or fixed window (its rights are kept per period); rolling and sliding windows are enforced soft")
            }
            enforcement = mode
        }
        return LimitRule(id: id, gateway: gateway, kind: budget ? .budget : .rateLimit, scope: scope, measure: measure, limit: limit,
                         window: window, action: action, alertPermille: alerts.sorted(), enforcement: enforcement)
    }

    /// `cluster: {listen, advertise, seeds: [...], tls: {ca, cert, key}, max_frame_bytes, idle_timeout,
    /// profile, probe_interval, probe_timeout, suspicion_min}`.
    func readCluster(_ node: Node) throws(ConfigError) -> ClusterConfig {
        let m = try mapping(node, key: "cluster")
        try checkKeys(m, key: "cluster", allowed: ["listen", "advertise", "seeds", "tls", "max_frame_bytes", "idle_timeout",
                                                          "profile", "probe_interval", "probe_timeout", "suspicion_min"])
        func address(_ name: String, default fallback: String?) throws(ConfigError) -> ListenAddress? {
            guard let v = m.value(name) else { return fallback.flatMap(ListenAddress.parse) }
            let text = try string(v, key: "cluster.\(name)")
            guard let a = ListenAddress.parse(text) else {
                throw ConfigError(key: "cluster.\(name)", line: v.mark?.line, message: "expected host:port such as 0.0.0.0:7946, got '\(text)'")
            }
            return a
        }
        let listen = try address("listen", default: "127.0.0.1:7946")!
        var seeds: [String] = []
        if let s = m.value("seeds") {
            for (i, item) in try sequence(s, key: "cluster.seeds").enumerated() {
                let text = try string(item, key: "cluster.seeds[\(i)]")
                guard ListenAddress.parse(text) != nil else {
                    throw ConfigError(key: "cluster.seeds[\(i)]", line: item.mark?.line, message: "expected host:port, got '\(text)'")
                }
                seeds.append(text)
            }
        }
        guard let t = m.value("tls") else {
            throw ConfigError(key: "cluster.tls", line: node.mark?.line,
                              message: "peers authenticate with certificates: set tls: {ca, cert, key} (gatemesh certs init / issue make them)")
        }
        let tm = try mapping(t, key: "cluster.tls")
        try checkKeys(tm, key: "cluster.tls", allowed: ["ca", "cert", "key"])
        func file(_ name: String) throws(ConfigError) -> String {
            guard let v = tm.value(name) else { throw ConfigError(key: "cluster.tls.\(name)", line: t.mark?.line, message: "required") }
            return try string(v, key: "cluster.tls.\(name)")
        }
        var c = ClusterConfig(listen: listen, seeds: seeds, caFile: try file("ca"), certFile: try file("cert"), keyFile: try file("key"))
        c.advertise = try address("advertise", default: nil)
        if let v = m.value("max_frame_bytes") { c.maxFrameBytes = try bytes(v, key: "cluster.max_frame_bytes", range: 65_536...(256 << 20)) }
        if let v = m.value("idle_timeout") { c.idleTimeoutMs = try durationMs(v, key: "cluster.idle_timeout", range: 1_000...86_400_000) }
        if let v = m.value("profile") { c.profile = try choice(v, key: "cluster.profile", expected: "lan or wan") }
        if let v = m.value("probe_interval") { c.probeIntervalMs = Int64(try durationMs(v, key: "cluster.probe_interval", range: 100...60_000)) }
        if let v = m.value("probe_timeout") { c.probeTimeoutMs = Int64(try durationMs(v, key: "cluster.probe_timeout", range: 10...60_000)) }
        if let v = m.value("suspicion_min") { c.suspicionMinMs = Int64(try durationMs(v, key: "cluster.suspicion_min", range: 500...600_000)) }
        let interval = c.probeIntervalMs ?? c.profile.probeIntervalMs
        let timeout = c.probeTimeoutMs ?? c.profile.probeTimeoutMs
        if timeout >= interval {
            throw ConfigError(key: "cluster.probe_timeout", line: node.mark?.line,
                              message: "the probe timeout (\(timeout) ms) must be shorter than the probe interval (\(interval) ms): indirect probes need the rest of the interval")
        }
        if c.advertised.host == "0.0.0.0" || c.advertised.host == "::" {
            throw ConfigError(key: "cluster.advertise", line: node.mark?.line,
                              message: "listening on \(c.listen.host): set advertise to the address peers reach this node at")
        }
        return c
    }

    /// `{name, strategy: fallback|weighted, targets: [{provider, model, api_key, weight}], cooldown, failures}`.
    func readRoute(_ node: Node, key: String, providers: ProviderCatalogue) throws(ConfigError) -> ModelRoute {
        let m = try mapping(node, key: key)
        try checkKeys(m, key: key, allowed: ["name", "strategy", "targets", "cooldown", "failures"])
        guard let n = m.value("name") else { throw ConfigError(key: "\(key).name", line: node.mark?.line, message: "every route needs a name") }
        let name = try string(n, key: "\(key).name")
        guard !name.contains(where: { $0 == " " || $0 == "\"" }) else {
            throw ConfigError(key: "\(key).name", line: n.mark?.line, message: "a route name is a model name: no spaces or quotes")
        }
        var route = ModelRoute(name: name, targets: [])
        if let s = m.value("strategy") { route.strategy = try choice(s, key: "\(key).strategy", expected: "fallback or weighted") }
        if let c = m.value("cooldown") { route.cooldownMs = Int64(try durationMs(c, key: "\(key).cooldown", range: 0...86_400_000)) }
        if let f = m.value("failures") { route.failures = try int(f, key: "\(key).failures", range: 1...1000) }
        guard let t = m.value("targets") else { throw ConfigError(key: "\(key).targets", line: node.mark?.line, message: "a route needs targets") }
        for (j, item) in try sequence(t, key: "\(key).targets").enumerated() {
            let tk = "\(key).targets[\(j)]"
            let tm = try mapping(item, key: tk)
            try checkKeys(tm, key: tk, allowed: ["provider", "model", "api_key", "weight"])
            guard let p = tm.value("provider") else { throw ConfigError(key: "\(tk).provider", line: item.mark?.line, message: "every target needs a provider") }
            let provider = try string(p, key: "\(tk).provider")
            guard let resolved = providers.provider(named: provider) else {
                throw ConfigError(key: "\(tk).provider", line: p.mark?.line, message: "unknown provider '\(provider)'")
            }
            guard resolved.spec.pathStyle != .resourceAndDeployment else {
                throw ConfigError(key: "\(tk).provider", line: p.mark?.line, message: "azure-openai targets are not supported in routes yet")
            }
            guard let mn = tm.value("model") else {
                throw ConfigError(key: "\(tk).model", line: item.mark?.line, message: "every target needs the model to ask its provider for")
            }
            let model = try string(mn, key: "\(tk).model")
            let apiKey = try tm.value("api_key").map { n throws(ConfigError) in try string(n, key: "\(tk).api_key", allowEmpty: true) }
            let weight = try tm.value("weight").map { n throws(ConfigError) in try int(n, key: "\(tk).weight", range: 0...1_000_000) } ?? 1
            route.targets.append(.init(provider: resolved.spec.id, model: model, apiKey: apiKey?.isEmpty == true ? nil : apiKey, weight: weight))
        }
        guard !route.targets.isEmpty else { throw ConfigError(key: "\(key).targets", line: t.mark?.line, message: "a route needs at least one target") }
        return route
    }

    func dimension(_ name: String, key: String, line: Int?) throws(ConfigError) -> LimitRule.Dimension {
        switch name {
        case "provider": return .provider
        case "model": return .model
        case _ where name.hasPrefix("metadata.") && name.count > 9: return .metadata(String(name.dropFirst(9)))
        case "key": return .key
        case "team": return .team
        case "org": return .org
        case "user": return .user
        default:
            throw ConfigError(key: key, line: line, message: "expected provider, model, key, team, org, user or metadata.<key>, got '\(name)'")
        }
    }

    /// `{calendar: day|week|month, timezone: Europe/Berlin, week_start: monday}`, `{rolling: 24h, bucket: 1h}`,
    /// `{fixed: 1m}` or `{sliding: 1m, bucket: 1s}`.
    func readWindow(_ node: Node, key: String, budget: Bool) throws(ConfigError) -> Window {
        let m = try mapping(node, key: key)
        try checkKeys(m, key: key, allowed: ["calendar", "timezone", "week_start", "rolling", "fixed", "sliding", "bucket"])
        let kinds = ["calendar", "rolling", "fixed", "sliding"].filter { m.value($0) != nil }
        guard kinds.count == 1, let kind = kinds.first, let value = m.value(kind) else {
            throw ConfigError(key: key, line: node.mark?.line, message: "set exactly one of calendar, rolling, fixed, sliding")
        }
        let applies: [String: Set<String>] = ["calendar": ["timezone", "week_start"], "rolling": ["bucket"], "sliding": ["bucket"], "fixed": []]
        for extra in ["timezone", "week_start", "bucket"] where m.value(extra) != nil && !(applies[kind]?.contains(extra) ?? false) {
            throw ConfigError(key: "\(key).\(extra)", line: m.value(extra)?.mark?.line, message: "does not apply to a \(kind) window")
        }
        switch kind {
        case "calendar":
            let period = try string(value, key: "\(key).calendar")
            guard let p = Window.Period(rawValue: period) else {
                throw ConfigError(key: "\(key).calendar", line: value.mark?.line, message: "expected day, week or month, got '\(period)'")
            }
            let tz = try m.value("timezone").map { n throws(ConfigError) in try string(n, key: "\(key).timezone") } ?? "UTC"
            let days = ["sunday": 1, "monday": 2, "tuesday": 3, "wednesday": 4, "thursday": 5, "friday": 6, "saturday": 7]
            var weekStart = 2
            if let w = m.value("week_start") {
                let text = try string(w, key: "\(key).week_start").lowercased()
                guard let d = days[text] else {
                    throw ConfigError(key: "\(key).week_start", line: w.mark?.line, message: "expected a day name such as monday, got '\(text)'")
                }
                weekStart = d
            }
            guard let window = Window.calendarWindow(p, timeZone: tz, weekStart: weekStart) else {
                throw ConfigError(key: "\(key).timezone", line: m.value("timezone")?.mark?.line,
                                  message: "unknown time zone '\(tz)'; use an IANA name such as Europe/Berlin")
            }
            return window
        case "fixed":
            return .fixed(lengthMs: Int64(try durationMs(value, key: "\(key).fixed", range: 1000...(366 * 86_400_000))))
        default:
            let length = Int64(try durationMs(value, key: "\(key).\(kind)", range: 1000...(366 * 86_400_000)))
            var bucket = max(1000, length / 60)
            // At most 10,000 buckets per window, so a decision stays cheap.
            if let b = m.value("bucket") { bucket = Int64(try durationMs(b, key: "\(key).bucket", range: max(100, Int(length / 10_000))...Int(length))) }
            return kind == "rolling" ? .rolling(lengthMs: length, bucketMs: bucket) : .sliding(lengthMs: length, bucketMs: bucket)
        }
    }

    func readGateways(_ node: Node, providers: ProviderCatalogue) throws(ConfigError) -> [GatewayConfig] {
        let list = try sequence(node, key: "gateways")
        var out: [GatewayConfig] = []
        var seen: Set<String> = []
        var ruleOwners: [String: String] = [:]
        for (i, item) in list.enumerated() {
            let key = "gateways[\(i)]"
            let m = try mapping(item, key: key)
            try checkKeys(m, key: key, allowed: ["id", "auth_tokens", "collect_log", "collect_log_payload", "allow_custom_cost", "budgets", "rate_limits", "cache", "retries", "routes",
                                                     "drop_unsupported_params", "default_max_tokens", "virtual_keys"])
            guard let idNode = m.value("id") else {
                throw ConfigError(key: "\(key).id", line: item.mark?.line, message: "every gateway needs an id")
            }
            let id = try string(idNode, key: "\(key).id")
            guard Names.isValidName(id) else { throw ConfigError(key: "\(key).id", line: idNode.mark?.line, message: Names.rule) }
            guard !PathRouter.reservedNames.contains(id) else {
                throw ConfigError(key: "\(key).id", line: idNode.mark?.line,
                                  message: "'\(id)' is reserved for the operator API; choose another id")
            }
            guard !providers.contains(id), !id.hasPrefix("custom-") else {
                throw ConfigError(key: "\(key).id", line: idNode.mark?.line,
                                  message: "'\(id)' is a provider name; a gateway id must differ from every provider name")
            }
            guard seen.insert(id).inserted else {
                throw ConfigError(key: "\(key).id", line: idNode.mark?.line, message: "duplicate gateway id '\(id)'")
            }
            var gateway = GatewayConfig(id: id)
            if let v = m.value("collect_log") { gateway.collectLog = try bool(v, key: "\(key).collect_log") }
            if let v = m.value("collect_log_payload") { gateway.collectLogPayload = try bool(v, key: "\(key).collect_log_payload") }
            if let v = m.value("allow_custom_cost") { gateway.allowCustomCost = try bool(v, key: "\(key).allow_custom_cost") }
            if let v = m.value("virtual_keys") { gateway.virtualKeys = try choice(v, key: "\(key).virtual_keys", expected: "required, optional or off") }
            if let v = m.value("drop_unsupported_params") { gateway.dropUnsupportedParams = try bool(v, key: "\(key).drop_unsupported_params") }
            if let v = m.value("default_max_tokens") {
                gateway.defaultMaxTokens = try int(v, key: "\(key).default_max_tokens", range: 1...1_000_000)
            }
            if let list = m.value("routes") {
                for (j, item) in try sequence(list, key: "\(key).routes").enumerated() {
                    let route = try readRoute(item, key: "\(key).routes[\(j)]", providers: providers)
                    guard gateway.routes[route.name] == nil else {
                        throw ConfigError(key: "\(key).routes[\(j)].name", line: item.mark?.line, message: "duplicate route name '\(route.name)'")
                    }
                    gateway.routes[route.name] = route
                }
            }
            if let r = m.value("retries") {
                let rm = try mapping(r, key: "\(key).retries")
                try checkKeys(rm, key: "\(key).retries", allowed: ["max_attempts", "delay_ms", "backoff", "jitter"])
                if let v = rm.value("max_attempts") {
                    gateway.retries.maxAttempts = try int(v, key: "\(key).retries.max_attempts", range: 1...RetryPolicy.maxAttemptsLimit)
                }
                if let v = rm.value("delay_ms") { gateway.retries.delayMs = try int(v, key: "\(key).retries.delay_ms", range: 0...RetryPolicy.maxDelayMs) }
                if let v = rm.value("backoff") {
                    gateway.retries.backoff = try choice(v, key: "\(key).retries.backoff", expected: "constant, linear or exponential")
                }
                if let v = rm.value("jitter") { gateway.retries.jitter = try bool(v, key: "\(key).retries.jitter") }
            }
            if let c = m.value("cache") {
                // {ttl: 300} turns the cache on with that default; {enabled: false} keeps it off.
                let cm = try mapping(c, key: "\(key).cache")
                try checkKeys(cm, key: "\(key).cache", allowed: ["ttl", "enabled"])
                let enabled = try cm.value("enabled").map { n throws(ConfigError) in try bool(n, key: "\(key).cache.enabled") } ?? true
                let ttlMs = try cm.value("ttl").map { n throws(ConfigError) in
                    try durationMs(n, key: "\(key).cache.ttl", range: 1000...(CacheLimits.maxTTLSeconds * 1000))
                } ?? 300_000
                gateway.cacheTTLSeconds = enabled ? ttlMs / 1000 : nil
            }
            var ruleIDs: Set<String> = []
            for section in ["budgets", "rate_limits"] {
                guard let list = m.value(section) else { continue }
                for (j, item) in try sequence(list, key: "\(key).\(section)").enumerated() {
                    let rule = try readRule(item, key: "\(key).\(section)[\(j)]", gateway: id, budget: section == "budgets")
                    guard ruleIDs.insert(rule.id).inserted else {
                        throw ConfigError(key: "\(key).\(section)[\(j)].id", line: item.mark?.line,
                                          message: "duplicate rule id '\(rule.id)' in gateway '\(id)'")
                    }
                    // Counters and persisted charges are keyed by rule id, so ids are unique node-wide.
                    if let owner = ruleOwners[rule.id] {
                        throw ConfigError(key: "\(key).\(section)[\(j)].id", line: item.mark?.line,
                                          message: "rule id '\(rule.id)' is already used by another gateway ('\(owner)'); rule ids must be unique")
                    }
                    ruleOwners[rule.id] = id
                    gateway.limits.append(rule)
                }
            }
            if let tokens = m.value("auth_tokens") {
                let s = try sequence(tokens, key: "\(key).auth_tokens")
                for (j, t) in s.enumerated() {
                    gateway.authTokens.append(try string(t, key: "\(key).auth_tokens[\(j)]"))
                }
            }
            out.append(gateway)
        }
        return out
    }
}

extension Node.Mapping {
    func value(_ key: String) -> Node? {
        for (k, v) in self where k.string == key { return v }
        return nil
    }
}

enum Names {
    static let rule = "names are 1 to 64 characters of lowercase letters, digits, '-' and '_', starting with a letter or digit"

    static func isValidName(_ s: String) -> Bool {
        guard let first = s.utf8.first, s.utf8.count <= 64 else { return false }
        func ok(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        return ok(first) && s.utf8.allSatisfy { ok($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }
}

/// Parsing of human-friendly durations and sizes.
public enum Units {
    public static func durationMs(_ text: String) -> Int? {
        let t = text.trimmed(of: " ")
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let n = Double(t.dropLast(suffix.count)), n >= 0, n.isFinite else { return nil }
            // Int(exactly:): a duration too long for an Int (`1e300s`) is refused, not a trap.
            return Int(exactly: (n * Double(factor)).rounded())
        }
        guard let seconds = Double(t), seconds >= 0, seconds.isFinite else { return nil }
        return Int(exactly: (seconds * 1000).rounded())
    }

    public static func bytes(_ text: String) -> Int? {
        let t = text.trimmed(of: " ")
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1),
        ]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            guard let n = Int(String(t.dropLast(suffix.count)).trimmed(of: " ")), n >= 0 else { return nil }
            return n.multipliedReportingOverflow(by: factor).overflow ? nil : n * factor
        }
        return Int(t)
    }

    static func describeMs(_ ms: Int) -> String {
        if ms % 1000 != 0 || ms == 0 { return "\(ms)ms" }
        return "\(ms / 1000)s"
    }
}

extension String {
    func trimmed(of set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
