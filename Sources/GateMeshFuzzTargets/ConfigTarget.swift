import GateMeshConfig

extension FuzzTargets {
    /// The config loader, from YAML text: a config is read or refused with a `ConfigError`,
    /// never a trap, whatever the file holds.
    public static let config = FuzzTarget(
        name: "config",
        summary: "ConfigLoader.parse(yaml:environment:)",
        run: { data in
            _ = try? ConfigLoader.parse(yaml: String(decoding: data, as: UTF8.self), environment: ["KEY": "sk-test", "PORT": "8787", "EMPTY": ""])
        },
        seeds: {
            [
                """
                node:
                  name: node-1
                  listen: 127.0.0.1:8787
                  drain_timeout: 5s
                admin:
                  token: ${KEY}
                limits:
                  max_body_bytes: 32MiB
                upstream:
                  connect_timeout: 500ms
                  total_timeout: 5m
                providers:
                  openai:
                    api_key: ${KEY}
                  custom-mock:
                    base_url: http://127.0.0.1:${PORT}
                gateways:
                  default:
                    tokens: [a, b]
                    cache:
                      ttl: 1h
                    rules:
                      - id: team-daily
                        limit: $5
                        window:
                          calendar: day
                          time_zone: Europe/Paris
                        split_by: [metadata.team]
                        alerts: [0.5, 0.8]
                      - id: rpm
                        limit: 100 requests
                        window:
                          sliding: 1m
                cache:
                  memory: 64MiB
                  purge_interval: 1m
                """,
                "node: {name: a, listen: '[::1]:1'}\nlogging:\n  retention: 30d\nreservations:\n  timeout: 1h\n",
                "a: &x [*x]\n", "- 1\n- 2\n", "node: !!binary aGVsbG8=\n", "{", "node:\n  drain_timeout: 1e300s\n",
            ].map { Array($0.utf8) }
        }
    )
}
