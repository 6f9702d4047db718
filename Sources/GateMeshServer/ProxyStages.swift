import GateMeshAccounting
import GateMeshCache
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// The stages of one passthrough request, in the order `forward` runs them. Each reads what the
/// stages before it decided in the `ProxyCall` and adds its own; a stage ends the request by
/// answering (a cache hit) or by throwing a `GatewayError` (a refusal, an upstream failure).
extension ProxyHandler {
    func forward(_ call: inout ProxyCall) async throws -> Response {
        try await readBody(&call)
        try Self.checkModelAllowed(call, model: call.facts.model)
        if let hit = try await lookUpCache(&call) { return hit }
        try await admit(&call)
        if let status = call.cacheStatus {
            call.exchange.setCacheStatus(status)
            cache?.count(status)
        }
        askForUsage(&call)
        let (transfer, head, attempts) = try await send(call)
        if call.fallsThrough, head.status >= 400 {
            transfer.cancel()
            throw GatewayError(status: head.status, type: "upstream_error", code: "step_failed",
                               message: "\(call.provider.spec.id) answered \(head.status); the universal endpoint tries the next step")
        }
        return relay(call, transfer: transfer, head: answerHead(call, head, attempts: attempts))
    }

    /// The body: none, whole, or streamed. A client's body of known size up to `inlineBodyLimit`
    /// is read whole, for the facts that price it (model, tokens, stream) and the cache key; a
    /// body an endpoint made is whole already.
    func readBody(_ call: inout ProxyCall) async throws {
        let maxBody = config.limits.maxBodyBytes
        switch call.input.body {
        case .made(let bytes):
            guard bytes.count <= maxBody else { throw GatewayError.payloadTooLarge(limit: maxBody) }
            call.body = bytes.isEmpty ? .none : .bytes(ByteBuffer(bytes: bytes))
            readFacts(&call, bytes)
        case .client(var request):
            let declaredLength = try Self.contentLength(request.headers)
            if let declaredLength, declaredLength > maxBody { throw GatewayError.payloadTooLarge(limit: maxBody) }
            let hasBody = declaredLength.map { $0 > 0 } ?? (request.headers[.transferEncoding] != nil)
            if !hasBody {
                call.body = .none
                call.clientBytes = []
            } else if let declaredLength, declaredLength <= Self.inlineBodyLimit {
                let buffer = try await Self.collect(&request, limit: maxBody)
                // The collected request keeps the connection's own body, to watch for the client leaving.
                call.input.body = .client(request)
                call.body = .bytes(buffer)
                readFacts(&call, Array(buffer.readableBytesView))
            } else {
                call.body = .streamed(length: declaredLength)
                call.streamUpload = true
            }
        }
    }

    /// A body read whole: logged when payloads are, and read for its facts in a format the
    /// gateway knows.
    private func readFacts(_ call: inout ProxyCall, _ bytes: [UInt8]) {
        call.clientBytes = bytes
        guard !bytes.isEmpty else { return }
        if call.collectPayload { call.exchange.setRequestBody(Array(bytes.prefix(config.logging.maxPayloadBytes))) }
        if call.format != .other {
            call.facts = RequestInspector.inspect(format: call.format, path: Substring(call.target.url), body: bytes)
            call.exchange.setRequestedModel(call.facts.model)
            call.exchange.nameUser(call.facts.user)
        }
    }

    /// A virtual key may be limited to some models: a 403 for another (`because` says how the
    /// request came to that model, when not by asking for it).
    static func checkModelAllowed(_ call: ProxyCall, model: String?, because: String? = nil) throws(GatewayError) {
        guard let caller = call.caller,
              let denial = KeyDirectory.denial(caller, gateway: call.gateway.id, provider: call.provider.spec.id, model: model) else { return }
        throw GatewayError(status: 403, type: "permission_error", code: "model_not_allowed",
                           message: because.map { "\($0), but \(denial)" } ?? denial)
    }

