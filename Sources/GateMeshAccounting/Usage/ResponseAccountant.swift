import GateMeshCore

/// Watches a provider's response go by and says, at its end, how many tokens it used.
///
/// Contract: give it every response byte in order (`process`), then call `finish` once. It never
/// holds bytes back except in `stripsInjectedUsage` mode, where the gateway asked an OpenAI-format
/// stream for usage on the client's behalf: there it removes what that request added (the
/// `"usage":null` field of every chunk and the final usage-only chunk) so the client sees what it
/// would have seen without the gateway, and so holds at most one incomplete event. Most events
/// are only byte-scanned; JSON is parsed for the few that carry usage, and only at `finish`.
public struct ResponseAccountant: Sendable {
    /// What the response says it used.
    public struct Outcome: Sendable, Equatable {
        public var usage: TokenUsage
        /// The model the provider says served the request, when it says.
        public var servedModel: String?
        /// False when the provider reported no usage at all (every figure is the gateway's estimate).
        public var reported: Bool
    }

    enum Mode { case sse, jsonArray, whole }

    public let format: APIFormat
    public let stripsInjectedUsage: Bool
    let request: RequestFacts
    let mode: Mode
    let maxWholeBodyBytes: Int

    private var sse: SSEScanner
    private var array = JSONArrayScanner()
    private var body: [UInt8] = []
    private var bodyOverflow = false

    // What the stream has shown so far
    private var usageEvent: [UInt8]?         // the last event that carried usage (OpenAI, Google)
    private var anthropicStart: [UInt8]?
    private var anthropicDelta: [UInt8]?
    private var responsesFinal: [UInt8]?
    private var servedModel: String?
    private var outputCharacters = 0
    private var sawEnd = false

    /// `contentType` is the response's; `stripsInjectedUsage` MUST be set only when the gateway
    /// added `stream_options.include_usage` to an OpenAI-format request.
    public init(format: APIFormat, contentType: String?, request: RequestFacts, stripsInjectedUsage: Bool,
                maxWholeBodyBytes: Int = 8 << 20) {
        self.format = format
        self.request = request
        self.maxWholeBodyBytes = maxWholeBodyBytes
        let isEventStream = contentType?.lowercased().hasPrefix("text/event-stream") ?? false
        if isEventStream {
            mode = .sse
        } else if format == .googleStream {
            mode = .jsonArray
        } else {
            mode = .whole
        }
        self.stripsInjectedUsage = stripsInjectedUsage && isEventStream
        self.sse = SSEScanner(keepsRaw: self.stripsInjectedUsage)
        switch format {
        case .anthropicMessages: textKeys = Self.anthropicTextKeys
        case .openAIResponses: textKeys = Self.responsesTextKeys
        case .googleGenerate, .googleStream: textKeys = Self.googleTextKeys
        default: textKeys = Self.openAITextKeys
        }
    }

    /// The JSON keys whose string values are generated text, for this format.
    let textKeys: [[UInt8]]

    static let openAITextKeys: [[UInt8]] = ["\"content\":\"", "\"text\":\"", "\"arguments\":\""].map { Array($0.utf8) }
    static let anthropicTextKeys: [[UInt8]] = ["\"text\":\"", "\"partial_json\":\"", "\"thinking\":\""].map { Array($0.utf8) }
    static let responsesTextKeys: [[UInt8]] = ["\"delta\":\""].map { Array($0.utf8) }
    static let googleTextKeys: [[UInt8]] = ["\"text\":\"", "\"text\": \""].map { Array($0.utf8) }
    static let usageObject = Array("\"usage\":{".utf8)
    static let usageObjectSpaced = Array("\"usage\": {".utf8)
    static let usageMetadata = Array("\"usageMetadata\"".utf8)
    static let emptyChoices = Array("\"choices\":[]".utf8)
    static let emptyChoicesSpaced = Array("\"choices\": []".utf8)
    static let nullUsage: [[UInt8]] = [",\"usage\":null", ", \"usage\": null", "\"usage\":null,", "\"usage\": null, "].map { Array($0.utf8) }
    static let modelKey = Array("\"model\":\"".utf8)
    static let modelKeySpaced = Array("\"model\": \"".utf8)
    static let modelVersionKey = Array("\"modelVersion\":\"".utf8)
    static let modelVersionKeySpaced = Array("\"modelVersion\": \"".utf8)
    static let done = Array("[DONE]".utf8)
    static let finishReason = Array("\"finishReason\"".utf8)

