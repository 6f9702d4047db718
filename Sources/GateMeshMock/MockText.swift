import GateMeshCore
import Foundation

/// Deterministic text and token counts, so that costs computed from the mock's usage can be checked.
///
/// Rule: a token is a whitespace-separated word. Input tokens are the words of every text the
/// request carries (message contents and text parts, system prompts, prompts, embedding inputs).
/// Output token `i` is word `i % 16` of a fixed list, followed by a space except for the last one.
enum MockText {
    static let vocabulary = [
        "The", "gateway", "answered", "this", "request", "with", "a", "deterministic", "reply", "so",
        "tests", "can", "check", "every", "token", "count",
    ]

    static func outputToken(_ i: Int, of count: Int) -> String {
        let word = vocabulary[i % vocabulary.count]
        return i == count - 1 ? word : word + " "
    }

    static func output(_ count: Int) -> String {
        (0..<count).map { outputToken($0, of: count) }.joined()
    }

    static func wordCount(_ text: String) -> Int {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).count
    }

    /// Words in every string found under the keys that carry text in any of the three formats.
    static func inputTokens(_ value: JSONValue?) -> Int {
        switch value {
        case .string(let s)?:
            return wordCount(s)
        case .array(let array)?:
            return array.reduce(0) { $0 + inputTokens($1) }
        case .object(let object)?:
            var total = 0
            for key in ["content", "text", "system", "prompt", "input", "messages", "contents", "parts", "systemInstruction"] {
                if let v = object[key] { total += inputTokens(v) }
            }
            return total
        default:
            return 0
        }
    }

    /// A stable pseudo-random embedding of `text` with `dimensions` components in [-1, 1].
    static func embedding(_ text: String, dimensions: Int) -> [Double] {
        var state: UInt64 = 1469598103934665603
        for b in text.utf8 { state = (state ^ UInt64(b)) &* 1099511628211 }
        return (0..<dimensions).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Double(state >> 11) / Double(1 << 53)) * 2 - 1
        }
    }
}