    /// The cache: answers from it (the hit's response), or sets the call up to wait for an
    /// identical request already fetching, or to fetch and record the answer for the next ones.
    func lookUpCache(_ call: inout ProxyCall) async throws -> Response? {
        guard let cache else { return nil }
        let headers = call.input.headers
        let directives = call.controls.cache
        let decision = CacheDecision.decide(gatewayTTL: call.gateway.cacheTTLSeconds, directives: directives,
                                            method: call.input.method.rawValue, bodyKnown: call.clientBytes != nil)
        let ttl: Int
        switch decision {
        case .off:
            return nil
        case .bypass:
            call.cacheStatus = "BYPASS"
            return nil
        case .lookup(let seconds), .refresh(let seconds):
            ttl = seconds
        }
        let pairs = headers.lowercasedPairs
        let gateway = call.gateway.id, provider = call.provider
        // Requests with virtual keys share answers within their team only.
        let credential = call.caller.map { "team:" + $0.team.id } ?? Self.credentialDigest(headers: pairs, url: call.target.url, provider: provider)
        let material = directives.customKey.map { CacheKeyMaterial.custom(gateway: gateway, key: $0, credential: credential) }
            ?? CacheKeyMaterial.make(gateway: gateway, provider: provider.spec.id, method: call.input.method.rawValue,
                                     path: Self.cacheURL(call.target.url, provider: provider), headers: pairs,
                                     body: call.clientBytes ?? [], credential: credential)
        let key = ResponseCache.key(material)
        let owner = cache.owner(of: key)
        var ticket: CacheFlight.Ticket?
        if case .lookup = decision {
            switch await owner.acquire(key, now: ResponseCache.now()) {
            case .hit(let hit):
                return try await serveHit(hit, key: key, call: call)
            case .fetch(let t):
                ticket = t
            }
        }
        call.cacheStatus = "MISS"
        call.cacheRecorder = CacheRecorder(key: key, owner: owner, ticket: ticket, ttlSeconds: ttl, gateway: gateway,
                                           provider: provider.spec.id, maxBytes: cache.config.maxEntryBytes)
        return nil
    }

    /// The limits: reserves the request's estimate under every matching rule, or refuses it. A
    /// budget that downgrades swaps the model in the body (and the answer is then not cached
    /// under the original request's key).
    func admit(_ call: inout ProxyCall) async throws {
        guard let limits, !limits.isEmpty else { return }
        // A body read whole prices the estimate; otherwise (no body, an unread format, or one too
        // large to read whole) the request still counts against request limits and settles its
        // actual cost.
        let readable = call.clientBytes.map { !$0.isEmpty } == true && call.format != .other
        guard let downgrade = try await reserve(limits, call, body: readable ? call.clientBytes : nil) else { return }
        // The cheaper model must be one the key may use too.
        try Self.checkModelAllowed(call, model: downgrade.model,
                                   because: "budget '\(downgrade.rule)' would downgrade this request to \(downgrade.model)")
        call.facts.model = downgrade.model
        call.downgradedBy = downgrade.rule
        call.clientBytes = downgrade.body
        call.body = .bytes(ByteBuffer(bytes: downgrade.body))
        if let recorder = call.cacheRecorder {
            recorder.abandon()
            call.cacheRecorder = nil
            call.cacheStatus = "BYPASS"
        }
    }

    /// An OpenAI-format stream that did not ask for its usage is asked for it (the answer then
    /// hides it again), so that it can be priced.
    func askForUsage(_ call: inout ProxyCall) {
        guard let bytes = call.clientBytes, !bytes.isEmpty, call.facts.stream, !call.facts.clientAskedForUsage,
              call.provider.spec.acceptsStreamUsageOption, call.format == .openAIChat || call.format == .openAICompletions,
              let amended = RequestInspector.addingUsageRequest(to: bytes) else { return }
        call.body = .bytes(ByteBuffer(bytes: amended))
        call.injectsUsage = true
    }

