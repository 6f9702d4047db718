import GateMeshConfig
import GateMeshCore
import Testing

@Suite struct ConfigLoaderTests {
    func load(_ yaml: String, env: [String: String] = [:]) throws(ConfigError) -> Settings {
        try ConfigLoader.parse(yaml: yaml, environment: env)
    }

    func error(_ yaml: String, env: [String: String] = [:]) -> ConfigError? {
        do {
            _ = try load(yaml, env: env)
            return nil
        } catch {
            return error
        }
    }

    @Test func emptyConfigIsTheEmbeddedDefault() throws {
        let c = try load("")
        #expect(c == Settings())
        #expect(c.node.listen == ListenAddress(host: "127.0.0.1", port: 8787))
        #expect(c.node.dataDir == "./gatemesh-data")
        #expect(c.gateways.map(\.id) == ["default"])
    }

    @Test func fullConfigWithEnvironmentExpansion() throws {
        let c = try load("""
            node: {name: eu-1, region: eu-west, listen: "0.0.0.0:9000", data_dir: /var/lib/gm, drain_timeout: 45s}
            admin: {token: "${ADMIN}"}
            limits: {max_body_bytes: 8MiB, max_header_bytes: 32KiB}
            upstream: {connect_timeout: 2s, first_byte_timeout: 1m, total_timeout: 0, http2: false}
            providers:
              openai: {base_url: "https://proxy.internal/v1", api_key: "${OPENAI_API_KEY}"}
              anthropic: {api_key: "${ANTHROPIC_API_KEY:-fallback-key}"}
              custom-ollama: {base_url: "http://127.0.0.1:11434/v1"}
            gateways:
              - id: default
              - id: team-a
                auth_tokens: ["${GW_TOKEN}", "literal$$dollar"]
            """, env: ["ADMIN": "adm", "OPENAI_API_KEY": "sk-1", "GW_TOKEN": "gw"])
        #expect(c.node.name == "eu-1")
        #expect(c.node.listen == ListenAddress(host: "0.0.0.0", port: 9000))
        #expect(c.node.drainTimeoutMs == 45_000)
        #expect(c.admin.token == "adm")
        #expect(c.limits.maxBodyBytes == 8 << 20)
        #expect(c.limits.maxHeaderBytes == 32 << 10)
        #expect(c.upstream.connectTimeoutMs == 2000)
        #expect(c.upstream.firstByteTimeoutMs == 60_000)
        #expect(c.upstream.totalTimeoutMs == 0)
        #expect(c.upstream.http2 == false)
        #expect(c.providers["openai"] == ProviderConfig(baseURL: "https://proxy.internal/v1", apiKey: "sk-1"))
        #expect(c.providers["anthropic"]?.apiKey == "fallback-key")
        #expect(c.gateway("team-a")?.authTokens == ["gw", "literal$dollar"])
    }

    /// The client connection cap: the config's, or one that leaves descriptors for the rest.
    @Test func theConnectionCapFollowsTheOpenFileLimitUnlessSet() throws {
        let defaults = try load("")
        #expect(defaults.limits.connectionCap(openFiles: 65_536) == 10_000)
        #expect(defaults.limits.connectionCap(openFiles: 1_024) == 384)
        #expect(defaults.limits.connectionCap(openFiles: 256) == 16)
        #expect(try load("limits: {max_connections: 50}").limits.connectionCap(openFiles: 256) == 50)
        #expect(throws: ConfigError.self) { try load("limits: {max_connections: 0}") }
    }

    @Test func unsetOptionalKeyMeansNoStoredKey() throws {
        let c = try load("providers:\n  openai: {api_key: \"${OPENAI_API_KEY}\"}\n")
        #expect(c.providers["openai"]?.apiKey == nil)
    }

    @Test func unknownKeyIsNamedWithItsLine() {
        let e = error("node:\n  name: a\n  lisen: \"x\"\n")
        #expect(e?.key == "node.lisen")
        #expect(e?.line == 3)
        #expect(e?.message.contains("unknown key") == true)
    }

    @Test func badListenAddress() {
        #expect(error("node: {listen: \"localhost\"}")?.key == "node.listen")
        #expect(error("node: {listen: \"1.2.3.4:99999\"}")?.key == "node.listen")
    }

    @Test func emptyGatewayTokenFromUnsetVariableIsAnError() {
        let e = error("gateways:\n  - id: a\n    auth_tokens: [\"${MISSING}\"]\n")
        #expect(e?.key == "gateways[0].auth_tokens[0]")
        #expect(e?.message.contains("MISSING") == true)
    }

