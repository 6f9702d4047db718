import Foundation
import GateMeshCore

/// One tool call the mock answers with: the tool's name, its arguments as compact JSON text, and
/// its id (`call_…` for OpenAI, `toolu_…` for Anthropic, empty for Google, which sends none).
struct MockToolCall: Sendable, Equatable {
    var id: String
    var name: String
    var arguments: String

    /// Output tokens this call counts for: its arguments' length / 4, at least 1.
    var tokens: Int { max(1, arguments.utf8.count / 4) }

    /// The arguments in fragments of about `size` characters, as the streams send them.
    func fragments(size: Int = 8) -> [String] {
        var out: [String] = []
        var rest = Substring(arguments)
        while !rest.isEmpty {
            out.append(String(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return out
    }
}

/// Decides whether a request is answered with tool calls, and builds them (see docs/mock-provider.md,
/// "Tool calls"). A request gets tool calls when it declares tools, its last turn is a user turn
/// that is not a tool result, its tool choice does not say none, and `x-mock-tool-calls` is not 0.
///
/// Tool declarations are read from the raw body with `JSONSpans`, so that the arguments list the
/// schema's properties in the order the request wrote them.
enum MockTools {
    enum Format { case openAI, anthropic, google }

    /// The text block that `x-mock-tool-text: true` puts before Anthropic tool calls.
    static let preamble = "Let me call a tool for this."

    /// A declared tool: its name and its parameter schema (raw JSON), if any.
    struct Tool {
        var name: String
        var schema: ArraySlice<UInt8>?
    }

    /// The calls to answer with, or nil to answer with text as usual.
    static func calls(_ format: Format, json: JSONValue, body: Data, count: Int, sequence: Int) throws(MockError) -> [MockToolCall]? {
        guard count > 0 else { return nil }
        switch format {
        case .openAI:
            guard let tools = json["tools"]?.arrayValue, !tools.isEmpty else { return nil }
            guard let last = json["messages"]?.arrayValue?.last, last["role"]?.stringValue == "user" else { return nil }
            var forced: [String]?
            if json["tool_choice"]?.stringValue == "none" { return nil }
            if let choice = json["tool_choice"], choice["type"]?.stringValue == "function", let name = choice["function"]?["name"]?.stringValue {
                forced = [name]
            }
            let declared = openAITools(body)
            return try plan(declared, forced: forced, count: count) { i in
                id(prefix: "call_", lead: "", seed: sequence, call: i)
            } unknown: { name in
                "Invalid value for 'tool_choice': no function named '\(name)' was specified in the 'tools' parameter."
            }
        case .anthropic:
            guard let tools = json["tools"]?.arrayValue, !tools.isEmpty else { return nil }
            guard let last = json["messages"]?.arrayValue?.last, last["role"]?.stringValue == "user" else { return nil }
            if let blocks = last["content"]?.arrayValue, blocks.contains(where: { $0["type"]?.stringValue == "tool_result" }) {
                return nil
            }
            var forced: [String]?
            if let choice = json["tool_choice"], case .object = choice {
                switch choice["type"]?.stringValue {
                case "none": return nil
                case "tool": if let name = choice["name"]?.stringValue { forced = [name] }
                default: break
                }
            }
            let declared = anthropicTools(body)
            return try plan(declared, forced: forced, count: count) { i in
                id(prefix: "toolu_", lead: "01", seed: sequence, call: i)
            } unknown: { name in
                "tool_choice.name: tool '\(name)' not found in the provided tools"
            }
        case .google:
            guard let tools = json["tools"]?.arrayValue, !tools.isEmpty else { return nil }
            guard let last = json["contents"]?.arrayValue?.last, case .object = last else { return nil }
            let role = last["role"]?.stringValue
            guard role == nil || role == "user" || role == "" else { return nil }
            if let parts = last["parts"]?.arrayValue,
               parts.contains(where: { $0["functionResponse"] != nil || $0["function_response"] != nil }) {
                return nil
            }
            let toolConfig = json["toolConfig"] ?? json["tool_config"]
            let calling = toolConfig?["functionCallingConfig"] ?? toolConfig?["function_calling_config"]
            if calling?["mode"]?.stringValue?.uppercased() == "NONE" { return nil }
            var forced: [String]?
            if let names = (calling?["allowedFunctionNames"] ?? calling?["allowed_function_names"])?.arrayValue?.compactMap(\.stringValue),
               !names.isEmpty {
                forced = names
            }
            let declared = googleTools(body)
            return try plan(declared, forced: forced, count: count) { _ in "" } unknown: { name in
                "allowed_function_names contains '\(name)', which is not a declared function"
            }
        }
    }

    /// Call `i` uses tool `i % tools.count`, or, when the tool choice names tools, the named ones in turn.
    static func plan(_ declared: [Tool], forced: [String]?, count: Int, id: (Int) -> String,
                     unknown: (String) -> String) throws(MockError) -> [MockToolCall]? {
        var tools = declared
        if let forced {
            var chosen: [Tool] = []
            for name in forced {
                guard let tool = declared.first(where: { $0.name == name }) else { throw MockError(status: 400, message: unknown(name)) }
                chosen.append(tool)
            }
            tools = chosen
        }
        guard !tools.isEmpty else { return nil }
        return (0..<count).map { i in
            let tool = tools[i % tools.count]
            return MockToolCall(id: id(i), name: tool.name, arguments: arguments(schema: tool.schema, call: i))
        }
    }

    // MARK: Reading the declarations

    /// OpenAI: `tools: [{type: function, function: {name, description, parameters}}]`.
    static func openAITools(_ body: Data) -> [Tool] {
        let top = Array(body)[...]
        return (array(member(top, "tools")) ?? []).compactMap { tool in
            if let type = string(member(tool, "type")), type != "function" { return nil }
            guard let function = member(tool, "function"), let name = string(member(function, "name")) else { return nil }
            return Tool(name: name, schema: member(function, "parameters"))
        }
    }

    /// Anthropic: `tools: [{name, description, input_schema}]`. Server tools (web search, …) and
    /// Anthropic-defined client tools (bash, …) have no `input_schema` and are left out.
    static func anthropicTools(_ body: Data) -> [Tool] {
        let top = Array(body)[...]
        return (array(member(top, "tools")) ?? []).compactMap { tool in
            guard let name = string(member(tool, "name")), let schema = member(tool, "input_schema") else { return nil }
            return Tool(name: name, schema: schema)
        }
    }

    /// Google: `tools: [{functionDeclarations: [{name, description, parameters}]}]`; snake_case
    /// spellings and `parametersJsonSchema` are read too.
    static func googleTools(_ body: Data) -> [Tool] {
        let top = Array(body)[...]
        var out: [Tool] = []
        for tool in array(member(top, "tools")) ?? [] {
            for declaration in array(member(tool, "functionDeclarations", "function_declarations")) ?? [] {
                guard let name = string(member(declaration, "name")) else { continue }
                out.append(Tool(name: name, schema: member(declaration, "parameters", "parametersJsonSchema", "parameters_json_schema")))
            }
        }
        return out
    }

    // MARK: Arguments

    /// A JSON object with one member per schema property, in the schema's order: string →
    /// `"mock-<name>-<i>"`, integer → i+1, number → 1.5, boolean → true, array → [], object → {},
    /// null → null; an `enum` gives its first value and a `const` its value. Compact.
    static func arguments(schema: ArraySlice<UInt8>?, call i: Int) -> String {
        guard let properties = object(member(schema, "properties")), !properties.isEmpty else { return "{}" }
        var out = "{"
        for (k, property) in properties.enumerated() {
            if k > 0 { out += "," }
            JSON.appendQuoted(property.key, to: &out)
            out += ":" + value(property.value, name: property.key, call: i, depth: 0)
        }
        return out + "}"
    }

    static func value(_ schema: ArraySlice<UInt8>, name: String, call i: Int, depth: Int) -> String {
        if let first = array(member(schema, "enum"))?.first, let text = compact(first) { return text }
        if let constant = member(schema, "const"), let text = compact(constant) { return text }
        var type = string(member(schema, "type"))
        if type == nil, let types = array(member(schema, "type")) {
            type = types.compactMap { string($0) }.first { $0.lowercased() != "null" } ?? types.compactMap { string($0) }.first
        }
        if type == nil, depth < 8,
           let first = array(member(schema, "anyOf", "oneOf", "any_of"))?.first {
            return value(first, name: name, call: i, depth: depth + 1)
        }
        switch type?.lowercased() {
        case "integer": return String(i + 1)
        case "number": return "1.5"
        case "boolean": return "true"
        case "array": return "[]"
        case "object": return "{}"
        case "null": return "null"
        default: return JSON.quoted("mock-\(name)-\(i)")
        }
    }

    // MARK: Ids

    /// `prefix` + `lead` + alphanumerics, 24 characters after the prefix, stable for a request
    /// number and call index.
    static func id(prefix: String, lead: String, seed: Int, call: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var state = mix(mix(UInt64(truncatingIfNeeded: seed)) ^ UInt64(truncatingIfNeeded: call))
        var out = prefix + lead
        for _ in 0..<(24 - lead.count) {
            state = mix(state)
            out.append(alphabet[Int(state % UInt64(alphabet.count))])
        }
        return out
    }

    /// The splitmix64 finaliser.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: Raw JSON helpers

    /// The value of the first of `keys` present in the object `bytes` (the last duplicate wins).
    static func member(_ bytes: ArraySlice<UInt8>?, _ keys: String...) -> ArraySlice<UInt8>? {
        guard let members = object(bytes) else { return nil }
        for key in keys {
            if let found = members.last(where: { $0.key == key }) { return found.value }
        }
        return nil
    }

    static func object(_ bytes: ArraySlice<UInt8>?) -> [(key: String, value: ArraySlice<UInt8>)]? {
        guard let bytes, bytes.first(where: { !isSpace($0) }) == UInt8(ascii: "{") else { return nil }
        return JSONSpans.object(bytes)
    }

    static func array(_ bytes: ArraySlice<UInt8>?) -> [ArraySlice<UInt8>]? {
        guard let bytes, bytes.first(where: { !isSpace($0) }) == UInt8(ascii: "[") else { return nil }
        return JSONSpans.array(bytes)
    }

    static func string(_ bytes: ArraySlice<UInt8>?) -> String? {
        guard let bytes, bytes.first(where: { !isSpace($0) }) == UInt8(ascii: "\"") else { return nil }
        return JSONSpans.string(bytes)
    }

    /// A JSON value without insignificant whitespace.
    static func compact(_ bytes: ArraySlice<UInt8>) -> String? {
        CanonicalJSON.canonical(Array(bytes)).map { String(decoding: $0, as: UTF8.self) }
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }
}
