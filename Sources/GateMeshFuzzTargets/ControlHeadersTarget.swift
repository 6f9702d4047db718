import GateMeshAccounting
import GateMeshCache
import GateMeshCore

extension FuzzTargets {
    /// The other request headers a client controls, each given a line of the input: custom
    /// cost, cache directives, retry settings, `Retry-After`, bearer tokens. Each either parses
    /// or is a 400; a custom cost that parses prices any usage without a trap.
    public static let controlHeaders = FuzzTarget(
        name: "control-headers",
        summary: "CustomCost, CacheDirectives, RetryPolicy headers, Retry-After, bearer tokens",
        run: { data in
            let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            func line(_ i: Int) -> String? { i < lines.count ? lines[i] : nil }
            let names = ["custom-cost", "skip-cache", "cache-ttl", "cache-key", "max-attempts", "retry-delay", "backoff", "cache-control"]
            var headers: [String: String] = [:]
            for (i, name) in names.enumerated() {
                if let v = line(i) { headers[name == "cache-control" ? name : "x-gatemesh-\(name)"] = v }
            }
            if let v = line(0), let price = try? CustomCost.parse(v) {
                for usage in [TokenUsage(input: 1, output: 1, cacheRead: 1, cacheWrite: 1), TokenUsage(input: 1_000_000, output: 200_000)] {
                    _ = price.cost(of: usage)
                }
            }
            _ = try? CacheDirectives.parse { headers[$0] }
            if let policy = try? RetryPolicy().applying(headers: { headers[$0] }) {
                let retryAfter = RetryPolicy.retryAfterMs(line(8))
                for attempt in 1...(policy.maxAttempts + 1) {
                    if let d = policy.delay(beforeAttempt: attempt, retryAfterMs: retryAfter, random: 0.5) {
                        FuzzCheck.require(d >= 0, "a retry delay is negative")
                    }
                }
            }
            if let v = line(9), let token = TokenCheck.bearerToken(v) { _ = TokenCheck.matches(token, anyOf: ["secret", String(token)]) }
        },
        seeds: {
            [
                "{\"per_token_in\":0.000001,\"per_token_out\":2e-6}\ntrue\n3600\nmy-key\n3\n250\nexponential\nno-cache, no-store\n120\nBearer abc\n3:9",
                "{\"per_token_in\":0,\"per_token_out\":0,\"per_token_cache_read\":0.0000000000001,\"per_token_cache_write\":1E-12}\n0\n1\n\n1\n0\nlinear\nNO-CACHE\n1.5\nbearer  x",
                "{\"per_token_in\":1e-9223372036854775807,\"per_token_out\":1}\nyes\n-1\n\n0\n99999999\nfast\n,,\n-3\nBasic x",
            ].map { Array($0.utf8) }
        }
    )
}
