import Foundation
import GateMeshCore

/// What the gateway reads from a provider request before forwarding it: enough to price it,
/// estimate it, and ask for usage on streams.
public struct RequestFacts: Sendable, Equatable {
    /// The model the client asked for, from the body or (Google) the path.
    public var model: String?
    public var stream: Bool
    /// True when the client itself set `stream_options.include_usage`.
    public var clientAskedForUsage: Bool
    /// A rough input size (characters / 4) for when the provider never reports usage.
    public var estimatedInputTokens: Int
    /// The output cap the request sets (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
    /// `generationConfig.maxOutputTokens`).
    public var maxOutputTokens: Int?
    /// The end user the body names (OpenAI's `user`), at most 256 bytes.
    public var user: String?

    public init(model: String? = nil, stream: Bool = false, clientAskedForUsage: Bool = false,
                estimatedInputTokens: Int = 0, maxOutputTokens: Int? = nil) {
        self.model = model
        self.stream = stream
        self.clientAskedForUsage = clientAskedForUsage
        self.estimatedInputTokens = estimatedInputTokens
        self.maxOutputTokens = maxOutputTokens
    }
}