    /// Sends the request to the provider until an answer is final: a failure to connect or an
    /// answer the retry policy retries (429, 5xx) is tried again after its delay. Returns the
    /// transfer with the final answer's head, and the attempts made.
    func send(_ call: ProxyCall) async throws -> (UpstreamTransfer, UpstreamResponseHead, Int) {
        let maxBody = config.limits.maxBodyBytes
        let provider = call.provider.spec.id
        let upstreamRequest = UpstreamRequest(
            method: call.input.method.rawValue, url: call.target.url,
            headers: call.target.headers.map { ($0.name, $0.value) }, body: call.body, timeouts: call.timeouts)
        // A body that streams up unread cannot be sent twice: one attempt only.
        let policy = call.streamUpload ? RetryPolicy(maxAttempts: 1) : call.retries
        // Only the client's own body streams up, with the flags its upload sets: past the body
        // limit, or broken off (the client closed its connection mid-body: a 499, not a 502).
        var upload: (body: RequestBody, overLimit: NIOLockedValueBox<Bool>, broke: NIOLockedValueBox<Bool>)?
        if call.streamUpload, case .client(let request) = call.input.body {
            upload = (request.body, NIOLockedValueBox(false), NIOLockedValueBox(false))
        }
        var attempt = 1
        // A traced request's attempts become child spans (wall-clock times, as spans carry).
        func note(since start: Int64, status: Int?, error: String?) {
            guard call.traced else { return }
            call.exchange.noteAttempt(UpstreamAttempt(startedAtMs: start, endedAtMs: WallClock.nowMs(),
                                                      status: status, error: error))
        }
        while true {
            let attemptStart = call.traced ? WallClock.nowMs() : 0
            let transfer = client.start(upstreamRequest)
            let uploadTask = upload.map { Self.upload($0.body, to: transfer, limit: maxBody, overLimit: $0.overLimit, broke: $0.broke) }
            let head: UpstreamResponseHead
            do {
                head = try await transfer.responseHead()
            } catch let error as UpstreamError {
                // The upload task sets overLimit before it cancels the transfer, so no need to wait for it.
                uploadTask?.cancel()
                if upload?.overLimit.withLockedValue({ $0 }) == true { throw GatewayError.payloadTooLarge(limit: maxBody) }
                if upload?.broke.withLockedValue({ $0 }) == true { throw GatewayError.clientClosedRequest() }
                if error == .cancelled, Task.isCancelled { throw CancellationError() }
                note(since: attemptStart, status: nil, error: "\(error)")
                if error != .cancelled, error != .shutdown, let wait = policy.delay(beforeAttempt: attempt + 1, random: .random(in: 0..<1)) {
                    logger.info("upstream failed; retrying", metadata: ["provider": "\(provider)", "error": "\(error)",
                                                                       "attempt": "\(attempt)", "delay_ms": "\(wait)"])
                    try await Task.sleep(for: .milliseconds(wait))
                    attempt += 1
                    continue
                }
                call.exchange.setAttempts(attempt)
                logger.warning("upstream failed", metadata: ["provider": "\(provider)", "error": "\(error)", "attempts": "\(attempt)"])
                var failure = ErrorResponse.gatewayError(for: error, provider: provider)
                failure.headers.append(("x-gatemesh-attempts", String(attempt)))
                throw failure
            }
            if RetryPolicy.isRetryable(status: head.status) {
                // Retry-After counts on a 429 and on a 503 alike (RFC 9110 allows it on both).
                let retryAfter = RetryPolicy.retryAfterMs(head.headers.first { $0.name == "retry-after" }?.value)
                if let wait = policy.delay(beforeAttempt: attempt + 1, retryAfterMs: retryAfter, random: .random(in: 0..<1)) {
                    transfer.cancel()
                    note(since: attemptStart, status: head.status, error: "answered \(head.status); retried")
                    logger.info("upstream answered \(head.status); retrying", metadata: ["provider": "\(provider)",
                                                                                        "attempt": "\(attempt)", "delay_ms": "\(wait)"])
                    try await Task.sleep(for: .milliseconds(wait))
                    attempt += 1
                    continue
                }
            }
            note(since: attemptStart, status: head.status, error: nil)
            call.exchange.setAttempts(attempt)
            return (transfer, head, attempt)
        }
    }

    /// Streams the client's body up to `transfer` as it arrives; past `limit` bytes it sets
    /// `overLimit` and cancels the transfer, and a client that breaks off sets `broke`.
    static func upload(_ body: RequestBody, to transfer: UpstreamTransfer, limit: Int, overLimit: NIOLockedValueBox<Bool>,
                       broke: NIOLockedValueBox<Bool>) -> Task<Void, Never> {
        Task {
            var total = 0
            do {
                for try await chunk in body {
                    total += chunk.readableBytes
                    if total > limit {
                        overLimit.withLockedValue { $0 = true }
                        transfer.cancel()
                        return
                    }
                    try await transfer.writeBody(chunk)
                }
                transfer.finishBody()
            } catch {
                if !Task.isCancelled { broke.withLockedValue { $0 = true } }
                transfer.cancel()
            }
        }
    }

    /// The head of the client's answer (`answerHead`).
    struct AnswerHead {
        var status: Int
        var fields: HTTPFields
        /// Nil sends the body chunked.
        var contentLength: Int?
        var isEventStream: Bool
    }

