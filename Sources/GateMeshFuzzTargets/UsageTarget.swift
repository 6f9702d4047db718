import GateMeshAccounting

extension FuzzTargets {
    /// A provider's response as the accountant reads it, in every format and mode (stream,
    /// array, whole body, usage stripping), split as a network would; then its cost at a real
    /// price. Only the bytes are the provider's: nothing here may trap, whatever it claims.
    public static let usage = FuzzTarget(
        name: "usage",
        summary: "ResponseAccountant (usage parsing) over split responses, then the cost",
        run: { data in
            var input = FuzzInput(data)
            let mode = input.byte()
            let formats: [APIFormat] = [.openAIChat, .openAICompletions, .openAIEmbeddings, .openAIResponses, .anthropicMessages,
                                        .googleGenerate, .googleStream, .other]
            let format = formats[Int(mode & 7)]
            let contentType = ["text/event-stream; charset=utf-8", "application/json", nil, "TEXT/EVENT-STREAM"][Int(mode >> 3 & 3)]
            let strips = mode & 0x20 != 0
            let lengths = (0..<Int(input.byte() % 8)).map { _ in input.byte() }
            let bytes = input.rest
            var accountant = ResponseAccountant(format: format, contentType: contentType, request: RequestFacts(estimatedInputTokens: 10),
                                                stripsInjectedUsage: strips, maxWholeBodyBytes: 1 << 16)
            var forwarded = 0
            for piece in chunks(bytes, lengths: lengths) {
                if let out = accountant.process(piece) { forwarded += out.count } else { forwarded += piece.count }
            }
            let (tail, outcome) = accountant.finish(completed: mode & 0x40 != 0)
            FuzzCheck.require(forwarded + tail.count <= bytes.count, "the accountant forwarded more bytes than it was given")
            _ = (outcome.usage.description, outcome.usage.total)
            _ = price.cost(of: outcome.usage).dollars
        },
        seeds: {
            let samples: [(UInt8, String)] = [
                (0x00, #"{"id":"c1","model":"gpt-4o-mini","usage":{"prompt_tokens":12,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":2}}}"#),
                (0x60, "data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n"),
                (0x44, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude\",\"usage\":{\"input_tokens\":9,\"cache_read_input_tokens\":4}}}\n\nevent: content_block_delta\ndata: {\"delta\":{\"text\":\"Hello\"}}\n\nevent: message_delta\ndata: {\"usage\":{\"output_tokens\":7}}\n\nevent: message_stop\ndata: {}\n\n"),
                (0x04, #"{"model":"claude","usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":3}}"#),
                (0x46, "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":1,\"cachedContentTokenCount\":1},\"modelVersion\":\"gemini\"}]"),
                (0x45, #"{"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2}}"#),
                (0x4B, "event: response.output_text.delta\ndata: {\"delta\":\"Hi\"}\n\nevent: response.completed\ndata: {\"response\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":2,\"input_tokens_details\":{\"cached_tokens\":1}}}}\n\n"),
                (0x00, #"{"usage":{"prompt_tokens":-1,"completion_tokens":1e3,"prompt_cache_hit_tokens":2.0}}"#),
            ]
            return samples.map { [$0.0, 0] + Array($0.1.utf8) }
        }
    )

    /// A price with every kind of token priced differently, as dear as the dearest models.
    static let price = ModelPrice(input: TokenPrice(microsPerMillion: 15_000_000), output: TokenPrice(microsPerMillion: 75_000_000),
                                  cacheRead: TokenPrice(microsPerMillion: 1_500_000), cacheWrite: TokenPrice(microsPerMillion: 18_750_000))
}
