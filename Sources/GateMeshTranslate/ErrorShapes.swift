import GateMeshCore

/// Provider errors in the client's format, with the provider's status kept.
/// OpenAI: `{"error":{"message","type","param","code"}}`; Anthropic:
/// `{"type":"error","error":{"type","message"}}` (docs.anthropic.com/en/api/errors).
public enum ErrorShapes {
    public static func openAI(fromAnthropic v: JSONValue, status: Int) -> [UInt8] {
        let message = v["error"]?["message"]?.stringValue ?? v.text
        let type = v["error"]?["type"]?.stringValue ?? "api_error"
        let openAIType: String
        switch type {
        case "invalid_request_error", "not_found_error", "request_too_large": openAIType = "invalid_request_error"
        case "authentication_error": openAIType = "authentication_error"
        case "permission_error": openAIType = "permission_error"
        case "rate_limit_error": openAIType = "rate_limit_error"
        default: openAIType = "api_error"
        }
        return JSONValue.object(["error": .object(["message": .string(message), "type": .string(openAIType), "param": .null,
                                                    "code": .string(type)])]).bytes
    }

    public static func anthropicType(status: Int) -> String {
        switch status {
        case 400, 422: return "invalid_request_error"
        case 401: return "authentication_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 529, 503: return "overloaded_error"
        default: return "api_error"
        }
    }

    /// Any error body (OpenAI's shape, Google's `{"error":{"code","message","status"}}`, or text)
    /// in Anthropic's shape.
    public static func anthropic(from bytes: [UInt8], status: Int) -> [UInt8] {
        let v = JSONValue.parse(bytes)
        if v?["type"]?.stringValue == "error" { return bytes }
        let message = v?["error"]?["message"]?.stringValue ?? v?["message"]?.stringValue ?? String(decoding: bytes.prefix(2000), as: UTF8.self)
        return JSONValue.object(["type": "error", "error": .object(["type": .string(anthropicType(status: status)),
                                                                     "message": .string(message)])]).bytes
    }

    /// Google's error body in OpenAI's shape.
    public static func openAI(fromGoogle bytes: [UInt8], status: Int) -> [UInt8] {
        guard let v = JSONValue.parse(bytes) else { return bytes }
        let e = v["error"] ?? v[0]?["error"]
        let message = e?["message"]?.stringValue ?? v.text
        let type: String
        switch status {
        case 400: type = "invalid_request_error"
        case 401: type = "authentication_error"
        case 403: type = "permission_error"
        case 429: type = "rate_limit_error"
        default: type = "api_error"
        }
        return JSONValue.object(["error": .object(["message": .string(message), "type": .string(type), "param": .null,
                                                    "code": e?["status"] ?? .null])]).bytes
    }
}
