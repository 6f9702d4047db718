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

    /// The cost of `usage`, computed exactly and rounded half-up to the nano-dollar once.
    public func cost(of usage: TokenUsage) -> Money {
        let picos = input.picos(for: usage.input) + output.picos(for: usage.output)
            + (cacheRead ?? input).picos(for: usage.cacheRead) + (cacheWrite ?? input).picos(for: usage.cacheWrite)
        return Money(nanos: (picos + 500) / 1000)
    }
}
