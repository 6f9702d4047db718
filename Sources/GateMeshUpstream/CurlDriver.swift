import CGateMeshCurl
import Foundation
import Logging
import NIOCore
import NIOConcurrencyHelpers
import Synchronization

/// Owns one libcurl multi handle and the one thread that drives it.
///
/// Every curl call on the multi handle and its easy handles happens on that thread. Other threads
/// talk to it only through `submit`, which queues a command and wakes the thread with
/// `curl_multi_wakeup`.
final class CurlDriver: @unchecked Sendable {
    enum Command {
        case add(UpstreamTransfer)
        case unpause(UpstreamTransfer)
        case cancel(UpstreamTransfer)
        case shutdown
    }

    private let multi: UnsafeMutableRawPointer
    private let lock = NIOLock()
    private var queue: [Command] = []
    private var accepting = true
    private let logger: Logger
    private let configuration: UpstreamClient.Configuration
    private var thread: Thread?
    private let stopped = ConditionLock(value: false)
    /// New connections opened so far (each reuse of a cached connection does not count).
    let connectionsOpened = Atomic<Int>(0)

    // Driver-thread-only state
    private var active: [UnsafeMutableRawPointer: UpstreamTransfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var shuttingDown = false
    /// Transfers delivering to a sink that have events to hand over after this pass.
    private var flushes: [UpstreamTransfer] = []
    /// The driver thread's `pthread_t`, once it runs (0 before): read from any thread.
    private let driverThread = Atomic<UInt>(0)

    init(configuration: UpstreamClient.Configuration, logger: Logger, index: Int) {
        self.configuration = configuration
        self.logger = logger
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        self.multi = multi
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxCachedConnections)
        let thread = Thread { [self] in self.run() }
        thread.name = "gatemesh-curl-\(index)"
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Queues a command for the driver thread. After shutdown, `add` fails the transfer at once.
    func submit(_ command: Command) {
        let accepted: Bool = lock.withLock {
            if case .add = command, !accepting { return false }
            if case .shutdown = command { accepting = false }
            queue.append(command)
            return true
        }
        if accepted {
            curl_multi_wakeup(multi)
        } else if case .add(let transfer) = command {
            transfer.driverComplete(.shutdown)
        }
    }

    /// Stops the thread after cancelling whatever is still running, and waits for it.
    func shutdown() {
        submit(.shutdown)
        stopped.lock(whenValue: true)
        stopped.unlock()
    }

    // MARK: - The driver loop

    /// Takes a transfer whose events go to a sink, to be handed over with the others of this pass
    /// (one `execute` per event loop); false when not called on the driver thread.
    func batchFlush(_ transfer: UpstreamTransfer) -> Bool {
        let driver = driverThread.load(ordering: .acquiring)
        guard driver != 0, pthread_equal(pthread_t(driver), pthread_self()) != 0 else { return false }
        flushes.append(transfer)
        return true
    }

    /// Hands each event loop its transfers' events, in one `execute` per loop.
    private func deliverFlushes() {
        guard !flushes.isEmpty else { return }
        var byLoop: [ObjectIdentifier: (loop: any EventLoop, transfers: [UpstreamTransfer])] = [:]
        for transfer in flushes {
            guard let loop = transfer.delivery?.loop else { continue }
            byLoop[ObjectIdentifier(loop as AnyObject), default: (loop, [])].transfers.append(transfer)
        }
        flushes.removeAll(keepingCapacity: true)
        for (_, group) in byLoop {
            let transfers = group.transfers
            group.loop.execute { for transfer in transfers { transfer.flushToSink() } }
        }
    }

    private func run() {
        driverThread.store(UInt(pthread_self()), ordering: .releasing)
        var running: Int32 = 0
        while true {
            let commands: [Command] = lock.withLock {
                let c = queue
                queue.removeAll(keepingCapacity: true)
                return c
            }
            for command in commands { handle(command) }
            if shuttingDown {
                for (easy, transfer) in active { finish(easy: easy, transfer: transfer, error: .shutdown) }
                deliverFlushes()
                break
            }
            curl_multi_perform(multi, &running)
            drainMessages()
            let waitMs = expireDeadlines()
            deliverFlushes()
            curl_multi_poll(multi, nil, 0, Int32(waitMs), nil)
        }
        for easy in idleHandles { curl_easy_cleanup(easy) }
        idleHandles.removeAll()
        curl_multi_cleanup(multi)
        stopped.lock()
        stopped.unlock(withValue: true)
    }

    private func handle(_ command: Command) {
        switch command {
        case .add(let transfer):
            start(transfer)
        case .unpause(let transfer):
            if let easy = transfer.easy, active[easy] != nil {
                _ = ccurl_easy_unpause(easy)
            }
        case .cancel(let transfer):
            if let easy = transfer.easy, active[easy] != nil {
                finish(easy: easy, transfer: transfer, error: .cancelled)
            }
        case .shutdown:
            shuttingDown = true
        }
    }

    private func drainMessages() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                  let transfer = active[easy] else { continue }
            let code = message.pointee.data.result
            finish(easy: easy, transfer: transfer, error: code == CURLE_OK ? nil : Self.map(code, transfer: transfer))
        }
    }

    /// Fails transfers whose response head is overdue; returns how long to wait in poll (ms).
    private func expireDeadlines() -> Int {
        var wait: UInt64 = 1000
        guard !active.isEmpty else { return Int(wait) }
        let now = monotonicNanos()
        var expired: [(UnsafeMutableRawPointer, UpstreamTransfer)] = []
        for (easy, transfer) in active where !transfer.headDelivered && transfer.firstByteDeadline != .max {
            if transfer.firstByteDeadline <= now {
                expired.append((easy, transfer))
            } else {
                wait = min(wait, (transfer.firstByteDeadline - now) / 1_000_000 + 1)
            }
        }
        for (easy, transfer) in expired {
            finish(easy: easy, transfer: transfer,
                   error: .timeout("no response head within \(transfer.request.timeouts.firstByteMs) ms"))
        }
        return Int(wait)
    }

    // MARK: - Easy handles

    private func start(_ transfer: UpstreamTransfer) {
        let easy: UnsafeMutableRawPointer
        if let reused = idleHandles.popLast() {
            curl_easy_reset(reused)
            easy = reused
        } else if let fresh = curl_easy_init() {
            easy = fresh
        } else {
            transfer.driverComplete(.transport("curl_easy_init failed"))
            return
        }
        transfer.easy = easy
        let request = transfer.request
        let opaque = Unmanaged.passUnretained(transfer).toOpaque()

        _ = ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        _ = ccurl_easy_setopt_long(
            easy, CURLOPT_HTTP_VERSION,
            configuration.http2 ? Int(CURL_HTTP_VERSION_2TLS) : Int(CURL_HTTP_VERSION_1_1))
        if let caFile = configuration.caFile { _ = ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, caFile) }
        // Offer every encoding this libcurl can decode, and decode it: the body we hand on is plain.
        if configuration.decompresses { _ = ccurl_easy_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, "") }
        _ = ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, request.timeouts.connectMs)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, request.timeouts.totalMs)
        _ = ccurl_easy_set_write_callback(easy, writeCallback, opaque)
        _ = ccurl_easy_set_header_callback(easy, headerCallback, opaque)

        // Method and body. A body always goes through the read callback, so memory and streamed
        // bodies share one path and one back-pressure rule.
        let method = request.method.uppercased()
        var hasBody: Bool
        var length: Int?
        switch request.body {
        case .none:
            hasBody = method == "POST" || method == "PUT" || method == "PATCH"
            length = 0
        case .bytes(let buffer):
            hasBody = true
            length = buffer.readableBytes
        case .streamed(let l):
            hasBody = true
            length = l
        }
        if hasBody {
            _ = ccurl_easy_setopt_long(easy, CURLOPT_POST, 1)
            _ = ccurl_easy_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length ?? -1))
            _ = ccurl_easy_set_read_callback(easy, readCallback, opaque)
            // A body held in memory can be sent again: libcurl rewinds it when a reused
            // connection turns out to be closed before the answer (otherwise "necessary data
            // rewind wasn't possible", a 502). A streamed body cannot.
            _ = ccurl_easy_set_seek_callback(easy, seekCallback, opaque)
            if method != "POST" { _ = ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method) }
        } else if method == "HEAD" {
            _ = ccurl_easy_setopt_long(easy, CURLOPT_NOBODY, 1)
        } else if method != "GET" {
            _ = ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method)
        }

        // Headers: the client's, plus blanks that stop curl adding its own defaults. One block
        // holds them and the error buffer.
        var sawAccept = false
        var sawContentType = false
        for (name, _) in request.headers {
            if name == "accept" { sawAccept = true }
            if name == "content-type" { sawContentType = true }
        }
        let lines = Self.blankLines[(sawAccept ? 0 : 1) | (hasBody && !sawContentType ? 2 : 0) | (hasBody && length == nil ? 4 : 0)]
        let block = RequestBlock(fields: request.headers, lines: lines)
        transfer.requestBlock = block.raw
        transfer.errorBuffer = block.errorBuffer
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, block.errorBuffer)
        _ = ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, block.headers)

        // The first-byte clock starts once the whole request body is sent (see driverReadBody);
        // a bodiless request starts it now.
        transfer.firstByteDeadline = hasBody && length != 0 ? .max : transfer.firstByteDeadlineFromNow()
        active[easy] = transfer
        let rc = curl_multi_add_handle(multi, easy)
        if rc != CURLM_OK {
            finish(easy: easy, transfer: transfer, error: .transport("curl_multi_add_handle failed (\(rc.rawValue))"))
        }
    }

    /// The lines after the client's (no array made per request): `Expect:` always; by bit, `Accept:`
    /// (1), `Content-Type:` (2) and chunked encoding (4).
    private static let blankLines: [[StaticString]] = (0..<8).map { bits in
        var lines: [StaticString] = ["Expect:"]
        if bits & 1 != 0 { lines.append("Accept:") }
        if bits & 2 != 0 { lines.append("Content-Type:") }
        if bits & 4 != 0 { lines.append("Transfer-Encoding: chunked") }
        return lines
    }

    private func finish(easy: UnsafeMutableRawPointer, transfer: UpstreamTransfer, error: UpstreamError?) {
        var connects = 0
        _ = ccurl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
        connectionsOpened.add(connects, ordering: .relaxed)
        active.removeValue(forKey: easy)
        curl_multi_remove_handle(multi, easy)
        transfer.requestBlock?.deallocate()
        transfer.requestBlock = nil
        transfer.errorBuffer = nil
        transfer.easy = nil
        if idleHandles.count < 64 {
            idleHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
        transfer.driverComplete(error)
    }

    static func map(_ code: CURLcode, transfer: UpstreamTransfer) -> UpstreamError {
        var detail = ""
        if let buffer = transfer.errorBuffer, buffer.pointee != 0 {
            detail = String(cString: buffer)
        }
        if detail.isEmpty { detail = String(cString: curl_easy_strerror(code)) }
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT,
             CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
             CURLE_SSL_CERTPROBLEM, CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return transfer.headDelivered ? .transport(detail) : .unreachable(detail)
        case CURLE_OPERATION_TIMEDOUT:
            // No connection was ever made: the provider is unreachable, not slow.
            var connectTime = 0.0
            _ = ccurl_easy_getinfo_double(transfer.easy!, CURLINFO_CONNECT_TIME, &connectTime)
            if connectTime == 0 && !transfer.headDelivered { return .unreachable(detail) }
            return .timeout(detail)
        case CURLE_ABORTED_BY_CALLBACK, CURLE_WRITE_ERROR:
            return .cancelled
        default:
            return .transport(detail)
        }
    }
}

// MARK: - C callbacks (driver thread)

private let writeCallback: ccurl_data_callback = { ptr, size, count, userdata in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.driverBodyData(UnsafeRawBufferPointer(start: ptr, count: size * count))
}

private let headerCallback: ccurl_data_callback = { ptr, size, count, userdata in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    transfer.driverHeaderLine(UnsafeRawBufferPointer(start: ptr, count: size * count))
    return size * count
}

private let seekCallback: ccurl_seek_callback = { userdata, offset, origin in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.driverRewindBody(offset: Int64(offset), origin: origin) ? 0 : 2  // CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK
}

private let readCallback: ccurl_data_callback = { ptr, size, count, userdata in
    let transfer = Unmanaged<UpstreamTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.driverReadBody(into: UnsafeMutableRawBufferPointer(start: ptr, count: size * count))
}
