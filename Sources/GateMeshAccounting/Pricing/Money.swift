/// An amount of US dollars as an integer count of nano-dollars (10⁻⁹ $).
///
/// Costs are computed exactly in pico-dollars (tokens × micro-dollars per million tokens) and
/// rounded half-up to nano-dollars once per request, so sums over any number of requests stay
/// integers and a 64-bit total holds over nine billion dollars. Never a float.
public struct Money: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanos: Int64

    public init(nanos: Int64) { self.nanos = nanos }

    public static let zero = Money(nanos: 0)

    /// The most one request is charged: 2^53 nano-dollars (about $9 million). A larger cost, from a
    /// price and a usage no real request reaches, is taken as this, so that the sums of costs in
    /// budgets and analytics stay far from 64-bit overflow.
    public static let maxRequestCost = Money(nanos: 1 << 53)

    public static func + (a: Money, b: Money) -> Money { Money(nanos: a.nanos + b.nanos) }
    public static func += (a: inout Money, b: Money) { a.nanos += b.nanos }
    public static func < (a: Money, b: Money) -> Bool { a.nanos < b.nanos }

    /// Whole micro-dollars, rounded half-up (the unit tests compare totals in).
    public var micros: Int64 { (nanos + (nanos >= 0 ? 500 : -500)) / 1000 }

    /// Dollars as a decimal string with nine places, e.g. `0.000123450`.
    public var dollars: String {
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        let whole = magnitude / 1_000_000_000
        let fraction = String(magnitude % 1_000_000_000)
        return sign + String(whole) + "." + String(repeating: "0", count: 9 - fraction.count) + fraction
    }

    public var description: String { "$" + dollars }

    /// Parses a non-negative decimal dollar amount with at most nine decimals (`"0.15"`, `"12"`).
    public static func parseDollars(_ text: some StringProtocol) -> Money? {
        guard let nanos = DecimalParser.scaled(text, decimals: 9) else { return nil }
        return Money(nanos: nanos)
    }
}

/// A price per million tokens, held as integer micro-dollars per million tokens: `$0.075/M` is
/// 75,000. Every published price has at most six decimals, so this is exact.
public struct TokenPrice: Sendable, Hashable, CustomStringConvertible {
    public var microsPerMillion: Int64

    public init(microsPerMillion: Int64) { self.microsPerMillion = microsPerMillion }

    /// Parses `"0.15"` (dollars per million tokens). At most six decimals; nil otherwise.
    public init?(dollarsPerMillion text: some StringProtocol) {
        guard let v = DecimalParser.scaled(text, decimals: 6) else { return nil }
        microsPerMillion = v
    }

    /// The exact cost of `tokens` in pico-dollars.
    public func picos(for tokens: Int) -> Int64 { Int64(tokens) * microsPerMillion }

    public var description: String {
        let whole = microsPerMillion / 1_000_000
        let fraction = String(microsPerMillion % 1_000_000)
        var text = String(whole) + "." + String(repeating: "0", count: 6 - fraction.count) + fraction
        while text.hasSuffix("0") && !text.hasSuffix(".0") { text.removeLast() }
        return "$" + text + "/M"
    }
}

enum DecimalParser {
    /// `text` × 10^decimals as an integer, for a non-negative plain decimal; nil when it has more
    /// decimals than that, a sign, an exponent or anything else.
    static func scaled(_ text: some StringProtocol, decimals: Int) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let wholePart = parts.first, !wholePart.isEmpty || parts.count == 2,
              wholePart.allSatisfy(\.isASCIIDigit) else { return nil }
        let fractionPart = parts.count == 2 ? parts[1] : ""
        guard fractionPart.count <= decimals, fractionPart.allSatisfy(\.isASCIIDigit), !(parts.count == 2 && fractionPart.isEmpty) else { return nil }
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        guard let whole = wholePart.isEmpty ? 0 : Int64(wholePart) else { return nil }
        let padded = fractionPart + String(repeating: "0", count: decimals - fractionPart.count)
        guard let fraction = padded.isEmpty ? 0 : Int64(padded) else { return nil }
        let (product, overflow) = whole.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        return product + fraction
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
