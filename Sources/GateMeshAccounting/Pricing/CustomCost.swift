import GateMeshCore

/// The `custom-cost` request header: prices for this one request, in Cloudflare's shape,
/// `{"per_token_in": 0.000001, "per_token_out": 0.000002}` (dollars per token), with
/// `per_token_cache_read` and `per_token_cache_write` as GateMesh additions.
///
/// Numbers are read from their JSON text, never through a float, so `0.0000025` stays exact
/// (to the pico-dollar per token, which is a micro-dollar per million tokens).
public enum CustomCost {
    public static func parse(_ header: String) throws(GatewayError) -> ModelPrice {
        func fail(_ why: String) -> GatewayError {
            .badRequest("x-gatemesh-custom-cost: \(why); expected {\"per_token_in\": 0.000001, \"per_token_out\": 0.000002}",
                        code: "invalid_custom_cost")
        }
        let object: RequestMetadata
        do {
            object = try RequestMetadata.parse(header)
        } catch {
            throw fail("not a flat JSON object of numbers")
        }
        var prices: [String: TokenPrice] = [:]
        for (key, value) in object.entries {
            guard ["per_token_in", "per_token_out", "per_token_cache_read", "per_token_cache_write"].contains(key) else {
                throw fail("unknown key '\(key)'")
            }
            guard case .number(let text) = value, let price = perToken(text) else {
                throw fail("'\(key)' must be a non-negative number of dollars per token with at most 12 decimals")
            }
            prices[key] = price
        }
        guard let input = prices["per_token_in"], let output = prices["per_token_out"] else {
            throw fail("per_token_in and per_token_out are both required")
        }
        return ModelPrice(input: input, output: output, cacheRead: prices["per_token_cache_read"], cacheWrite: prices["per_token_cache_write"])
    }

    /// The largest exponent a price may have (a price needs a few dozen at most).
    static let maxExponent = 1000

    /// Dollars per token (JSON number text, exponents allowed) as micro-dollars per million tokens.
    static func perToken(_ text: String) -> TokenPrice? {
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            // Bounded so that the decimals below cannot overflow (`1e-9223372036854775808` trapped).
            guard let x = Int(text[text.index(after: e)...]), (-maxExponent...maxExponent).contains(x) else { return nil }
            exponent = x
            mantissa = text[..<e]
        }
        guard !mantissa.hasPrefix("-") else { return nil }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }) else { return nil }
        let digits = parts.joined()
        let decimals = (parts.count == 2 ? parts[1].count : 0) - exponent
        // value = digits × 10^-decimals dollars per token; micro-dollars per million = value × 10^12.
        let shift = 12 - decimals
        guard shift >= 0 else {
            // More than 12 decimals: acceptable only if the extra digits are zeros.
            let cut = -shift
            guard digits.count >= cut, digits.suffix(cut).allSatisfy({ $0 == "0" }) else { return nil }
            return Int64(digits.dropLast(cut)).map { TokenPrice(microsPerMillion: $0) } ?? (digits.dropLast(cut).isEmpty ? TokenPrice(microsPerMillion: 0) : nil)
        }
        guard shift <= 18, let base = Int64(digits) else { return nil }
        var scale: Int64 = 1
        for _ in 0..<shift { scale *= 10 }
        let (v, overflow) = base.multipliedReportingOverflow(by: scale)
        return overflow ? nil : TokenPrice(microsPerMillion: v)
    }
}
