/// Rewrites the parts of a logged payload that match the configured rules (`logging.redact`)
/// before the payload is stored, and so before it is read back or exported. Pure.
///
/// A rule is one of the built-in ones, by name, or a regular expression of the operator's with
/// its replacement. Bodies that are not UTF-8 text (a compressed answer, an image) cannot be
/// searched: they are stored as `[not stored: N bytes that are not UTF-8 text, with redaction on]`
/// rather than unredacted.
public struct Redactor: Sendable {
    /// A compiled expression. `Regex<AnyRegexOutput>` is not `Sendable` only because its
    /// captures could hold anything; what it holds is its compiled program, immutable once made
    /// (and the request log's writer, one task, is its only user).
    struct Compiled: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
    }

    public struct Rule: Sendable {
        public let name: String
        let compiled: Compiled
        var regex: Regex<AnyRegexOutput> { compiled.regex }
        let replacement: String
        /// A match must also pass this (the card numbers' Luhn check).
        let accept: (@Sendable (Substring) -> Bool)?
    }

    public let rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules }

    public var isEmpty: Bool { rules.isEmpty }

    /// The built-in rules' names.
    public static let builtInNames = ["api_keys", "emails", "card_numbers"]

    /// The built-in rule `name`; nil for an unknown name.
    public static func builtIn(_ name: String) -> Rule? {
        switch name {
        case "api_keys":
            // OpenAI and Anthropic (sk-, sk-proj-, sk-ant-), AWS access key ids, Google API keys,
            // GitHub and Slack tokens, and any bearer credential written out.
            return try? rule(name, pattern: #"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_\-]{35}|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abprs]-[A-Za-z0-9\-]{10,}|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"#,
                             replace: "[REDACTED:api_key]")
        case "emails":
            return try? rule(name, pattern: #"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"#, replace: "[REDACTED:email]")
        case "card_numbers":
            // 13 to 19 digits, in groups split by spaces or dashes, that pass the Luhn check.
            return try? rule(name, pattern: #"\b\d(?:[ \-]?\d){12,18}\b"#, replace: "[REDACTED:card_number]", accept: luhn)
        default:
            return nil
        }
    }

    /// A rule of the operator's: `pattern` in Swift's regular expression syntax (that of
    /// PCRE and ICU for what they share). Throws when it does not compile.
    public static func rule(_ name: String, pattern: String, replace: String,
                            accept: (@Sendable (Substring) -> Bool)? = nil) throws -> Rule {
        Rule(name: name, compiled: Compiled(regex: try Regex(pattern)), replacement: replace, accept: accept)
    }

    /// The text with every match of every rule replaced, in the rules' order.
    public func redact(_ text: String) -> String {
        var out = text
        for rule in rules {
            if let accept = rule.accept {
                var result = ""
                var last = out.startIndex
                for match in out.matches(of: rule.regex) where accept(out[match.range]) {
                    result += out[last..<match.range.lowerBound]
                    result += rule.replacement
                    last = match.range.upperBound
                }
                if last != out.startIndex {
                    result += out[last...]
                    out = result
                }
            } else {
                out = out.replacing(rule.regex, with: rule.replacement)
            }
        }
        return out
    }

    /// A stored body after the rules: UTF-8 text redacted; anything else replaced by a note.
    public func redact(body: [UInt8]) -> [UInt8] {
        guard !rules.isEmpty else { return body }
        guard let text = String(validating: body, as: UTF8.self) else {
            return Array("[not stored: \(body.count) bytes that are not UTF-8 text, with redaction on]".utf8)
        }
        return Array(redact(text).utf8)
    }

    /// The Luhn check of the digits in `s` (separators skipped).
    @Sendable static func luhn(_ s: Substring) -> Bool {
        let digits = s.compactMap(\.wholeNumberValue)
        guard (13...19).contains(digits.count) else { return false }
        var sum = 0
        for (i, d) in digits.reversed().enumerated() {
            if i % 2 == 1 {
                let doubled = d * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += d
            }
        }
        return sum % 10 == 0
    }
}
