import GateMeshCore

/// Reads provider usage objects into `TokenUsage`. Field names follow each provider's
/// published API reference (see docs/cost-tracking.md).
///
/// Reads them in place (`JSONObjectView`): an answer's usage is read on every request, and a
/// tree of it (or a Foundation `[String: Any]` with its dynamic casts) costs more than the walk.
enum UsageJSON {
    /// The object in `bytes`, or nil when they are not one JSON object.
    static func object(_ bytes: [UInt8]) -> JSONObjectView? { JSONObjectView(bytes) }

    /// OpenAI chat/completions/embeddings usage (`prompt_tokens`, `completion_tokens`,
    /// `prompt_tokens_details.cached_tokens`) and Responses usage (`input_tokens`, `output_tokens`,
    /// `input_tokens_details.cached_tokens`). Cached tokens are part of the prompt count there.
    static func openAI(_ usage: JSONObjectView) -> TokenUsage? {
        let prompt = usage.int("prompt_tokens") ?? usage.int("input_tokens")
        let completion = usage.int("completion_tokens") ?? usage.int("output_tokens") ?? 0
        guard let prompt else { return nil }
        let details = usage.object("prompt_tokens_details") ?? usage.object("input_tokens_details")
        // DeepSeek reports its cache hits as prompt_cache_hit_tokens.
        let cached = min(details?.int("cached_tokens") ?? usage.int("prompt_cache_hit_tokens") ?? 0, prompt)
        return TokenUsage(input: prompt - cached, output: completion, cacheRead: cached)
    }

    /// Anthropic usage: `input_tokens` excludes cache reads and writes, which come separately.
    static func anthropic(_ usage: JSONObjectView, into u: inout TokenUsage) {
        if let v = usage.int("input_tokens") { u.input = v }
        if let v = usage.int("output_tokens") { u.output = v }
        if let v = usage.int("cache_read_input_tokens") { u.cacheRead = v }
        if let v = usage.int("cache_creation_input_tokens") { u.cacheWrite = v }
    }

    /// Google `usageMetadata`: `promptTokenCount` includes `cachedContentTokenCount`; thinking
    /// tokens (`thoughtsTokenCount`) are billed as output.
    static func google(_ meta: JSONObjectView) -> TokenUsage? {
        guard let prompt = meta.int("promptTokenCount") else { return nil }
        let cached = min(meta.int("cachedContentTokenCount") ?? 0, prompt)
        let output = (meta.int("candidatesTokenCount") ?? 0) + (meta.int("thoughtsTokenCount") ?? 0)
        return TokenUsage(input: prompt - cached, output: output, cacheRead: cached)
    }
}