    /// Looks at the next bytes. Returns nil when they are to be forwarded unchanged, or the bytes
    /// to forward instead (strip mode only; possibly empty while an event is incomplete).
    public mutating func process(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        switch mode {
        case .whole:
            if !bodyOverflow {
                if body.count + bytes.count <= maxWholeBodyBytes { body.append(contentsOf: bytes) } else { bodyOverflow = true }
            }
            return nil
        case .jsonArray:
            var elements: [[UInt8]] = []
            array.feed(bytes) { elements.append($0) }
            for element in elements { onGoogleElement(element) }
            return nil
        case .sse:
            var events: [SSEScanner.Event] = []
            sse.feed(bytes) { events.append($0) }
            if !stripsInjectedUsage {
                for event in events { onEvent(event) }
                return nil
            }
            var out: [UInt8] = []
            for event in events where onEvent(event) {
                out.append(contentsOf: ByteSearch.removing(Self.nullUsage, from: event.raw))
            }
            return out
        }
    }

    /// Ends the response. `completed` is false when the stream broke or the client left early.
    /// Returns the bytes still to forward (strip mode) and the outcome.
    public mutating func finish(completed: Bool) -> (tail: [UInt8], outcome: Outcome) {
        var tail: [UInt8] = []
        if mode == .sse {
            var events: [SSEScanner.Event] = []
            sse.finish { events.append($0) }
            for event in events where onEvent(event) && stripsInjectedUsage {
                tail.append(contentsOf: ByteSearch.removing(Self.nullUsage, from: event.raw))
            }
            if stripsInjectedUsage { tail.append(contentsOf: sse.takeUnterminated()) }
        }
        return (tail, outcome(completed: completed))
    }

    // MARK: - Events

    /// Notes what an event says; returns false when strip mode must drop it.
    @discardableResult
    private mutating func onEvent(_ event: SSEScanner.Event) -> Bool {
        let data = event.data
        guard !data.isEmpty else { return true }
        if servedModel == nil { servedModel = Self.model(in: data) }
        switch format {
        case .openAIChat, .openAICompletions, .openAIEmbeddings:
            if data.elementsEqual(Self.done) {
                sawEnd = true
                return true
            }
            if ByteSearch.contains(Self.usageObject, in: data) || ByteSearch.contains(Self.usageObjectSpaced, in: data) {
                usageEvent = data
                if stripsInjectedUsage,
                   ByteSearch.contains(Self.emptyChoices, in: data) || ByteSearch.contains(Self.emptyChoicesSpaced, in: data) {
                    return false
                }
            }
            outputCharacters += ByteSearch.stringValueLengths(after: textKeys, in: data)
        case .openAIResponses:
            let name = event.name ?? ""
            if name == "response.completed" || name == "response.incomplete" || name == "response.failed" {
                responsesFinal = data
                sawEnd = true
            } else if name.hasSuffix(".delta") {
                outputCharacters += ByteSearch.stringValueLengths(after: textKeys, in: data)
            }
        case .anthropicMessages:
            switch event.name {
            case "message_start": anthropicStart = data
            case "message_delta": anthropicDelta = data
            case "message_stop": sawEnd = true
            case "content_block_delta": outputCharacters += ByteSearch.stringValueLengths(after: textKeys, in: data)
            default: break
            }
        case .googleGenerate, .googleStream:
            onGoogleElement(data)
        case .other:
            break
        }
        return true
    }