    @Test func unsetVariableInsideALongerValueIsAnError() {
        let e = error("admin: {token: \"prefix-${UNSET_TOKEN}\"}")
        #expect(e?.key == "admin.token")
        #expect(e?.message.contains("UNSET_TOKEN") == true)
    }

    @Test func aliasAndProviderConfiguredTwiceIsAnError() {
        let e = error("providers:\n  xai: {api_key: a}\n  grok: {api_key: b}\n")
        #expect(e?.message.contains("same provider") == true)
    }

    @Test func theClusterSectionNeedsCertificatesAndAnAdvertisedAddress() throws {
        #expect(error("cluster: {listen: \"127.0.0.1:7946\"}")?.key == "cluster.tls")
        #expect(error("cluster: {listen: \"0.0.0.0:7946\", tls: {ca: a, cert: b, key: c}}")?.key == "cluster.advertise")
        #expect(error("cluster: {seeds: [nohost], tls: {ca: a, cert: b, key: c}}")?.key == "cluster.seeds[0]")
        let c = try load("""
            cluster:
              listen: "0.0.0.0:7946"
              advertise: "10.0.0.5:7946"
              seeds: ["10.0.0.5:7946", "10.0.0.6:7946"]
              tls: {ca: certs/ca.pem, cert: certs/eu-1.pem, key: certs/eu-1.key}
            """)
        let cluster = try #require(c.cluster)
        #expect(cluster.listen.port == 7946 && cluster.advertised.description == "10.0.0.5:7946" && cluster.seeds.count == 2)
        #expect(cluster.caFile == "certs/ca.pem" && cluster.maxFrameBytes == 4 << 20)
        #expect(cluster.profile == .lan && cluster.probeIntervalMs == nil)
    }

    @Test func theClusterTimingsComeFromAProfileWithOverrides() throws {
        let tls = "tls: {ca: a, cert: b, key: c}"
        let wan = try #require(try load("cluster: {profile: wan, \(tls)}").cluster)
        #expect(wan.profile == .wan && wan.probeTimeoutMs == nil)
        let tuned = try #require(try load("cluster: {profile: wan, probe_interval: 8s, probe_timeout: 2s, suspicion_min: 30s, \(tls)}").cluster)
        #expect(tuned.probeIntervalMs == 8_000 && tuned.probeTimeoutMs == 2_000 && tuned.suspicionMinMs == 30_000)
        let bad = error("cluster: {profile: moon, \(tls)}")
        #expect(bad?.key == "cluster.profile" && bad?.message == "expected lan or wan, got 'moon'")
        // The WAN profile's 3 s direct wait does not fit in a 2 s interval.
        let tight = error("cluster: {profile: wan, probe_interval: 2s, \(tls)}")
        #expect(tight?.key == "cluster.probe_timeout" && tight?.message.contains("shorter than the probe interval") == true)
        #expect(error("cluster: {probe_interval: 50ms, \(tls)}")?.key == "cluster.probe_interval")
    }

    @Test func theCacheInTheProductsShapeAndItsStore() throws {
        let c = try load("""
            cache: {memory: 64MiB, disk: 1GiB, max_entry: 1MiB, purge_interval: 30s}
            gateways:
              - {id: default, cache: {ttl: 300}}
              - {id: off, cache: {enabled: false, ttl: 5m}}
              - {id: none}
              - {id: defaulted, cache: {}}
            """)
        #expect(c.gateways.map(\.cacheTTLSeconds) == [300, nil, nil, 300])
        #expect(c.cache.memoryBytes == 64 << 20 && c.cache.diskBytes == 1 << 30 && c.cache.maxEntryBytes == 1 << 20 && c.cache.purgeIntervalMs == 30_000)
        #expect(error("gateways:\n  - {id: a, cache: {ttl: 0}}\n")?.key == "gateways[0].cache.ttl")
        #expect(error("gateways:\n  - {id: a, cache: {ttl: 31d}}\n")?.key == "gateways[0].cache.ttl")
        #expect(error("cache: {memory: lots}\n")?.key == "cache.memory")
    }

    /// `logging.export`: a URL, headers, a batch size and an interval; bad ones refused.
    @Test func theLogExportsSink() throws {
        #expect(try load("").logging.export == nil)
        let e = try load("logging:\n  export: {url: 'https://logs.example/in', headers: {authorization: 'Bearer x'}, batch_rows: 200, interval: 2s}\n").logging.export
        #expect(e?.url == "https://logs.example/in" && e?.headers == ["authorization": "Bearer x"] && e?.batchRows == 200 && e?.intervalMs == 2000)
        #expect(try load("logging: {export: {url: 'http://127.0.0.1:9/x'}}\n").logging.export?.batchRows == 1000)
        #expect(error("logging: {export: {url: 'ftp://x'}}\n")?.key == "logging.export.url")
        #expect(error("logging: {export: {headers: {a: b}}}\n")?.key == "logging.export")
        #expect(error("logging: {export: {url: 'http://x', batch_rows: 0}}\n")?.key == "logging.export.batch_rows")
        #expect(error("logging: {export: {url: 'http://x', headers: {'bad name': v}}}\n")?.key == "logging.export.headers")
    }

