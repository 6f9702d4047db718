/// A problem in the config: the key it is under, where in the file, and what is wrong.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dotted key path, e.g. `gateways[1].auth_tokens[0]`.
    public var key: String
    /// 1-based line in the YAML file, when known.
    public var line: Int?
    public var message: String

    public init(key: String, line: Int?, message: String) {
        self.key = key
        self.line = line
        self.message = message
    }

    public var description: String {
        let at = line.map { " (line \($0))" } ?? ""
        return key.isEmpty ? "config\(at): \(message)" : "config key '\(key)'\(at): \(message)"
    }
}
