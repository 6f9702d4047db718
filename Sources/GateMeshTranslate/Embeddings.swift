import GateMeshCore

/// OpenAI's embeddings API in front of Google AI Studio's `batchEmbedContents`
/// (ai.google.dev/api/embeddings): each input string becomes one EmbedContentRequest, and the
/// vectors come back as OpenAI embedding objects, as floats or (`encoding_format: base64`, which
/// the OpenAI SDKs ask for by default) as base64 of little-endian float32s.
public enum GoogleEmbeddings {
    public static func request(_ body: JSONValue, model: String) throws(TranslationError) -> JSONValue {
        guard case .object(let req) = body else { throw TranslationError("the request body must be a JSON object") }
        let inputs: [String]
        switch req["input"] {
        case .string(let s)?: inputs = [s]
        case .array(let a)? where !a.isEmpty && a.allSatisfy({ $0.stringValue != nil }): inputs = a.compactMap(\.stringValue)
        case .array(let a)? where !a.isEmpty:
            throw .cannotTranslate("input (token arrays)", provider: "google-ai-studio", detail: "send the text as strings")
        default: throw TranslationError("'input' must be a string or a non-empty array of strings", param: "input")
        }
        if let f = req["encoding_format"]?.stringValue, f != "float", f != "base64" {
            throw TranslationError("'encoding_format' must be float or base64", param: "encoding_format")
        }
        let requests = inputs.map { text -> JSONValue in
            var r: JSONObject = ["model": .string("models/\(model)"), "content": .object(["parts": .array([.object(["text": .string(text)])])])]
            if let d = req["dimensions"], !d.isNull { r["outputDimensionality"] = d }
            return .object(r)
        }
        return .object(["requests": .array(requests)])
    }

    public static func response(_ bytes: [UInt8], status: Int, model: String, base64: Bool) -> [UInt8] {
        if status >= 400 { return ErrorShapes.openAI(fromGoogle: bytes, status: status) }
        guard let v = JSONValue.parse(bytes) else { return bytes }
        var data: [JSONValue] = []
        for (i, e) in (v["embeddings"]?.arrayValue ?? []).enumerated() {
            let values = e["values"]?.arrayValue ?? []
            let embedding: JSONValue = base64 ? .string(encode(values.map { Float($0.doubleValue ?? 0) })) : .array(values)
            data.append(.object(["object": "embedding", "index": .int(i), "embedding": embedding]))
        }
        // Google does not count the tokens of an embedding request.
        return JSONValue.object(["object": "list", "data": .array(data), "model": .string(model),
                                 "usage": .object(["prompt_tokens": 0, "total_tokens": 0])]).bytes
    }

    /// Base64 of the values as little-endian IEEE-754 float32s, as OpenAI sends them.
    static func encode(_ values: [Float]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for v in values {
            let b = v.bitPattern.littleEndian
            bytes += [UInt8(b & 0xFF), UInt8(b >> 8 & 0xFF), UInt8(b >> 16 & 0xFF), UInt8(b >> 24)]
        }
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            let chunk = (UInt32(bytes[i]) << 16) | (n > 1 ? UInt32(bytes[i + 1]) << 8 : 0) | (n > 2 ? UInt32(bytes[i + 2]) : 0)
            out.append(table[Int(chunk >> 18 & 63)])
            out.append(table[Int(chunk >> 12 & 63)])
            out.append(n > 1 ? table[Int(chunk >> 6 & 63)] : UInt8(ascii: "="))
            out.append(n > 2 ? table[Int(chunk & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
