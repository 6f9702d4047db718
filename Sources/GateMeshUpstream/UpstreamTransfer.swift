import CGateMeshCurl
import NIOConcurrencyHelpers
import NIOCore

/// What receives a transfer's answer on an event loop (`UpstreamClient.start(_:on:sink:)`):
/// every call comes on that loop, in order, head first (unless the transfer failed before one),
/// then the body's chunks, then the end; `upstreamDelivered` closes each batch of calls (one
/// `execute` on the loop carries every event the driver saw for the loop's transfers in one pass).
/// Chunks count against the transfer's buffer until the sink gives them back with
/// `UpstreamTransfer.release(_:)`, so a sink that cannot write pauses the provider.
public protocol UpstreamSink: AnyObject {
    func upstreamHead(_ head: UpstreamResponseHead)
    func upstreamBody(_ chunk: ByteBuffer)
    /// The end: nil for a clean one.
    func upstreamEnd(_ error: UpstreamError?)
    /// The end of one batch of calls: the moment to flush what was written.
    func upstreamDelivered()
}

/// One exchange with a provider, bridging a libcurl easy handle to async Swift, or to an event
/// loop (`UpstreamSink`).
///
/// Contract: the curl driver thread calls the `driver…` methods; any task may call the public ones.
/// The response body is delivered through `nextChunk()` with back-pressure: once `highWater` bytes
/// wait unread, the transfer is paused (curl stops reading the socket) until the reader has taken
/// it down to `lowWater`. A streamed request body is fed through `writeBody`, which suspends while
/// more than `highWater` bytes wait to be sent. `cancel()` ends the transfer at once and closes
/// its connection.
public final class UpstreamTransfer: @unchecked Sendable {
    let request: UpstreamRequest
    let highWater: Int
    let lowWater: Int
    private let driver: CurlDriver
    private let lock = NIOLock()
    private var state = State()
    /// Set when the answer goes to a sink on an event loop rather than to awaiting tasks.
    let delivery: (loop: any EventLoop, sink: NIOLoopBound<any UpstreamSink>)?

    // MARK: Driver-thread-only state
    var easy: UnsafeMutableRawPointer?
    /// The request's header lines and error buffer (`RequestBlock`), freed when the transfer ends.
    var requestBlock: UnsafeMutableRawPointer?
    /// Inside `requestBlock`.
    var errorBuffer: UnsafeMutablePointer<CChar>?
    var firstByteDeadline: UInt64 = 0
    var headDelivered = false
    /// Room for a typical answer's fields from the first one on.
    private var parsingHeaders: [(name: String, value: String)] = { var a = [(name: String, value: String)](); a.reserveCapacity(16); return a }()
    private var parsingStatus = 0
    private var parsingVersion = "1.1"

    private struct State {
        var head: Result<UpstreamResponseHead, UpstreamError>?
        var headWaiter: CheckedContinuation<UpstreamResponseHead, any Error>?
        var chunks = CircularBuffer<ByteBuffer>(initialCapacity: 4)
        var bufferedBytes = 0
        var receivePaused = false
        var bodyWaiter: CheckedContinuation<ByteBuffer?, any Error>?
        var finished = false
        var failure: UpstreamError?
        var cancelled = false
        // upload
        var uploadChunks = CircularBuffer<ByteBuffer>(initialCapacity: 2)
        var uploadBytes = 0
        var uploadFinished = false
        var sendPaused = false
        var uploadWaiter: CheckedContinuation<Void, any Error>?
        // delivery to a sink
        var flushScheduled = false
        var headHanded = false
        var endHanded = false
    }

    init(request: UpstreamRequest, driver: CurlDriver, bufferBytes: Int,
         delivery: (loop: any EventLoop, sink: NIOLoopBound<any UpstreamSink>)? = nil) {
        self.request = request
        self.driver = driver
        self.delivery = delivery
        self.highWater = bufferBytes
        self.lowWater = bufferBytes / 4
        switch request.body {
        case .none:
            state.uploadFinished = true
        case .bytes(let buffer):
            if buffer.readableBytes > 0 { state.uploadChunks.append(buffer) }
            state.uploadBytes = buffer.readableBytes
            state.uploadFinished = true
            rewindable = buffer
        case .streamed:
            break
        }
    }

    // MARK: - Public API

