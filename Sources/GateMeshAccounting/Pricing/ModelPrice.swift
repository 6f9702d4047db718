/// What one model costs, per kind of token.
public struct ModelPrice: Sendable, Hashable {
    public var input: TokenPrice
    public var output: TokenPrice
    /// Cached input read; providers without cache pricing charge it as input.
    public var cacheRead: TokenPrice?
    /// Cache writes (Anthropic); providers without them charge it as input.
    public var cacheWrite: TokenPrice?

    public init(input: TokenPrice, output: TokenPrice, cacheRead: TokenPrice? = nil, cacheWrite: TokenPrice? = nil) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
    }

    /// The cost of `usage`, computed exactly and rounded half-up to the nano-dollar once; at most
    /// `Money.maxRequestCost` (a price times a usage that would overflow 64 bits trapped before).
    public func cost(of usage: TokenUsage) -> Money {
        var picos: Int64 = 0
        func add(_ price: TokenPrice, _ tokens: Int) -> Bool {
            let (p, overflow) = Int64(tokens).multipliedReportingOverflow(by: price.microsPerMillion)
            let (sum, overflowed) = picos.addingReportingOverflow(p)
            picos = sum
            return !overflow && !overflowed
        }
        guard add(input, usage.input), add(output, usage.output), add(cacheRead ?? input, usage.cacheRead),
              add(cacheWrite ?? input, usage.cacheWrite), picos <= Int64.max - 500 else { return .maxRequestCost }
        return min(Money(nanos: (picos + 500) / 1000), .maxRequestCost)
    }
}
