import GateMeshConfig
import GateMeshCore
import Testing

@Suite struct RetryPolicyTests {
    @Test func backoffShapesJitterAndTheLastAttempt() {
        let constant = RetryPolicy(maxAttempts: 4, delayMs: 100, backoff: .constant, jitter: false)
        #expect((2...4).map { constant.delay(beforeAttempt: $0, random: 0.5) } == [100, 100, 100])
        #expect(constant.delay(beforeAttempt: 5, random: 0.5) == nil)
        let linear = RetryPolicy(maxAttempts: 4, delayMs: 100, backoff: .linear, jitter: false)
        #expect((2...4).map { linear.delay(beforeAttempt: $0, random: 0.5) } == [100, 200, 300])
        let exponential = RetryPolicy(maxAttempts: 5, delayMs: 100, backoff: .exponential, jitter: false)
        #expect((2...5).map { exponential.delay(beforeAttempt: $0, random: 0.5) } == [100, 200, 400, 800])
        let jittered = RetryPolicy(maxAttempts: 5, delayMs: 100, backoff: .exponential, jitter: true)
        #expect(jittered.delay(beforeAttempt: 4, random: 0) == 200 && jittered.delay(beforeAttempt: 4, random: 0.999) == 399)
        #expect(RetryPolicy(maxAttempts: 5, delayMs: 50_000, backoff: .exponential, jitter: false).delay(beforeAttempt: 5, random: 0) == 60_000)
        #expect(RetryPolicy().delay(beforeAttempt: 2, random: 0) == nil, "one attempt by default")
    }

    @Test func retryAfterIsHonouredUpToTheCap() {
        let p = RetryPolicy(maxAttempts: 3, delayMs: 100, backoff: .constant, jitter: false)
        #expect(p.delay(beforeAttempt: 2, retryAfterMs: 2000, random: 0) == 2000)
        #expect(p.delay(beforeAttempt: 2, retryAfterMs: 50, random: 0) == 100)
        #expect(p.delay(beforeAttempt: 2, retryAfterMs: 61_000, random: 0) == nil)
        #expect(RetryPolicy.retryAfterMs("3") == 3000 && RetryPolicy.retryAfterMs(" 0.5 ") == 500)
        #expect(RetryPolicy.retryAfterMs("Wed, 21 Oct 2015 07:28:00 GMT") == nil && RetryPolicy.retryAfterMs(nil) == nil)
    }

    @Test func whatIsRetried() {
        #expect([429, 500, 502, 503, 504, 529].allSatisfy(RetryPolicy.isRetryable))
        #expect(![200, 400, 401, 404, 413, 501, 505].contains(where: RetryPolicy.isRetryable))
    }

    @Test func requestHeadersChangeTheGatewaysPolicy() throws {
        let base = RetryPolicy(maxAttempts: 3, delayMs: 200, backoff: .exponential)
        let p = try base.applying { ["x-gatemesh-max-attempts": "5", "cf-aig-retry-delay": "50", "x-gatemesh-backoff": "Linear"][$0] }
        #expect(p.maxAttempts == 5 && p.delayMs == 50 && p.backoff == .linear)
        for bad in [["x-gatemesh-max-attempts": "6"], ["x-gatemesh-max-attempts": "0"], ["x-gatemesh-retry-delay": "-1"],
                    ["x-gatemesh-retry-delay": "60001"], ["cf-aig-backoff": "fibonacci"]] {
            #expect(throws: GatewayError.self) { try base.applying { bad[$0] } }
        }
    }

    @Test func theConfigShape() throws {
        let c = try ConfigLoader.parse(yaml: """
            gateways:
              - {id: default, retries: {max_attempts: 3, delay_ms: 200, backoff: exponential}}
              - {id: other, retries: {max_attempts: 2, backoff: constant, jitter: false}}
            """, environment: [:])
        #expect(c.gateways[0].retries == RetryPolicy(maxAttempts: 3, delayMs: 200, backoff: .exponential, jitter: true))
        #expect(c.gateways[1].retries == RetryPolicy(maxAttempts: 2, delayMs: 200, backoff: .constant, jitter: false))
        for (yaml, key) in [("{max_attempts: 6}", "max_attempts"), ("{backoff: random}", "backoff"), ("{delay_ms: 70000}", "delay_ms"), ("{tries: 2}", "tries")] {
            do {
                _ = try ConfigLoader.parse(yaml: "gateways:\n  - {id: a, retries: \(yaml)}\n", environment: [:])
                Issue.record("expected an error for \(yaml)")
            } catch {
                #expect(error.key == "gateways[0].retries.\(key)")
            }
        }
    }
}

/// Both spellings of a control header, the gateway's own first.
@Suite struct ControlHeaderTests {
    @Test func theGatewaysSpellingWinsAndCloudflaresIsTheFallback() {
        let both = ["x-gatemesh-max-attempts": "3", "cf-aig-max-attempts": "5"]
        #expect(ControlHeader.value("max-attempts", in: { both[$0] })! == ("x-gatemesh-max-attempts", "3"))
        let cloudflare = ["cf-aig-max-attempts": " 5\t"]
        #expect(ControlHeader.value("max-attempts", in: { cloudflare[$0] })! == ("cf-aig-max-attempts", "5"))
        #expect(ControlHeader.value("max-attempts", in: { _ in nil }) == nil)
        #expect(ControlHeader.names("event-id") == ["x-gatemesh-event-id", "cf-aig-event-id"])
    }
}
