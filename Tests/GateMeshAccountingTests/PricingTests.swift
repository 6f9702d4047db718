@testable import GateMeshAccounting
import GateMeshCore
import Testing

@Suite struct PricingTests {
    @Test func decimalPricesAreExactIntegers() {
        #expect(TokenPrice(dollarsPerMillion: "0.075")?.microsPerMillion == 75_000)
        #expect(TokenPrice(dollarsPerMillion: "15")?.microsPerMillion == 15_000_000)
        #expect(TokenPrice(dollarsPerMillion: "0.0375")?.microsPerMillion == 37_500)
        #expect(TokenPrice(dollarsPerMillion: "0.0000001") == nil, "more than six decimals")
        #expect(TokenPrice(dollarsPerMillion: "-1") == nil)
        #expect(TokenPrice(dollarsPerMillion: "1e3") == nil)
        #expect(TokenPrice(dollarsPerMillion: "1.") == nil)
        #expect(TokenPrice(dollarsPerMillion: ".5")?.microsPerMillion == 500_000)
        #expect(TokenPrice(dollarsPerMillion: "0.15")?.description == "$0.15/M")
    }

    @Test func moneyFormatsAndRounds() {
        #expect(Money(nanos: 123_450).dollars == "0.000123450")
        #expect(Money(nanos: 2_000_000_001).dollars == "2.000000001")
        #expect(Money(nanos: 1_499).micros == 1)
        #expect(Money(nanos: 1_500).micros == 2)
        #expect(Money.parseDollars("0.5") == Money(nanos: 500_000_000))
    }

    @Test func costIsExactThenRoundedOnce() {
        let price = ModelPrice(input: TokenPrice(dollarsPerMillion: "3")!, output: TokenPrice(dollarsPerMillion: "15")!,
                               cacheRead: TokenPrice(dollarsPerMillion: "0.30")!, cacheWrite: TokenPrice(dollarsPerMillion: "3.75")!)
        // 25 × 3 + 15 × 15 + 2000 × 0.30 + 1000 × 3.75 micro-dollars = 75 + 225 + 600 + 3750 = 4650 µ$
        let usage = TokenUsage(input: 25, output: 15, cacheRead: 2000, cacheWrite: 1000)
        #expect(price.cost(of: usage) == Money(nanos: 4_650_000))
        // Without cache prices, cached tokens are charged as input.
        let plain = ModelPrice(input: TokenPrice(dollarsPerMillion: "0.075")!, output: TokenPrice(dollarsPerMillion: "0.3")!)
        #expect(plain.cost(of: TokenUsage(input: 1, output: 1, cacheRead: 1)) == Money(nanos: 450))  // 0.075+0.3+0.075 µ$ = 450 n$
        #expect(plain.cost(of: TokenUsage(input: 7)) == Money(nanos: 525))
        #expect(plain.cost(of: TokenUsage(input: 1)) == Money(nanos: 75))
    }

