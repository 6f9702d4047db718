/// When and how long to wait before trying an upstream request again. Pure: the caller passes
/// the attempt number, what went wrong and a random number; nothing here sleeps or reads a clock.
///
/// Retried: connection failures and timeouts before any answer, `429` and `5xx` other than `501`
/// and `505`. Never retried: anything after the first byte of the answer reached the client (the
/// proxy decides on the response head, before it sends anything), and requests whose body streamed
/// up unread (it cannot be sent twice).
public struct RetryPolicy: Sendable, Equatable {
    public enum Backoff: String, Sendable, Equatable, CaseIterable {
        /// `delay` before every retry.
        case constant
        /// `delay × n` before retry n.
        case linear
        /// `delay × 2^(n-1)` before retry n.
        case exponential
    }

    public static let maxAttemptsLimit = 5
    /// A retry never waits longer than this; a `Retry-After` beyond it is not waited for (the
    /// 429 goes to the client instead).
    public static let maxDelayMs = 60_000

    /// Attempts in all, the first included (1 = no retries).
    public var maxAttempts: Int
    public var delayMs: Int
    public var backoff: Backoff
    /// Wait a random time between half the computed delay and all of it, so that clients that
    /// failed together do not retry together.
    public var jitter: Bool

    public init(maxAttempts: Int = 1, delayMs: Int = 200, backoff: Backoff = .exponential, jitter: Bool = true) {
        self.maxAttempts = maxAttempts
        self.delayMs = delayMs
        self.backoff = backoff
        self.jitter = jitter
    }

    public static func isRetryable(status: Int) -> Bool {
        status == 429 || (status >= 500 && status <= 599 && status != 501 && status != 505)
    }

    /// How long to wait before attempt `next` (2 for the first retry), or nil to stop: no
    /// attempts left, or a `Retry-After` longer than `maxDelayMs`. `random` is in 0..<1.
    public func delay(beforeAttempt next: Int, retryAfterMs: Int? = nil, random: Double) -> Int? {
        guard next >= 2, next <= maxAttempts else { return nil }
        let n = next - 1
        var base: Int
        switch backoff {
        case .constant: base = delayMs
        case .linear: base = delayMs * n
        case .exponential: base = delayMs << min(n - 1, 20)
        }
        base = min(base, Self.maxDelayMs)
        if jitter { base = base / 2 + Int(Double(base - base / 2) * min(max(random, 0), 1)) }
        if let retryAfterMs {
            guard retryAfterMs <= Self.maxDelayMs else { return nil }
            base = max(base, retryAfterMs)
        }
        return base
    }

    /// `Retry-After` as milliseconds: delta seconds (`120`) only; an HTTP date is ignored (nil).
    public static func retryAfterMs(_ value: String?) -> Int? {
        guard let value, let seconds = Double(value.trimmingCharacters(in: " ")), seconds >= 0, seconds.isFinite else { return nil }
        return Int(min(seconds * 1000, Double(Int32.max)))
    }

    /// The policy for one request: the gateway's, changed by `max-attempts`, `retry-delay` (ms)
    /// and `backoff` headers (`x-gatemesh-…` or `cf-aig-…`). Bad values are a 400 naming the header.
    public func applying(headers header: (String) -> String?) throws(GatewayError) -> RetryPolicy {
        var p = self
        func first(_ name: String) -> (name: String, value: String)? { ControlHeader.value(name, in: header) }
        if let (name, v) = first("max-attempts") {
            guard let n = Int(v), (1...Self.maxAttemptsLimit).contains(n) else {
                throw GatewayError.badRequest("\(name) must be a whole number from 1 to \(Self.maxAttemptsLimit), got '\(v)'", code: "invalid_header")
            }
            p.maxAttempts = n
        }
        if let (name, v) = first("retry-delay") {
            guard let n = Int(v), (0...Self.maxDelayMs).contains(n) else {
                throw GatewayError.badRequest("\(name) must be milliseconds from 0 to \(Self.maxDelayMs), got '\(v)'", code: "invalid_header")
            }
            p.delayMs = n
        }
        if let (name, v) = first("backoff") {
            guard let b = Backoff(rawValue: v.lowercased()) else {
                throw GatewayError.badRequest("\(name) must be constant, linear or exponential, got '\(v)'", code: "invalid_header")
            }
            p.backoff = b
        }
        return p
    }
}

extension String {
    func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s.removeFirst() }
        while s.last == c { s.removeLast() }
        return String(s)
    }
}
