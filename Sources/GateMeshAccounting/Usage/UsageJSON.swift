import Foundation
import GateMeshCore

/// Reads provider usage objects into `TokenUsage`. Field names follow each provider's
/// published API reference (see docs/cost-tracking.md).
enum UsageJSON {
    /// The object in `bytes` (with our own parser: Foundation's is several times slower); only
    /// the members named in `keys` when given, the others skipped unbuilt.
    static func object(_ bytes: some Collection<UInt8>, keys: Set<String>? = nil) -> [String: Any]? {
        let array = Array(bytes)
        if let keys { return JSONValue.members(of: array, keys: keys)?.anyDictionary }
        guard case .object(let o)? = JSONValue.parse(array) else { return nil }
        return o.anyDictionary
    }

    /// The top-level members a whole answer's accounting reads.
    static let answerKeys: Set<String> = ["model", "modelVersion", "usage", "usageMetadata"]

    static func int(_ value: Any?) -> Int? {
        if let n = value as? Int { return n }
        if let n = value as? NSNumber { return n.intValue }
        return nil
    }

    /// OpenAI chat/completions/embeddings usage (`prompt_tokens`, `completion_tokens`,
    /// `prompt_tokens_details.cached_tokens`) and Responses usage (`input_tokens`, `output_tokens`,
    /// `input_tokens_details.cached_tokens`). Cached tokens are part of the prompt count there.
    static func openAI(_ usage: [String: Any]) -> TokenUsage? {
        let prompt = int(usage["prompt_tokens"]) ?? int(usage["input_tokens"])
        let completion = int(usage["completion_tokens"]) ?? int(usage["output_tokens"]) ?? 0
        guard let prompt else { return nil }
        let details = (usage["prompt_tokens_details"] ?? usage["input_tokens_details"]) as? [String: Any]
        // DeepSeek reports its cache hits as prompt_cache_hit_tokens.
        let cached = min(int(details?["cached_tokens"]) ?? int(usage["prompt_cache_hit_tokens"]) ?? 0, prompt)
        return TokenUsage(input: prompt - cached, output: completion, cacheRead: cached)
    }

    /// Anthropic usage: `input_tokens` excludes cache reads and writes, which come separately.
    static func anthropic(_ usage: [String: Any], into u: inout TokenUsage) {
        if let v = int(usage["input_tokens"]) { u.input = v }
        if let v = int(usage["output_tokens"]) { u.output = v }
        if let v = int(usage["cache_read_input_tokens"]) { u.cacheRead = v }
        if let v = int(usage["cache_creation_input_tokens"]) { u.cacheWrite = v }
    }

    /// Google `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`; thinking
    /// tokens (`thoughtsTokenCount`) are billed as output.
    static func google(_ meta: [String: Any]) -> TokenUsage? {
        guard let prompt = int(meta["promptTokenCount"]) else { return nil }
        let cached = min(int(meta["cachedContentTokenCount"]) ?? 0, prompt)
        let output = (int(meta["candidatesTokenCount"]) ?? 0) + (int(meta["thoughtsTokenCount"]) ?? 0)
        return TokenUsage(input: prompt - cached, output: output, cacheRead: cached)
    }
}