    private mutating func onGoogleElement(_ element: [UInt8]) {
        if servedModel == nil { servedModel = Self.model(in: element) }
        if ByteSearch.contains(Self.usageMetadata, in: element) { usageEvent = element }
        if ByteSearch.contains(Self.finishReason, in: element) { sawEnd = true }
        outputCharacters += ByteSearch.stringValueLengths(after: textKeys, in: element)
    }

    static func model(in bytes: [UInt8]) -> String? {
        ByteSearch.stringValue(after: modelKey, in: bytes) ?? ByteSearch.stringValue(after: modelKeySpaced, in: bytes)
            ?? ByteSearch.stringValue(after: modelVersionKey, in: bytes) ?? ByteSearch.stringValue(after: modelVersionKeySpaced, in: bytes)
    }

    // MARK: - The outcome

    private func outcome(completed: Bool) -> Outcome {
        var reported: TokenUsage?
        var model = servedModel
        switch mode {
        case .whole:
            if let object = bodyOverflow ? nil : UsageJSON.object(body) {
                model = object.string("model") ?? object.string("modelVersion") ?? model
                reported = Self.usage(fromWhole: object, format: format)
            }
        case .sse, .jsonArray:
            reported = streamedUsage()
        }
        // A stream whose end marker came is whole even if its transfer was cut after it (a client
        // that left as soon as it had the marker); a whole body must have arrived in full.
        let expected = mode == .whole ? completed : sawEnd
        let estimatedOutput = (outputCharacters + 3) / 4
        if var usage = reported {
            if !expected {
                // The provider's own figures stop where the stream stopped; what was generated may be more.
                usage.output = max(usage.output, estimatedOutput)
                usage.estimated = true
            }
            return Outcome(usage: usage, servedModel: model, reported: true)
        }
        if format == .other { return Outcome(usage: .zero, servedModel: model, reported: false) }
        let estimate = TokenUsage(input: request.estimatedInputTokens, output: estimatedOutput, estimated: true)
        return Outcome(usage: estimate, servedModel: model, reported: false)
    }

    static func usage(fromWhole object: JSONObjectView, format: APIFormat) -> TokenUsage? {
        switch format {
        case .openAIChat, .openAICompletions, .openAIEmbeddings, .openAIResponses:
            return object.object("usage").flatMap(UsageJSON.openAI)
        case .anthropicMessages:
            guard let usage = object.object("usage") else { return nil }
            var u = TokenUsage()
            UsageJSON.anthropic(usage, into: &u)
            return u
        case .googleGenerate, .googleStream:
            return object.object("usageMetadata").flatMap(UsageJSON.google)
        case .other:
            return nil
        }
    }

    private func streamedUsage() -> TokenUsage? {
        switch format {
        case .openAIChat, .openAICompletions, .openAIEmbeddings:
            guard let event = usageEvent, let object = UsageJSON.object(event) else { return nil }
            let usage = object.object("usage") ?? object.object("x_groq")?.object("usage")
            return usage.flatMap(UsageJSON.openAI)
        case .openAIResponses:
            guard let event = responsesFinal, let object = UsageJSON.object(event),
                  let usage = object.object("response")?.object("usage") else { return nil }
            return UsageJSON.openAI(usage)
        case .anthropicMessages:
            guard let start = anthropicStart.flatMap({ UsageJSON.object($0) }),
                  let initial = start.object("message")?.object("usage") else { return nil }
            var u = TokenUsage()
            UsageJSON.anthropic(initial, into: &u)
            if let delta = anthropicDelta.flatMap({ UsageJSON.object($0) }), let usage = delta.object("usage") {
                UsageJSON.anthropic(usage, into: &u)
            }
            return u
        case .googleGenerate, .googleStream:
            guard let event = usageEvent, let object = UsageJSON.object(event),
                  let meta = object.object("usageMetadata") else { return nil }
            return UsageJSON.google(meta)
        case .other:
            return nil
        }
    }
}
