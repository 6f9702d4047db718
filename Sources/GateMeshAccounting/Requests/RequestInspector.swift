import Foundation
import GateMeshCore

/// Reads `RequestFacts` from a request body, and adds `stream_options.include_usage` to
/// OpenAI-format streams that did not ask for it. Pure: bytes in, values out.
public enum RequestInspector {
    /// Keys whose string values are not prompt text (identifiers, enums, binary payloads).
    static let skippedKeys: Set<String> = [
        "model", "role", "type", "id", "tool_call_id", "name", "image_url", "url", "source", "inline_data",
        "inlineData", "file_data", "fileData", "input_audio", "mimeType", "media_type", "detail", "format",
    ]

    public static func inspect(format: APIFormat, path: Substring, body: some Collection<UInt8>) -> RequestFacts {
        var facts = RequestFacts()
        if format == .googleStream { facts.stream = true }
        if format == .googleGenerate || format == .googleStream, let model = googleModel(path: path) {
            facts.model = model
        }
        guard !body.isEmpty, let scan = JSONValue.scan(Array(body), keys: inspectedKeys, skipping: skippedKeyBytes) else { return facts }
        let object = scan.members
        // A Google path names the model it serves; a `model` in the body must not stand in for it.
        if facts.model == nil, let model = object["model"]?.stringValue { facts.model = model }
        if let stream = object["stream"]?.boolValue { facts.stream = stream }
        if object["stream_options"]?["include_usage"]?.boolValue == true { facts.clientAskedForUsage = true }
        facts.maxOutputTokens = object["max_completion_tokens"]?.intValue ?? object["max_tokens"]?.intValue
            ?? object["max_output_tokens"]?.intValue ?? object["generationConfig"]?["maxOutputTokens"]?.intValue
        if let user = object["user"]?.stringValue, !user.isEmpty, user.utf8.count <= 256 { facts.user = user }
        facts.estimatedInputTokens = (scan.characters + 3) / 4
        return facts
    }

    /// The top-level members the facts come from.
    static let inspectedKeys: Set<String> = [
        "model", "stream", "stream_options", "max_completion_tokens", "max_tokens", "max_output_tokens", "generationConfig", "user",
    ]
    static let skippedKeyBytes: [[UInt8]] = skippedKeys.map { Array($0.utf8) }

    /// `…/models/{model}:generateContent` → `{model}`.
    static func googleModel(path: Substring) -> String? {
        guard let colon = path.lastIndex(of: ":"), let slash = path[..<colon].lastIndex(of: "/") else { return nil }
        let model = path[path.index(after: slash)..<colon]
        return model.isEmpty ? nil : String(model)
    }

    /// The body with its `model` replaced (a downgrade, a route target), or nil when it is not a
    /// JSON object. Everything else keeps its order and its numbers as written.
    public static func replacingModel(in body: [UInt8], with model: String) -> [UInt8]? {
        guard case .object(var object)? = JSONValue.parse(body) else { return nil }
        object["model"] = .string(model)
        return JSONValue.object(object).bytes
    }

    /// The body with `"stream_options":{"include_usage":true}` added, or nil when it already asks
    /// for usage or is not a JSON object. Only the top-level object's end is touched when the
    /// client sent no `stream_options`, so everything else stays byte for byte.
    public static func addingUsageRequest(to body: [UInt8]) -> [UInt8]? {
        guard let object = JSONValue.members(of: body, keys: ["stream_options"]) else { return nil }
        if let options = object["stream_options"] {
            guard case .object(var o) = options else { return nil }
            if o["include_usage"] == .bool(true) { return nil }
            o["include_usage"] = .bool(true)
            guard case .object(var whole)? = JSONValue.parse(body) else { return nil }
            whole["stream_options"] = .object(o)
            return JSONValue.object(whole).bytes
        }
        // An object with no members: nothing but whitespace between its braces.
        guard let open = body.firstIndex(of: UInt8(ascii: "{")) else { return nil }
        let empty = body[(open + 1)...].first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 } == UInt8(ascii: "}")
        guard let close = body.lastIndex(of: UInt8(ascii: "}")) else { return nil }
        var out = Array(body[..<close])
        out.append(contentsOf: Array((empty ? "" : ",").utf8) + Array("\"stream_options\":{\"include_usage\":true}".utf8))
        out.append(contentsOf: body[close...])
        return out
    }
}
