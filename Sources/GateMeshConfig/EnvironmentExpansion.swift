/// Expands `${NAME}` and `${NAME:-fallback}` in config values from an environment.
public enum EnvironmentExpansion {
    public struct Result: Equatable {
        public var value: String
        /// Variables referenced without a fallback that were not set (they expanded to "").
        public var missing: [String]
    }

    /// Expands every `${…}` in `text`. A `$` not followed by `{` is kept as is; `$$` is a literal `$`.
    public static func expand(_ text: String, environment: [String: String]) throws(ConfigError) -> Result {
        guard text.contains("$") else { return Result(value: text, missing: []) }
        var out = ""
        var missing: [String] = []
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            let next = text.index(after: i)
            if c == "$", next < text.endIndex, text[next] == "$" {
                out.append("$")
                i = text.index(after: next)
                continue
            }
            if c == "$", next < text.endIndex, text[next] == "{" {
                guard let close = text[next...].firstIndex(of: "}") else {
                    throw ConfigError(key: "", line: nil, message: "unterminated '${' in '\(text)'")
                }
                let inner = text[text.index(after: next)..<close]
                let name: Substring
                let fallback: Substring?
                if let sep = inner.range(of: ":-") {
                    name = inner[..<sep.lowerBound]
                    fallback = inner[sep.upperBound...]
                } else {
                    name = inner
                    fallback = nil
                }
                guard !name.isEmpty, name.allSatisfy({ $0 == "_" || $0.isLetter || $0.isNumber }) else {
                    throw ConfigError(key: "", line: nil, message: "'${\(inner)}' is not a valid environment reference")
                }
                if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                    out += value
                } else if let fallback {
                    out += fallback
                } else {
                    missing.append(String(name))
                }
                i = text.index(after: close)
                continue
            }
            out.append(c)
            i = next
        }
        return Result(value: out, missing: missing)
    }
}
