import GateMeshCore
import Testing

/// `ControlHeaders.parse`: every control header of a request read once, in either spelling.
@Suite struct ControlHeadersTests {
    func parse(_ h: [String: String], retries: RetryPolicy = RetryPolicy()) throws(GatewayError) -> ControlHeaders {
        try ControlHeaders.parse({ h[$0] }, present: h.keys.contains { $0.hasPrefix("x-gatemesh-") || $0.hasPrefix("cf-aig-") },
                                 retries: retries)
    }

    @Test func everyHeaderIsReadInEitherSpellingAndOursWins() throws {
        let c = try parse([
            "x-gatemesh-metadata": #"{"team":"search","n":3}"#, "cf-aig-collect-log": "false", "x-gatemesh-collect-log-payload": "1",
            "cf-aig-custom-cost": #"{"per_token_in":1e-6,"per_token_out":2e-6}"#, "x-gatemesh-event-id": "ev-1",
            "cf-aig-event-id": "ignored", "cf-aig-request-timeout": " 2500 ", "x-gatemesh-max-attempts": "3",
            "cf-aig-cache-ttl": "60", "cache-control": "no-cache", "x-gatemesh-user": "ada",
        ], retries: RetryPolicy(maxAttempts: 1, delayMs: 7))
        #expect(c.metadata["team"] == .string("search") && c.metadata["n"] == .number("3"))
        #expect(c.collectLog == false && c.collectPayload == true)
        #expect(c.customCost == #"{"per_token_in":1e-6,"per_token_out":2e-6}"#)
        #expect(c.eventID == "ev-1" && c.requestTimeoutMs == 2500 && c.user == "ada")
        #expect(c.retries.maxAttempts == 3 && c.retries.delayMs == 7)
        #expect(c.cache.ttlSeconds == 60 && c.cache.refresh && !c.cache.skip)
    }

    @Test func noControlHeaderLeavesTheGatewaysSettingsAndStillReadsCacheControl() throws {
        let base = RetryPolicy(maxAttempts: 2)
        let none = try parse([:], retries: base)
        #expect(none.retries == base && none.metadata.isEmpty && none.collectLog == nil && none.eventID == nil)
        #expect(none.cache == CacheDirectives())
        #expect(try parse(["cache-control": "no-store"]).cache.skip)
    }

    @Test func aBadValueIsA400ThatNamesTheSpellingItCameUnder() {
        let cases: [(String, String, String)] = [
            ("cf-aig-metadata", "[1]", "invalid_metadata"),
            ("cf-aig-collect-log", "yes", "invalid_header"),
            ("x-gatemesh-event-id", String(repeating: "e", count: ControlHeaders.maxEventIDBytes + 1), "invalid_header"),
            ("cf-aig-request-timeout", "0", "invalid_request_timeout"),
            ("x-gatemesh-request-timeout", String(ControlHeaders.maxRequestTimeoutMs + 1), "invalid_request_timeout"),
            ("cf-aig-backoff", "fast", "invalid_header"),
            ("x-gatemesh-cache-ttl", "-1", "invalid_header"),
        ]
        for (name, value, code) in cases {
            let error = #expect(throws: GatewayError.self) { try parse([name: value]) }
            #expect(error?.status == 400 && error?.code == code, "\(name)")
            #expect(error?.message.hasPrefix(name) == true, "\(name): \(error?.message ?? "")")
        }
    }
}
