import Foundation
import GateMeshCore
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers

/// Answers as OpenAI, Anthropic or Google AI Studio would, chosen by the request path's ending,
/// so the mock can stand behind any provider prefix (`/v1/chat/completions`, `/openai/v1/…`).
struct MockResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let stats: MockStats
    let sequence = NIOLockedValueBox(0)

    enum Dialect {
        case openAIChat, openAICompletion, openAIEmbeddings, openAIModels, openAIModel(String)
        case anthropicMessages
        case google(model: String, stream: Bool)
        case googleEmbed(model: String, batch: Bool)
        case echo
    }

    static func dialect(method: HTTPRequest.Method, path: String) -> Dialect? {
        if path.hasPrefix("/echo") { return .echo }
        if path.hasSuffix("/chat/completions") { return .openAIChat }
        if path.hasSuffix("/completions") { return .openAICompletion }
        if path.hasSuffix("/embeddings") { return .openAIEmbeddings }
        if path.hasSuffix("/messages") { return .anthropicMessages }
        if path.hasSuffix("/models") && (method == .get || method == .head) { return .openAIModels }
        if let range = path.range(of: "/models/"), method == .get || method == .head, !path.contains(":") {
            return .openAIModel(String(path[range.upperBound...]))
        }
        if let colon = path.lastIndex(of: ":"), let slash = path[..<colon].lastIndex(of: "/") {
            let model = String(path[path.index(after: slash)..<colon])
            switch path[path.index(after: colon)...] {
            case "generateContent": return .google(model: model, stream: false)
            case "streamGenerateContent": return .google(model: model, stream: true)
            case "embedContent": return .googleEmbed(model: model, batch: false)
            case "batchEmbedContents": return .googleEmbed(model: model, batch: true)
            default: return nil
            }
        }
        return nil
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        if path.hasPrefix("/_mock/") { return control(path: path, method: request.method) }
        // `/_status/{code}/…`: always answer that status (a provider that keeps failing, for routes).
        if path.hasPrefix("/_status/"), let code = Int(path.dropFirst("/_status/".count).prefix { $0 != "/" }), (400...599).contains(code) {
            stats.update { $0.requests += 1 }
            var response = Self.json(code, MockFormats.openAIError(status: code, message: "mock provider configured to answer \(code)"))
            if code == 429 { response.headers[.retryAfter] = "1" }
            return response
        }
        stats.update { $0.requests += 1; $0.inFlight += 1 }
        defer { stats.update { $0.inFlight -= 1 } }

        guard let dialect = Self.dialect(method: request.method, path: path) else {
            return Self.json(404, MockFormats.openAIError(status: 404, message: "the mock provider has no route for \(request.method) \(path)"))
        }
        func error(_ status: Int, _ message: String) -> Response {
            switch dialect {
            case .anthropicMessages: return Self.json(status, MockFormats.anthropicError(status: status, message: message))
            case .google: return Self.json(status, MockFormats.googleError(status: status, message: message))
            default: return Self.json(status, MockFormats.openAIError(status: status, message: message))
            }
        }

        let controls: MockControls
        do {
            controls = try MockControls(headers: request.headers)
        } catch let e {
            return error(e.status, e.message)
        }
        var request = request
        let bodyBuffer = try await request.collectBody(upTo: 256 << 20)
        let bodyBytes = Data(buffer: bodyBuffer)

        if case .echo = dialect { return Self.echo(request: request, body: bodyBytes) }

        if controls.latencyMs > 0 { try await Task.sleep(for: .milliseconds(controls.latencyMs)) }
        if controls.hang {
            // Never answer; give up (and free the task) as soon as the client closes the connection.
            stats.update { $0.hangs += 1 }
            let body = request.body
            try await body.consumeWithCancellationOnInboundClose { _ in
                try await Task.sleep(for: .seconds(86_400))
            }
        }
        if let failFirst = controls.failFirst {
            let n = stats.countFailKey(controls.failKey)
            if n <= failFirst {
                var response = error(controls.status ?? 503, "mock failure \(n) of the first \(failFirst)")
                if let after = controls.retryAfter { response.headers[.retryAfter] = String(after) }
                return response
            }
        } else if let failAfter = controls.failAfter {
            if stats.countFailKey(controls.failKey) > failAfter {
                return error(controls.status ?? 500, "mock failure after \(failAfter) requests")
            }
        } else if let status = controls.status {
            var response = error(status, "mock error with status \(status)")
            if status == 429 { response.headers[.retryAfter] = String(controls.retryAfter ?? 1) }
            return response
        }

        var json = JSONValue.object(JSONObject())
        if request.method == .post {
            guard let parsed = JSONValue.parse(bodyBytes), case .object = parsed else {
                return error(400, "the request body is not a JSON object")
            }
            json = parsed
        }
        let n = sequence.withLockedValue { $0 += 1; return $0 }
        let created = Int(Date().timeIntervalSince1970)

        func output(model: String, id: String, maxTokens: Int?) -> MockFormats.Output {
            let wanted = controls.outputTokens ?? 16
            let count = maxTokens.map { min(max($0, 0), wanted) } ?? wanted
            let input = MockText.inputTokens(json)
            stats.update {
                $0.inputTokens += input
                $0.outputTokens += count
            }
            return MockFormats.Output(model: model, inputTokens: input, outputTokens: count,
                                      truncated: count < wanted, id: id, created: created)
        }
        /// The tool calls to answer with instead of text, when the request declares tools (nil: text).
        func toolCalls(_ format: MockTools.Format) throws(MockError) -> [MockToolCall]? {
            try MockTools.calls(format, json: json, body: bodyBytes, count: controls.toolCalls, sequence: n)
        }
        let stream = json["stream"]?.boolValue ?? false
        let includeUsage = json["stream_options"]?["include_usage"]?.boolValue ?? false
        let model = json["model"]?.stringValue ?? "mock-model"

        switch dialect {
        case .openAIChat:
            guard json["messages"]?.arrayValue != nil else { return error(400, "'messages' is required") }
            let maxTokens = json["max_completion_tokens"]?.intValue ?? json["max_tokens"]?.intValue
            let o = output(model: model, id: "chatcmpl-mock\(n)", maxTokens: maxTokens)
            let calls: [MockToolCall]?
            do { calls = try toolCalls(.openAI) } catch let e { return error(e.status, e.message) }
            if let calls {
                let t = MockFormats.toolOutput(o, calls: calls, text: nil)
                if stream { return streamed(MockFormats.openAIChatToolStream(t, calls: calls, includeUsage: includeUsage), controls: controls, sse: true, request: request) }
                return Self.json(200, MockFormats.openAIChatToolCalls(t, calls: calls))
            }
            if stream { return streamed(MockFormats.openAIChatStream(o, includeUsage: includeUsage), controls: controls, sse: true, request: request) }
            return Self.json(200, MockFormats.openAIChat(o))
        case .openAICompletion:
            guard json["prompt"] != nil else { return error(400, "'prompt' is required") }
            let o = output(model: model, id: "cmpl-mock\(n)", maxTokens: json["max_tokens"]?.intValue)
            if stream { return streamed(MockFormats.openAICompletionStream(o, includeUsage: includeUsage), controls: controls, sse: true, request: request) }
            return Self.json(200, MockFormats.openAICompletion(o))
        case .openAIEmbeddings:
            let inputs: [String]
            if let s = json["input"]?.stringValue {
                inputs = [s]
            } else if let a = json["input"]?.arrayValue, a.allSatisfy({ $0.stringValue != nil }) {
                inputs = a.compactMap(\.stringValue)
            } else {
                return error(400, "'input' must be a string or an array of strings")
            }
            let dimensions = min(max(json["dimensions"]?.intValue ?? 8, 1), 4096)
            return Self.json(200, MockFormats.openAIEmbeddings(model: model, inputs: inputs, dimensions: dimensions))
        case .googleEmbed(_, let batch):
            // ai.google.dev/api/embeddings: embedContent {content, outputDimensionality} → {embedding: {values}};
            // batchEmbedContents {requests: [EmbedContentRequest]} → {embeddings: [{values}]}.
            let requests = batch ? json["requests"]?.arrayValue : [json]
            guard let requests, !requests.isEmpty, requests.allSatisfy({ $0.objectValue != nil }) else {
                return error(400, "'requests' must be a non-empty array")
            }
            var vectors: [String] = []
            for r in requests {
                let parts = r["content"]?["parts"]?.arrayValue ?? []
                let text = parts.compactMap { $0["text"]?.stringValue }.joined(separator: " ")
                let dimensions = min(max(r["outputDimensionality"]?.intValue ?? 8, 1), 4096)
                let values = MockText.embedding(text, dimensions: dimensions).map { String(format: "%.6f", $0) }.joined(separator: ",")
                vectors.append("{\"values\":[\(values)]}")
            }
            return Self.json(200, batch ? "{\"embeddings\":[\(vectors.joined(separator: ","))]}" : "{\"embedding\":\(vectors[0])}")
        case .openAIModels:
            return Self.json(200, MockFormats.openAIModels())
        case .openAIModel(let id):
            return Self.json(200, MockFormats.openAIModel(id))
        case .anthropicMessages:
            guard json["messages"]?.arrayValue != nil else { return error(400, "messages: field required") }
            guard let maxTokens = json["max_tokens"]?.intValue else { return error(400, "max_tokens: field required") }
            let o = output(model: model, id: "msg_mock\(n)", maxTokens: maxTokens)
            let calls: [MockToolCall]?
            do { calls = try toolCalls(.anthropic) } catch let e { return error(e.status, e.message) }
            if let calls {
                let text = controls.toolText ? MockTools.preamble : nil
                let t = MockFormats.toolOutput(o, calls: calls, text: text)
                if stream { return streamed(MockFormats.anthropicToolStream(t, calls: calls, text: text), controls: controls, sse: true, request: request) }
                return Self.json(200, MockFormats.anthropicToolUse(t, calls: calls, text: text))
            }
            if stream { return streamed(MockFormats.anthropicStream(o), controls: controls, sse: true, request: request) }
            return Self.json(200, MockFormats.anthropicMessage(o))
        case .google(let model, let isStream):
            guard json["contents"]?.arrayValue != nil else { return error(400, "contents is required") }
            let maxTokens = json["generationConfig"]?["maxOutputTokens"]?.intValue
            let o = output(model: model, id: "mock-response-\(n)", maxTokens: maxTokens)
            let calls: [MockToolCall]?
            do { calls = try toolCalls(.google) } catch let e { return error(e.status, e.message) }
            if let calls {
                let t = MockFormats.toolOutput(o, calls: calls, text: nil)
                if isStream {
                    let sse = request.uri.queryParameters["alt"] == "sse"
                    return streamed(MockFormats.googleToolStream(t, calls: calls, sse: sse), controls: controls, sse: sse, request: request)
                }
                return Self.json(200, MockFormats.googleToolCalls(t, calls: calls))
            }
            if isStream {
                let sse = request.uri.queryParameters["alt"] == "sse"
                return streamed(MockFormats.googleStream(o, sse: sse), controls: controls, sse: sse, request: request)
            }
            return Self.json(200, MockFormats.googleGenerate(o))
        case .echo:
            return Self.echo(request: request, body: bodyBytes)
        }
    }

    /// A streamed response: the first event at once, each later one after the token delay. The
    /// client closing its connection is noticed at once (not at the next write), and counted.
    func streamed(_ events: MockStream, controls: MockControls, sse: Bool, request: Request) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = sse ? "text/event-stream; charset=utf-8" : "application/json; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        let stats = self.stats
        stats.update { $0.streamsStarted += 1 }
        let requestBody = request.body
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            do {
                try await requestBody.consumeWithCancellationOnInboundClose { _ in
                    // Without a token delay, events are written in batches of about 32 KiB so the
                    // mock is never the bottleneck; with one, each event is written on its own.
                    var pending = ByteBuffer()
                    for i in 0..<events.count {
                        if let drop = controls.dropAfter, i >= drop {
                            if pending.readableBytes > 0 { try await writer.write(pending) }
                            stats.update { $0.streamsDropped += 1 }
                            throw MockDrop()
                        }
                        if i > 0 && controls.tokenDelayMs > 0 { try await Task.sleep(for: .milliseconds(controls.tokenDelayMs)) }
                        pending.writeString(events.event(i))
                        if controls.tokenDelayMs > 0 || i == 0 || pending.readableBytes >= 32 * 1024 {
                            try await writer.write(pending)
                            pending = ByteBuffer()
                        }
                    }
                    if pending.readableBytes > 0 { try await writer.write(pending) }
                }
                try await writer.finish(nil)
                stats.update { $0.streamsCompleted += 1 }
            } catch is MockDrop {
                throw MockDrop()
            } catch {
                stats.update { $0.streamsAborted += 1 }
                throw error
            }
        })
    }

    struct MockDrop: Error {}

    func control(path: String, method: HTTPRequest.Method) -> Response {
        switch path {
        case "/_mock/stats": return Self.json(200, stats.json)
        case "/_mock/reset":
            stats.reset()
            return Self.json(200, stats.json)
        case "/_mock/healthz": return Self.json(200, "{\"status\":\"ok\"}")
        default: return Self.json(404, MockFormats.openAIError(status: 404, message: "unknown mock control \(path)"))
        }
    }

    static func json(_ status: Int, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// Returns what arrived, so tests can check that the gateway forwarded it untouched.
    static func echo(request: Request, body: Data) -> Response {
        // Keys in sorted order, as they always were.
        let object = JSONValue.object([
            "body": .string(String(decoding: body, as: UTF8.self)),
            "body_bytes": .int(body.count),
            "headers": .array(request.headers.map { .array([.string($0.name.canonicalName), .string($0.value)]) }),
            "method": .string(request.method.rawValue),
            "path": .string(request.uri.path),
            "query": .string(request.uri.query ?? ""),
        ])
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        return Response(status: .ok, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: object.bytes)))
    }
}