    /// Found by fuzzing: a custom cost of $107 a token on a million tokens overflowed and trapped.
    @Test func costTooLargeForSixtyFourBitsIsTheMaximumCharge() throws {
        let dear = try CustomCost.parse(#"{"per_token_in":107,"per_token_out":1}"#)
        #expect(dear.cost(of: TokenUsage(input: 1_000_000, output: 200_000)) == Money.maxRequestCost)
        let top = ModelPrice(input: TokenPrice(microsPerMillion: .max), output: TokenPrice(microsPerMillion: .max))
        #expect(top.cost(of: TokenUsage(input: .max, output: .max, cacheRead: .max, cacheWrite: .max)) == Money.maxRequestCost)
        #expect(dear.cost(of: TokenUsage(input: 1)) == Money(nanos: 107_000_000_000))
    }

    @Test func shippedTableLoadsWithOverAHundredModels() throws {
        let table = try PriceTable.shipped()
        #expect(table.count >= 100)
        #expect(table.compiled.count == 10)
        let mini = try #require(table.price(provider: "openai", model: "gpt-4o-mini"))
        #expect(mini.price.input.microsPerMillion == 150_000 && mini.price.output.microsPerMillion == 600_000)
        #expect(table.price(provider: "openai", model: "gpt-4o-mini-2024-07-18")?.model == "gpt-4o-mini")
        #expect(table.price(provider: "azure-openai", model: "gpt-4o-mini")?.model == "gpt-4o-mini")
        #expect(table.price(provider: "openrouter", model: "openai/gpt-4o-mini")?.model == "gpt-4o-mini")
        #expect(table.price(provider: "anthropic", model: "claude-sonnet-4-5-20250929")?.price.cacheWrite?.microsPerMillion == 3_750_000)
        #expect(table.price(provider: "openai", model: "gpt-4o-mini-2099-01-01")?.model == "gpt-4o-mini", "a dated snapshot")
        #expect(table.price(provider: "openai", model: "gpt-4o-audio-preview") == nil, "a different model that shares a prefix")
        #expect(table.price(provider: "openrouter", model: "anthropic/claude-sonnet-4.5")?.model == "claude-sonnet-4-5", "OpenRouter's dotted ids")
        let azure = table.applying(["azure-openai": ["gpt-4o-mini": PriceOverride(input: "9", output: "9")]])
        #expect(azure.price(provider: "azure-openai", model: "gpt-4o-mini")?.price.input.microsPerMillion == 9_000_000, "Azure overrides win")
        #expect(azure.price(provider: "openai", model: "gpt-4o-mini")?.price.input.microsPerMillion == 150_000)
        #expect(table.price(provider: "openai", model: "no-such-model") == nil)
        #expect(table.price(provider: "custom-x", model: "gpt-4o-mini") == nil)
    }

    @Test func malformedTableIsRefusedWithTheEntryNamed() {
        func refusal(_ json: String) -> String? {
            let error = #expect(throws: PriceTable.FormatError.self) { try PriceTable.parse(json: Array(json.utf8)) }
            return error?.message
        }
        #expect(refusal(#"{"compiled":"2026-01-01","models":[{"provider":"p","model":"m","input":0.5,"output":"1"}]}"#)?
            .hasPrefix("prices.json: models[0].input must be a string") == true)
        #expect(refusal(#"{"compiled":"2026-01-01","models":[{"provider":"p","model":"m","input":"0.5"}]}"#) == "prices.json: models[0].output is missing")
        #expect(refusal(#"{"compiled":"2026-01-01","models":[{"provider":"p","model":"m","input":"0.1234567","output":"1"}]}"#)
            == "prices.json: p/m.input must be a decimal string with at most six decimals")
        #expect(refusal(#"{"models":[]}"#) == "prices.json: compiled is missing")
    }
}

@Suite struct CustomCostTests {
    @Test func cloudflareShapeIsReadExactly() throws {
        let price = try CustomCost.parse(#"{"per_token_in": 0.000001, "per_token_out": 2.5e-6, "per_token_cache_read": 0.0000001}"#)
        #expect(price.input.microsPerMillion == 1_000_000)
        #expect(price.output.microsPerMillion == 2_500_000)
        #expect(price.cacheRead?.microsPerMillion == 100_000)
        #expect(price.cost(of: TokenUsage(input: 3, output: 2)) == Money(nanos: 8_000))
    }

    @Test(arguments: [#"{"per_token_in": 1}"#, #"{"per_token_in": -1, "per_token_out": 1}"#, #"{"per_token_in": "1", "per_token_out": 1}"#,
                      #"{"per_token_in": 1, "per_token_out": 1, "tip": 1}"#, #"{"per_token_in": 0.0000000000001, "per_token_out": 1}"#, "nope",
                      // Found by fuzzing: exponents at the ends of Int overflowed the decimals count and trapped.
                      #"{"per_token_in": 1e-9223372036854775808, "per_token_out": 1}"#, #"{"per_token_in": 1e9223372036854775807, "per_token_out": 1}"#,
                      #"{"per_token_in": 0e-1001, "per_token_out": 1}"#])
    func malformedCustomCostIsA400(_ header: String) {
        do {
            _ = try CustomCost.parse(header)
            Issue.record("expected an error for \(header)")
        } catch {
            #expect(error.status == 400 && error.code == "invalid_custom_cost")
        }
    }
}
