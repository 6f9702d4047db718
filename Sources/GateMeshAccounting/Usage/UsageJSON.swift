import GateMeshCore

/// Reads provider usage objects into `TokenUsage`. Field names follow each provider's
/// published API reference (see docs/cost-tracking.md).
///
/// Reads them in place (`JSONObjectView`): an answer's usage is read on every request, and a
/// tree of it (or a Foundation `[String: Any]` with its dynamic casts) costs more than the walk.
enum UsageJSON {
    /// The object in `bytes`, or nil when they are not one JSON object.
    static func object(_ bytes: [UInt8]) -> JSONObjectView? { JSONObjectView(bytes) }

    /// A token count as reported, within 0 through `TokenUsage.maxReported`: a provider's figure
    /// is its word, not a number to trust with arithmetic (`-9223372036854775808` cached tokens
    /// overflowed the subtraction below and trapped).
    static func count(_ object: JSONObjectView, _ key: String) -> Int? {
        object.int(key).map { min(max($0, 0), TokenUsage.maxReported) }
    }

    /// OpenAI chat/completions/embeddings usage (`prompt_tokens`, `completion_tokens`,
    /// `prompt_tokens_details.cached_tokens`) and Responses usage (`input_tokens`, `output_tokens`,
    /// `input_tokens_details.cached_tokens`). Cached tokens are part of the prompt count there.
    static func openAI(_ usage: JSONObjectView) -> TokenUsage? {
        let prompt = count(usage, "prompt_tokens") ?? count(usage, "input_tokens")
        let completion = count(usage, "completion_tokens") ?? count(usage, "output_tokens") ?? 0
        guard let prompt else { return nil }
        let details = usage.object("prompt_tokens_details") ?? usage.object("input_tokens_details")
        // DeepSeek reports its cache hits as prompt_cache_hit_tokens.
        let cached = min(details.flatMap { count($0, "cached_tokens") } ?? count(usage, "prompt_cache_hit_tokens") ?? 0, prompt)
        return TokenUsage(input: prompt - cached, output: completion, cacheRead: cached)
    }

    /// Anthropic usage: `input_tokens` excludes cache reads and writes, which come separately.
    static func anthropic(_ usage: JSONObjectView, into u: inout TokenUsage) {
        if let v = count(usage, "input_tokens") { u.input = v }
        if let v = count(usage, "output_tokens") { u.output = v }
        if let v = count(usage, "cache_read_input_tokens") { u.cacheRead = v }
        if let v = count(usage, "cache_creation_input_tokens") { u.cacheWrite = v }
    }

    /// Google `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`; thinking
    /// tokens (`thoughtsTokenCount`) are billed as output.
    static func google(_ meta: JSONObjectView) -> TokenUsage? {
        guard let prompt = count(meta, "promptTokenCount") else { return nil }
        let cached = min(count(meta, "cachedContentTokenCount") ?? 0, prompt)
        let output = (count(meta, "candidatesTokenCount") ?? 0) + (count(meta, "thoughtsTokenCount") ?? 0)
        return TokenUsage(input: prompt - cached, output: output, cacheRead: cached)
    }
}
