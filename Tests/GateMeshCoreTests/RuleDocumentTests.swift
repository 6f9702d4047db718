import GateMeshConfig
import GateMeshCore
import Testing

/// Rules as the admin API reads and writes them: the config's shape plus gateway and kind.
@Suite struct RuleDocumentTests {
    let gateways: Set<String> = ["default", "team-apps"]

    @Test func everyKindOfRuleRoundTripsThroughItsDocument() throws {
        let rules = [
            LimitRule(id: "daily", gateway: "default", scope: [.split(.metadata("team")), .only(.provider, "openai")], measure: .usd,
                      limit: 50_250_000_000, window: Window.calendarWindow(.day, timeZone: "Europe/Berlin")!,
                      action: .downgrade(provider: nil, model: "gpt-4o-mini"), alertPermille: [500, 825, 1000]),
            LimitRule(id: "weekly", gateway: "team-apps", measure: .totalTokens, limit: 1_000_000,
                      window: Window.calendarWindow(.week, timeZone: "America/New_York", weekStart: 1)!),
            LimitRule(id: "rpm", gateway: "default", scope: [.split(.model), .split(.metadata("user"))], measure: .requests, limit: 60,
                      window: .sliding(lengthMs: 60_000, bucketMs: 1000)),
            LimitRule(id: "burst", gateway: "default", measure: .requests, limit: 5, window: .fixed(lengthMs: 1500)),
            LimitRule(id: "rolling", gateway: "default", kind: .budget, measure: .outputTokens, limit: 7,
                      window: .rolling(lengthMs: 5_400_000, bucketMs: 60_000), action: .downgrade(provider: "openai", model: "m")),
            LimitRule(id: "inputs", gateway: "default", kind: .rateLimit, measure: .inputTokens, limit: 9, window: .fixed(lengthMs: 86_400_000)),
        ]
        for rule in rules {
            let text = RuleDocument.json(rule)
            #expect(try RuleDocument.parse(text, gateways: gateways) == [rule], "\(text)")
        }
        #expect(RuleDocument.json(rules[0]).contains("\"usd\":\"50.25\""))
        #expect(RuleDocument.json(rules[0]).contains("\"alerts\":[0.5,0.825,1]"))
        #expect(RuleDocument.json(rules[4]).contains("\"rolling\":\"90m\""))
    }

    /// Budgets over a calendar or fixed window are bounded unless they say otherwise; rate limits
    /// and rolling or sliding windows are soft, and the latter cannot be anything else.
    @Test func theEnforcementModeDefaultsByKindAndWindowAndIsChecked() throws {
        let rules = try RuleDocument.parse("""
            [{"id":"a","gateway":"default","usd":"1","window":{"calendar":"day"}},
             {"id":"b","gateway":"default","usd":"1","window":{"fixed":"1h"},"enforcement":"strict"},
             {"id":"c","gateway":"default","usd":"1","window":{"rolling":"1h"}},
             {"id":"d","gateway":"default","requests":10,"window":{"fixed":"1m"}},
             {"id":"e","gateway":"default","requests":10,"window":{"fixed":"1m"},"enforcement":"bounded"},
             {"id":"f","gateway":"default","usd":"1","window":{"calendar":"month"},"enforcement":"soft"}]
            """, gateways: gateways)
        #expect(rules.map(\.enforcement) == [.bounded, .strict, .soft, .soft, .bounded, .soft])
        for rule in rules { #expect(try RuleDocument.parse(RuleDocument.json(rule), gateways: gateways) == [rule]) }
        #expect {
            try RuleDocument.parse(#"{"id":"x","gateway":"default","usd":"1","window":{"sliding":"1m"},"enforcement":"strict"}"#, gateways: gateways)
        } throws: { ($0 as? ConfigError)?.key == "rule.enforcement" && "\($0)".contains("needs a calendar or fixed window") }
        #expect {
            try RuleDocument.parse(#"{"id":"x","gateway":"default","usd":"1","window":{"fixed":"1m"},"enforcement":"hard"}"#, gateways: gateways)
        } throws: { "\($0)".contains("expected soft, bounded or strict, got 'hard'") }
    }

    @Test func anArrayReadsEveryRuleAndTheKindFollowsTheMeasure() throws {
        let rules = try RuleDocument.parse("""
            [{"id":"a","gateway":"default","requests":10,"window":{"fixed":"1m"}},
             {"id":"b","gateway":"default","usd":"0.5","window":{"calendar":"month"}},
             {"id":"c","gateway":"default","kind":"rate_limit","tokens":1000,"window":{"sliding":"1m"}}]
            """, gateways: gateways)
        #expect(rules.map(\.kind) == [.rateLimit, .budget, .rateLimit])
        #expect(rules[1].limit == 500_000_000)
    }

    @Test func mistakesNameTheKey() {
        func key(_ text: String, single: String? = nil) -> String? {
            do {
                _ = try RuleDocument.parse(text, gateways: gateways, single: single)
                return nil
            } catch {
                return error.key
            }
        }
        #expect(key(#"[{"id":"a","gateway":"default","requests":1,"window":{"fixed":"1m"}},{"id":"b","gateway":"default","requests":1}]"#) == "rules[1].window")
        #expect(key(#"{"id":"a","requests":1,"window":{"fixed":"1m"}}"#) == "rule.gateway")
        #expect(key(#"{"id":"a","gateway":"x","requests":1,"window":{"fixed":"1m"}}"#) == "rule.gateway")
        #expect(key(#"{"id":"a","gateway":"default","kind":"quota","requests":1,"window":{"fixed":"1m"}}"#) == "rule.kind")
        #expect(key(#"{"id":"a b","gateway":"default","requests":1,"window":{"fixed":"1m"}}"#) == "rule.id")
        #expect(key(#"[{"id":"a","gateway":"default","requests":1,"window":{"fixed":"1m"}},{"id":"a","gateway":"default","requests":1,"window":{"fixed":"1m"}}]"#) == "rules[1].id")
        #expect(key(#"[{"gateway":"default","requests":1,"window":{"fixed":"1m"}}]"#, single: "x") == "")
        #expect(key("42") == "")
        // With `single`, the id may come from the path; `${…}` is not expanded in documents.
        #expect(key(#"{"gateway":"default","requests":1,"window":{"fixed":"1m"}}"#, single: "from-path") == nil)
        #expect((try? RuleDocument.parse(#"{"id":"a","gateway":"default","requests":1,"scope":{"only":{"metadata.team":"${HOME}"}},"window":{"fixed":"1m"}}"#,
                                         gateways: gateways).first?.scope) == [.only(.metadata("team"), "${HOME}")])
    }
}
