/// Tokens one request used, by the kinds providers price differently.
///
/// `input` counts uncached input only: providers that report cached tokens as part of their
/// prompt count (OpenAI, Google) have them moved to `cacheRead`, so each token is priced once.
public struct TokenUsage: Sendable, Equatable, CustomStringConvertible {
    public var input: Int
    public var output: Int
    public var cacheRead: Int
    public var cacheWrite: Int
    /// True when some figure was estimated by the gateway because the provider never reported it
    /// (a stream cut short, a client gone mid-stream).
    public var estimated: Bool

    public init(input: Int = 0, output: Int = 0, cacheRead: Int = 0, cacheWrite: Int = 0, estimated: Bool = false) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
        self.estimated = estimated
    }

    public static let zero = TokenUsage()

    /// The largest figure read from a provider's usage (2^40, a trillion tokens): larger ones are
    /// taken as this, so totals and costs of the four figures cannot overflow.
    public static let maxReported = 1 << 40

    public var totalInput: Int { input + cacheRead + cacheWrite }
    public var total: Int { totalInput + output }

    public var description: String {
        "in=\(input) out=\(output) cache_read=\(cacheRead) cache_write=\(cacheWrite)\(estimated ? " (estimated)" : "")"
    }
}
