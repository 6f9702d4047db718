import GateMeshCore

/// Building the turns of a conversation in Anthropic's or Google's shape from OpenAI's messages.
enum Turns {
    /// Adds a turn of `role` holding `items` under `key` (`content` blocks, `parts`), merged into
    /// the last turn when that has the same role: Anthropic and Google both want roles to alternate.
    static func append(_ turns: inout [JSONObject], role: String, key: String, _ items: [JSONValue]) {
        guard !items.isEmpty else { return }
        if var last = turns.last, last["role"]?.stringValue == role, case .array(let prior)? = last[key] {
            last[key] = .array(prior + items)
            turns[turns.count - 1] = last
        } else {
            turns.append(["role": .string(role), key: .array(items)])
        }
    }

    /// `data:MEDIA;base64,DATA` (an inline image) split into its media type and data.
    static func dataURL(_ url: String) -> (mediaType: String, data: String)? {
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return nil }
        let meta = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        guard meta.hasSuffix(";base64") else { return nil }
        return (String(meta.dropLast(7)), String(url[url.index(after: comma)...]))
    }
}