    /// `logging.redact`: API keys by default; built-in names and patterns; bad ones refused.
    @Test func redactionRulesByNameAndPattern() throws {
        #expect(try load("").logging.redact == [RedactRule(name: "api_keys")])
        let c = try load("logging:\n  redact: [emails, card_numbers, {pattern: 'acct-[0-9]+', replace: '[ACCOUNT]'}]\n")
        #expect(c.logging.redact == [RedactRule(name: "emails"), RedactRule(name: "card_numbers"),
                                     RedactRule(name: "pattern 2", pattern: "acct-[0-9]+", replace: "[ACCOUNT]")])
        #expect(try load("logging: {redact: []}\n").logging.redact.isEmpty)
        #expect(error("logging: {redact: [phone_numbers]}\n")?.key == "logging.redact[0]")
        #expect(error("logging: {redact: [{pattern: '(unclosed'}]}\n")?.key == "logging.redact[0].pattern")
        #expect(error("logging: {redact: [{replace: x}]}\n")?.key == "logging.redact[0]")
    }

    /// `storage.max_bytes`: none by default; at least 1 MiB; the cache's copy on disk, in the same
    /// file, at most half of it.
    @Test func aStorageCapLeavesTheLogAtLeastHalf() throws {
        #expect(try load("").storage.maxBytes == 0)
        #expect(try load("storage: {max_bytes: 8GiB}\n").storage.maxBytes == 8 << 30)
        #expect(try load("storage: {max_bytes: 64MiB}\ncache: {disk: 32MiB, max_entry: 3MiB}\n").storage.maxBytes == 64 << 20)
        #expect(error("storage: {max_bytes: 64MiB}\ncache: {disk: 32MiB}\n")?.key == "cache.max_entry")
        #expect(error("storage: {max_bytes: 1KiB}\n")?.key == "storage.max_bytes")
        #expect(error("storage: {max_bytes: 1GiB}\n")?.message.contains("set cache.disk to at most 536870912") == true)
        #expect(error("storage: {size: 1GiB}\n")?.key == "storage.size")
    }

    @Test func budgetsAndRateLimitsInTheProductsShape() throws {
        let c = try load("""
            alerts: {webhook: "https://hooks.example/budget"}
            gateways:
              - id: default
                rate_limits: [{id: per-user-rpm, scope: {split_by: metadata.user}, requests: 60, window: {sliding: 1m}}]
                budgets: [{id: team-daily, scope: {split_by: metadata.team}, usd: 50, window: {calendar: day, timezone: Europe/Berlin}, action: block, alerts: [0.5, 0.8, 1.0]}]
            """)
        let rules = c.gateways[0].limits
        #expect(rules.map(\.id) == ["team-daily", "per-user-rpm"])
        #expect(rules[0].limit == 50_000_000_000 && rules[0].measure == .usd && rules[0].alertPermille == [500, 800, 1000])
        #expect(rules[0].window == Window.calendarWindow(.day, timeZone: "Europe/Berlin"))
        #expect(rules[0].scope == [.split(.metadata("team"))])
        #expect(rules[1].measure == .requests && rules[1].limit == 60 && rules[1].window == .sliding(lengthMs: 60_000, bucketMs: 1000))
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1, window: {calendar: day}}, {id: b, usd: 2, window: {calendar: day}}]}]")?.message
            .contains("duplicate") == true)
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: -1, window: {calendar: day}}]}]")?.key == "gateways[0].budgets[0].usd")
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1}]}]")?.key == "gateways[0].budgets[0].window")
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1, window: {calendar: day}, action: explode}]}]")?.key == "gateways[0].budgets[0].action")
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1, window: {calendar: day}}]}, {id: c, budgets: [{id: b, usd: 1, window: {calendar: day}}]}]")?
            .message.contains("another gateway") == true)
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1, window: {rolling: 1d, timezone: UTC}}]}]")?.key == "gateways[0].budgets[0].window.timezone")
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1, window: {rolling: 365d, bucket: 1s}}]}]")?.key == "gateways[0].budgets[0].window.bucket")
        #expect(error("gateways: [{id: a, budgets: [{id: b, usd: 1, window: {calendar: day}, alerts: [0.5]}]}]")?.key == "alerts.webhook")
        #expect(c.gateways[0].limits[0].kind == .budget && c.gateways[0].limits[1].kind == .rateLimit)
    }

    @Test func gatewayIDRules() {
        #expect(error("gateways: [{id: openai}]")?.message.contains("provider name") == true)
        #expect(error("gateways: [{id: api}]")?.message.contains("reserved") == true)
        #expect(error("gateways: [{id: Team}]")?.key == "gateways[0].id")
        #expect(error("gateways: [{id: a}, {id: a}]")?.message.contains("duplicate") == true)
        #expect(error("gateways: [{auth_tokens: []}]")?.key == "gateways[0].id")
    }

    @Test func providerRules() {
        #expect(error("providers: {custom-x: {}}")?.key == "providers.custom-x.base_url")
        #expect(error("providers: {nonesuch: {}}")?.key == "providers.nonesuch")
        #expect(error("providers: {openai: {base_url: \"ftp://x\"}}")?.key == "providers.openai.base_url")
    }

    @Test func providerPricesAreReadAndValidated() throws {
        let c = try load("""
            providers:
              custom-llm: {base_url: "http://127.0.0.1:8000/v1", models: {my-model: {input: "0.5", output: "1.5", cache_read: "0.05"}}}
            logging: {retention: 7d, max_rows: 1000, queue_size: 50, max_payload_bytes: 4KiB}
            gateways: [{id: default, collect_log: false, collect_log_payload: yes}]
            """)
        #expect(c.providers["custom-llm"]?.models["my-model"] == PriceOverride(input: "0.5", output: "1.5", cacheRead: "0.05"))
        #expect(c.logging.retentionMs == 7 * 86_400_000 && c.logging.maxRows == 1000 && c.logging.queueSize == 50 && c.logging.maxPayloadBytes == 4096)
        #expect(c.gateways[0].collectLog == false && c.gateways[0].collectLogPayload == true)
        #expect(error("providers: {openai: {models: {m: {input: \"0.1\"}}}}")?.key == "providers.openai.models.m.output")
        #expect(error("providers: {openai: {models: {m: {input: \"cheap\", output: \"1\"}}}}")?.key == "providers.openai.models.m.input")
        #expect(error("providers: {openai: {models: {m: {input: \"1\", output: \"1\", tip: \"1\"}}}}")?.key == "providers.openai.models.m.tip")
    }

    @Test func valuesOutOfRange() {
        #expect(error("limits: {max_body_bytes: 0}")?.key == "limits.max_body_bytes")
        #expect(error("upstream: {connect_timeout: forever}")?.key == "upstream.connect_timeout")
        #expect(error("upstream: {http2: maybe}")?.key == "upstream.http2")
    }

    @Test func invalidYAMLIsAnError() {
        #expect(error("node: [unclosed") != nil)
        #expect(error("- just\n- a list\n") != nil)
    }

    @Test func environmentExpansion() throws {
        let env = ["A": "1", "EMPTY": ""]
        #expect(try EnvironmentExpansion.expand("x${A}y", environment: env).value == "x1y")
        #expect(try EnvironmentExpansion.expand("${EMPTY:-d}", environment: env).value == "d")
        #expect(try EnvironmentExpansion.expand("${B:-d}", environment: env).value == "d")
        #expect(try EnvironmentExpansion.expand("${B}", environment: env).missing == ["B"])
        #expect(try EnvironmentExpansion.expand("$$5 and $x", environment: env).value == "$5 and $x")
        #expect(throws: ConfigError.self) { try EnvironmentExpansion.expand("${A", environment: env) }
    }

    @Test func units() {
        #expect(Units.durationMs("250ms") == 250)
        #expect(Units.durationMs("1.5s") == 1500)
        #expect(Units.durationMs("2m") == 120_000)
        #expect(Units.durationMs("30") == 30_000)
        #expect(Units.durationMs("-1s") == nil)
        #expect(Units.bytes("64KiB") == 65536)
        #expect(Units.bytes("1MB") == 1_000_000)
        #expect(Units.bytes("12") == 12)
        #expect(Units.bytes("lots") == nil)
    }

    /// Found by fuzzing: a duration too long for an Int trapped converting to milliseconds, in the
    /// config and in the rules API.
    @Test func aDurationTooLongForAnIntIsAConfigError() {
        for text in ["1e300s", "1e300", "9.3e15s", "1e19ms", "1e300d"] { #expect(Units.durationMs(text) == nil, "\(text)") }
        #expect(error("node:\n  drain_timeout: 1e300s\n")?.key == "node.drain_timeout")
        #expect(throws: ConfigError.self) {
            try RuleDocument.parse(#"{"id":"big","gateway":"default","limit":"$1","window":{"fixed":"1e300s"}}"#, gateways: ["default"])
        }
    }
}