    /// The client's answer head: the provider's headers a client may see and the gateway's own.
    /// Starts the log's and the cache's record of the answer.
    func answerHead(_ call: ProxyCall, _ head: UpstreamResponseHead, attempts: Int) -> AnswerHead {
        var headers = HTTPFields()
        headers.reserveCapacity(head.headers.count + 4)
        var contentLength: Int?
        var contentType: String?
        var encoded = false
        for (name, value) in head.headers {
            if name == "content-length" { contentLength = Int(value) }
            if name == "content-type" { contentType = value }
            if name == "content-encoding", value.lowercased() != "identity" { encoded = true }
        }
        // curl decoded a compressed body, so its length is no longer the provider's.
        if encoded { contentLength = nil }
        let isEventStream = contentType?.lowercased().hasPrefix("text/event-stream") ?? false
        let passed = HeaderPolicy.clientResponseHeaders(head.headers)
        for (name, value) in passed {
            if let field = HTTPField.Name(name) { headers.append(HTTPField(name: field, value: value)) }
        }
        headers.append(HTTPField(name: Self.providerHeader, value: call.provider.spec.id))
        if let downgradedBy = call.downgradedBy {
            headers.append(HTTPField(name: Self.downgradedHeader, value: downgradedBy))
            if let model = call.facts.model { headers.append(HTTPField(name: Self.modelHeader, value: model)) }
        }
        if call.logged { headers.append(HTTPField(name: Self.logIDHeader, value: call.exchange.logID)) }
        if let eventID = call.eventID { headers.append(HTTPField(name: Self.eventIDResponseHeader, value: eventID)) }
        if let cacheStatus = call.cacheStatus { headers.append(HTTPField(name: Self.cacheStatusHeader, value: cacheStatus)) }
        headers.append(HTTPField(name: Self.attemptsHeader, value: String(attempts)))
        if let key = call.cacheRecorder?.key { headers.append(HTTPField(name: Self.cacheKeyHeader, value: key)) }
        call.cacheRecorder?.start(status: head.status, headers: CachedResponse.storable(passed), streamed: isEventStream)
        let isHead = call.input.method == .head
        if isHead, let contentLength {
            // A HEAD answer has no body but says how long the GET body would be.
            headers.append(HTTPField(name: .contentLength, value: String(contentLength)))
        }
        if isHead || head.status == 204 || head.status == 304 { contentLength = nil }
        call.exchange.responseStarted(status: head.status, contentType: contentType, format: head.status < 300 ? call.format : .other,
                                      facts: call.facts, stripsInjectedUsage: call.injectsUsage)
        // Stripping the injected usage changes the length; the body is then sent chunked.
        if call.injectsUsage { contentLength = nil }
        return AnswerHead(status: head.status, fields: headers, contentLength: contentLength, isEventStream: isEventStream)
    }

    /// Relays the provider's answer to the client chunk by chunk, through the exchange (usage,
    /// cost, the injected usage hidden) and the cache's recorder; a client that goes away cancels
    /// the transfer. The exchange is finished, and the answer stored, once the body has ended.
    func relay(_ call: ProxyCall, transfer: UpstreamTransfer, head: AnswerHead) -> Response {
        // Watching for the client closing its connection needs the request body consumed first,
        // which it is unless it is still streaming up. A request an endpoint made (a universal
        // step, a route target, a translated request) watches the client's own body.
        let watched = call.input.watchedBody
        let watchClose = head.isEventStream && !call.streamUpload && watched != nil
        var fields = head.fields
        // Watching takes the connection's inbound side, so the server closes the connection when
        // this answer ends: say so, or a client reusing it would send its next request into a
        // connection about to close (and see it fail).
        if watchClose { fields.append(HTTPField(name: .connection, value: "close")) }
        let lease = TransferLease(transfer, exchange: call.exchange)
        let recorder = call.cacheRecorder
        let servedModel = call.facts.model
        let logger = self.logger
        let responseBody = ResponseBody(contentLength: head.contentLength) { writer in
            var completed = false
            defer {
                if !completed {
                    lease.abandon()
                    recorder?.abandon()
                }
            }
            let pump: (inout any ResponseBodyWriter) async throws -> Void = { writer in
                while let chunk = try await lease.transfer.nextChunk() {
                    if let replaced = lease.exchange.observe(chunk) {
                        if replaced.readableBytes > 0 {
                            recorder?.append(replaced)
                            try await writer.write(replaced)
                        }
                    } else {
                        recorder?.append(chunk)
                        try await writer.write(chunk)
                    }
                }
                if let tail = lease.exchange.tail() {
                    recorder?.append(tail)
                    try await writer.write(tail)
                }
            }
            if watchClose, let watched {
                try await watched.consumeWithInboundCloseHandler { _ in
                    try await pump(&writer)
                } onInboundClosed: {
                    logger.debug("client closed its connection mid-stream; cancelling the upstream transfer")
                    lease.transfer.cancel()
                }
            } else {
                try await pump(&writer)
            }
            completed = true
            try await Self.end(&writer) {
                lease.exchange.finish(completed: true)
                recorder?.finish(costNanos: lease.exchange.costNanos, model: lease.exchange.servedModel ?? servedModel)
            }
        }
        return Response(status: .init(code: head.status), headers: fields, body: responseBody)
    }
}