    /// Waits for the response head. Throws `UpstreamError` when the provider cannot be reached,
    /// times out before the head, or the transfer is cancelled.
    public func responseHead() async throws -> UpstreamResponseHead {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<UpstreamResponseHead, any Error>) in
                let ready: Result<UpstreamResponseHead, UpstreamError>? = lock.withLock {
                    if let head = state.head { return head }
                    state.headWaiter = c
                    return nil
                }
                if let ready { c.resume(with: ready.mapError { $0 as any Error }) }
            }
        } onCancel: {
            self.cancel()
        }
    }

    /// The next piece of the response body, or nil at its end. Throws `UpstreamError` when the
    /// transfer breaks mid-body.
    public func nextChunk() async throws -> ByteBuffer? {
        enum Step { case chunk(ByteBuffer, unpause: Bool), end, fail(UpstreamError), wait }
        let step: Step = lock.withLock {
            if let chunk = state.chunks.popFirst() {
                state.bufferedBytes -= chunk.readableBytes
                let unpause = state.receivePaused && state.bufferedBytes <= lowWater
                if unpause { state.receivePaused = false }
                return .chunk(chunk, unpause: unpause)
            }
            if let failure = state.failure { return .fail(failure) }
            if state.finished { return .end }
            return .wait
        }
        switch step {
        case .chunk(let chunk, let unpause):
            if unpause { driver.submit(.unpause(self)) }
            return chunk
        case .end:
            return nil
        case .fail(let error):
            throw error
        case .wait:
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<ByteBuffer?, any Error>) in
                    enum Now { case value(ByteBuffer?, unpause: Bool), error(UpstreamError), parked }
                    let now: Now = lock.withLock {
                        if let chunk = state.chunks.popFirst() {
                            state.bufferedBytes -= chunk.readableBytes
                            let unpause = state.receivePaused && state.bufferedBytes <= lowWater
                            if unpause { state.receivePaused = false }
                            return .value(chunk, unpause: unpause)
                        }
                        if let failure = state.failure { return .error(failure) }
                        if state.finished { return .value(nil, unpause: false) }
                        state.bodyWaiter = c
                        return .parked
                    }
                    switch now {
                    case .value(let v, let unpause):
                        if unpause { driver.submit(.unpause(self)) }
                        c.resume(returning: v)
                    case .error(let e): c.resume(throwing: e)
                    case .parked: break
                    }
                }
            } onCancel: {
                self.cancel()
            }
        }
    }

    /// Sends one piece of a streamed request body. Suspends while the send buffer is full.
    public func writeBody(_ buffer: ByteBuffer) async throws {
        guard buffer.readableBytes > 0 else { return }
        let (unpause, mustWait): (Bool, Bool) = try lock.withLock {
            if state.cancelled { throw UpstreamError.cancelled }
            if let failure = state.failure { throw failure }
            state.uploadChunks.append(buffer)
            state.uploadBytes += buffer.readableBytes
            let unpause = state.sendPaused
            state.sendPaused = false
            return (unpause, state.uploadBytes > highWater)
        }
        if unpause { driver.submit(.unpause(self)) }
        if mustWait {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let error: UpstreamError?? = lock.withLock {
                    if state.cancelled { return .some(.cancelled) }
                    if let failure = state.failure { return .some(failure) }
                    if state.finished || state.uploadBytes <= lowWater { return .some(nil) }
                    state.uploadWaiter = c
                    return .none
                }
                switch error {
                case .some(.some(let e)): c.resume(throwing: e)
                case .some(.none): c.resume()
                case .none: break
                }
            }
        }
    }

    /// Ends a streamed request body.
    public func finishBody() {
        let unpause: Bool = lock.withLock {
            state.uploadFinished = true
            let unpause = state.sendPaused
            state.sendPaused = false
            return unpause
        }
        if unpause { driver.submit(.unpause(self)) }
    }

    /// Ends the transfer now: its connection is closed and every waiter gets `.cancelled`.
    public func cancel() {
        let first: Bool = lock.withLock {
            if state.cancelled { return false }
            state.cancelled = true
            if state.finished {
                // Already off the driver: drop what is buffered so the reader stops too.
                state.chunks.removeAll()
                state.bufferedBytes = 0
                if state.failure == nil { state.failure = .cancelled }
                return false
            }
            return true
        }
        if first { driver.submit(.cancel(self)) }
    }

    /// A sink gives back `bytes` of chunks it was handed, once written (or dropped): the provider
    /// is resumed when what is held falls to the low-water mark.
    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let unpause: Bool = lock.withLock {
            state.bufferedBytes = max(0, state.bufferedBytes - bytes)
            let unpause = state.receivePaused && state.bufferedBytes <= lowWater
            if unpause { state.receivePaused = false }
            return unpause
        }
        if unpause { driver.submit(.unpause(self)) }
    }

    /// Asks for this transfer's events to be handed to its sink: batched by the driver when called
    /// on its thread, else at once on the sink's loop.
    func scheduleFlush() {
        guard let delivery else { return }
        let first: Bool = lock.withLock {
            if state.flushScheduled { return false }
            state.flushScheduled = true
            return true
        }
        guard first else { return }
        if !driver.batchFlush(self) { delivery.loop.execute { self.flushToSink() } }
    }

    /// Hands the sink what happened since the last flush (on the sink's loop).
    func flushToSink() {
        guard let delivery else { return }
        let (head, chunks, end): (UpstreamResponseHead?, CircularBuffer<ByteBuffer>, UpstreamError??) = lock.withLock {
            state.flushScheduled = false
            var head: UpstreamResponseHead?
            if !state.headHanded, case .success(let h)? = state.head {
                head = h
                state.headHanded = true
            }
            var chunks = CircularBuffer<ByteBuffer>()
            if state.headHanded && !state.chunks.isEmpty { swap(&chunks, &state.chunks) }
            var end: UpstreamError?? = nil
            if state.finished && !state.endHanded && state.chunks.isEmpty {
                state.endHanded = true
                end = .some(state.failure)
            }
            return (head, chunks, end)
        }
        guard head != nil || !chunks.isEmpty || end != nil else { return }
        let sink = delivery.sink.value
        if let head { sink.upstreamHead(head) }
        for chunk in chunks { sink.upstreamBody(chunk) }
        if let end { sink.upstreamEnd(end) }
        sink.upstreamDelivered()
    }

    /// What the transfer holds right now (for tests and diagnostics).
    struct Snapshot {
        var receivePaused: Bool
        var bufferedBytes: Int
    }

    var testingSnapshot: Snapshot {
        lock.withLock { Snapshot(receivePaused: state.receivePaused, bufferedBytes: state.bufferedBytes) }
    }

    // MARK: - Driver thread

    /// Called with each response header line (trailers too, which are ignored).
    func driverHeaderLine(_ line: UnsafeRawBufferPointer) {
        if headDelivered { return }
        var end = line.count
        while end > 0, line[end - 1] == UInt8(ascii: "\n") || line[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        if end == 0 {
            // End of one header block; 1xx blocks are interim and skipped.
            if parsingStatus >= 100 && parsingStatus < 200 {
                parsingHeaders.removeAll(keepingCapacity: true)
                parsingStatus = 0
                return
            }
            if parsingStatus != 0 { deliverHead() }
            return
        }
        let bytes = UnsafeRawBufferPointer(rebasing: line[0..<end])
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        if end > 5, bytes.starts(with: "HTTP/".utf8) {
            // The status line: `HTTP/1.1 200 OK`, `HTTP/2 200`.
            parsingHeaders.removeAll(keepingCapacity: true)
            var i = 5
            while i < end, bytes[i] != space { i += 1 }
            parsingVersion = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[5..<i]), as: UTF8.self)
            while i < end, bytes[i] == space { i += 1 }
            var status = 0
            while i < end, (0x30...0x39).contains(bytes[i]), status < 1000 {
                status = status * 10 + Int(bytes[i] - 0x30)
                i += 1
            }
            parsingStatus = status
            return
        }
        if bytes[0] == space || bytes[0] == tab {
            // An obsolete folded continuation of the previous field's value.
            if !parsingHeaders.isEmpty {
                parsingHeaders[parsingHeaders.count - 1].value += " " + String(decoding: bytes, as: UTF8.self).trimmingWhitespace()
            }
            return
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return }
        // Built straight from the bytes: names lowercased (ASCII), values trimmed, one string each.
        let name = String(unsafeUninitializedCapacity: colon) { out in
            for i in 0..<colon {
                let b = bytes[i]
                out[i] = (0x41...0x5A).contains(b) ? b + 0x20 : b
            }
            return colon
        }
        var start = colon + 1, stop = end
        while start < stop, bytes[start] == space || bytes[start] == tab { start += 1 }
        while stop > start, bytes[stop - 1] == space || bytes[stop - 1] == tab { stop -= 1 }
        parsingHeaders.append((name, String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<stop]), as: UTF8.self)))
    }

    /// Called with each piece of response body. Returns the count consumed, the pause marker,
    /// or 0 to abort (cancelled).
    func driverBodyData(_ data: UnsafeRawBufferPointer) -> Int {
        if !headDelivered { deliverHead() }
        let admit: Bool? = lock.withLock {
            if state.cancelled { return nil }
            if state.bufferedBytes >= highWater {
                state.receivePaused = true
                return false
            }
            return true
        }
        guard let admit else { return 0 }
        guard admit else { return ccurl_writefunc_pause() }
        let buffer = ByteBuffer(bytes: data)
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = lock.withLock {
            if let w = state.bodyWaiter {
                state.bodyWaiter = nil
                return w
            }
            state.chunks.append(buffer)
            state.bufferedBytes += buffer.readableBytes
            return nil
        }
        waiter?.resume(returning: buffer)
        scheduleFlush()
        return data.count
    }

    /// Called when curl wants more request body. Returns bytes copied, 0 at the end, or a pause/abort marker.
    /// The whole body, when it is held in memory: what a rewind starts again from.
    private var rewindable: ByteBuffer?

    /// libcurl wants to send the body again from `offset` (SEEK_SET = 0): possible for a body held
    /// in memory; a streamed one has been handed on and is gone.
    func driverRewindBody(offset: Int64, origin: Int32) -> Bool {
        guard origin == 0, var body = rewindable, offset >= 0, offset <= Int64(body.readableBytes) else { return false }
        body.moveReaderIndex(forwardBy: Int(offset))
        lock.withLock {
            state.uploadChunks.removeAll()
            if body.readableBytes > 0 { state.uploadChunks.append(body) }
            state.uploadBytes = body.readableBytes
        }
        return true
    }

    func driverReadBody(into out: UnsafeMutableRawBufferPointer) -> Int {
        enum Step { case copied(Int, CheckedContinuation<Void, any Error>?, sentAll: Bool), end, pause, abort }
        let step: Step = lock.withLock {
            if state.cancelled { return .abort }
            guard var front = state.uploadChunks.first else {
                if state.uploadFinished { return .end }
                state.sendPaused = true
                return .pause
            }
            let n = min(out.count, front.readableBytes)
            front.withUnsafeReadableBytes { src in
                out.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n)
            }
            front.moveReaderIndex(forwardBy: n)
            if front.readableBytes == 0 {
                state.uploadChunks.removeFirst()
            } else {
                state.uploadChunks[state.uploadChunks.startIndex] = front
            }
            state.uploadBytes -= n
            var waiter: CheckedContinuation<Void, any Error>?
            if state.uploadBytes <= lowWater, let w = state.uploadWaiter {
                state.uploadWaiter = nil
                waiter = w
            }
            return .copied(n, waiter, sentAll: state.uploadFinished && state.uploadChunks.isEmpty)
        }
        switch step {
        case .copied(let n, let waiter, let sentAll):
            // With a known length curl never asks past the last byte, so the clock starts here.
            if sentAll && firstByteDeadline == .max { firstByteDeadline = firstByteDeadlineFromNow() }
            waiter?.resume()
            return n
        case .end:
            if firstByteDeadline == .max { firstByteDeadline = firstByteDeadlineFromNow() }
            return 0
        case .pause: return ccurl_readfunc_pause()
        case .abort: return ccurl_readfunc_abort()
        }
    }

    func firstByteDeadlineFromNow() -> UInt64 {
        monotonicNanos() + UInt64(max(1, request.timeouts.firstByteMs)) * 1_000_000
    }

    /// Delivers the parsed head (or the status curl reports) to whoever waits for it.
    func deliverHead() {
        guard !headDelivered else { return }
        headDelivered = true
        var status = parsingStatus
        if status == 0, let easy {
            var code = 0
            _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
            status = code
        }
        let head = UpstreamResponseHead(status: status, headers: parsingHeaders, httpVersion: parsingVersion)
        parsingHeaders = []
        let waiter: CheckedContinuation<UpstreamResponseHead, any Error>? = lock.withLock {
            state.head = .success(head)
            let w = state.headWaiter
            state.headWaiter = nil
            return w
        }
        waiter?.resume(returning: head)
        scheduleFlush()
    }

    /// Marks the transfer over, with `error` nil for a clean end, and wakes every waiter.
    func driverComplete(_ error: UpstreamError?) {
        if error == nil && !headDelivered { deliverHead() }
        let waiters = lock.withLock { () -> (CheckedContinuation<UpstreamResponseHead, any Error>?, CheckedContinuation<ByteBuffer?, any Error>?, CheckedContinuation<Void, any Error>?, UpstreamError?) in
            state.finished = true
            let effective: UpstreamError? = state.cancelled ? .cancelled : error
            if let effective { state.failure = effective }
            if state.head == nil { state.head = .failure(effective ?? .transport("the provider closed the connection before a response")) }
            let h = state.headWaiter; state.headWaiter = nil
            let b = state.bodyWaiter; state.bodyWaiter = nil
            let u = state.uploadWaiter; state.uploadWaiter = nil
            return (h, b, u, effective)
        }
        let (h, b, u, effective) = waiters
        if let h {
            switch lock.withLock({ state.head! }) {
            case .success(let head): h.resume(returning: head)
            case .failure(let e): h.resume(throwing: e)
            }
        }
        if let b {
            if let effective { b.resume(throwing: effective) } else { b.resume(returning: nil) }
        }
        if let u {
            if let effective { u.resume(throwing: effective) } else { u.resume() }
        }
        scheduleFlush()
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let end = s.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(s[start...end])
    }
}
