import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `gatemesh-floor streams URL STREAMS TOKENS DELAY_MS [HEADER: VALUE]...`: opens STREAMS
/// streamed chat completions at once (the mock provider's, asked for TOKENS tokens DELAY_MS
/// apart), one connection each, and times every server-sent event as it arrives. Prints one JSON
/// object: time to the first event and the gaps between events (p50, p99, max, in ms), the
/// events and streams that ended, and the errors. One event loop thread: the figures are its
/// clock's, and it leaves the other core to what is measured.
enum StreamLoad {
    static func run(_ arguments: [String]) async throws {
        guard arguments.count >= 4, let streams = Int(arguments[1]), let tokens = Int(arguments[2]), let delay = Int(arguments[3]),
              let target = Target(arguments[0]) else {
            print("usage: gatemesh-floor streams http://HOST:PORT/PATH STREAMS TOKENS DELAY_MS [HEADER: VALUE]...")
            exit(2)
        }
        var headers = HTTPHeaders([
            ("host", "\(target.host):\(target.port)"), ("content-type", "application/json"), ("authorization", "Bearer sk-bench"),
            ("x-mock-output-tokens", String(tokens)), ("x-mock-token-delay-ms", String(delay)),
        ])
        for extra in arguments.dropFirst(4) {
            let parts = extra.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { headers.add(name: String(parts[0]), value: parts[1].trimmingCharacters(in: .whitespaces)) }
        }
        let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Stream to the benchmark"}]}"#
        headers.add(name: "content-length", value: String(body.utf8.count))
        let requestHeaders = headers

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let stats = Stats(expected: streams)
        let done = loop.makePromise(of: Void.self)
        stats.done = done
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        StreamHandler(stats: stats, path: target.path, headers: requestHeaders, body: body))
                }
            }
        // Open them in waves of 100 every 20 ms, so that no listen queue overflows on the way.
        for wave in stride(from: 0, to: streams, by: 100) {
            for _ in wave..<min(streams, wave + 100) {
                bootstrap.connect(host: target.host, port: target.port).whenFailure { error in
                    stats.fail("connect: \(error)")
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await done.futureResult.get()
        let summary = try await loop.submit { stats.summary() }.get()
        print(summary)
        try await group.shutdownGracefully()
    }

    struct Target {
        var host: String
        var port: Int
        var path: String

        init?(_ url: String) {
            guard url.hasPrefix("http://") else { return nil }
            let rest = url.dropFirst("http://".count)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let hostPort = rest[..<slash].split(separator: ":")
            guard hostPort.count == 2, let port = Int(hostPort[1]) else { return nil }
            (host, self.port, path) = (String(hostPort[0]), port, slash == rest.endIndex ? "/" : String(rest[slash...]))
        }
    }

    /// Every stream's figures; touched only on the one event loop.
    final class Stats: @unchecked Sendable {
        let expected: Int
        var firstEventNs: [UInt64] = []
        var gapsNs: [UInt64] = []
        var events = 0
        var completed = 0
        var failed = 0
        var errors: [String: Int] = [:]
        var done: EventLoopPromise<Void>?

        init(expected: Int) { self.expected = expected }

        func fail(_ error: String) {
            failed += 1
            errors[error, default: 0] += 1
            check()
        }

        func check() {
            if completed + failed == expected { done?.succeed() }
        }

        func summary() -> String {
            func ms(_ sorted: [UInt64], _ q: Double) -> Double {
                sorted.isEmpty ? 0 : Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1e6
            }
            let first = firstEventNs.sorted(), gaps = gapsNs.sorted()
            let fields: [String: Any] = [
                "streams": expected, "completed": completed, "failed": failed, "events": events,
                "first_event_ms": ["p50": ms(first, 0.5), "p99": ms(first, 0.99), "max": ms(first, 1)],
                "gap_ms": ["p50": ms(gaps, 0.5), "p99": ms(gaps, 0.99), "p999": ms(gaps, 0.999), "max": ms(gaps, 1)],
                "errors": errors,
            ]
            let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
    }

    final class StreamHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        let stats: Stats
        let path: String
        let headers: HTTPHeaders
        let body: String
        var sentAt: UInt64 = 0
        var lastEvent: UInt64?
        var newline = false
        var ended = false

        init(stats: Stats, path: String, headers: HTTPHeaders, body: String) {
            self.stats = stats
            self.path = path
            self.headers = headers
            self.body = body
        }

        func channelActive(context: ChannelHandlerContext) {
            sentAt = DispatchTime.now().uptimeNanoseconds
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                if head.status != .ok {
                    end(context, error: "status \(head.status.code)")
                }
            case .body(let buffer):
                // An event ends with a blank line: count each "\n\n" as it arrives.
                let now = DispatchTime.now().uptimeNanoseconds
                for byte in buffer.readableBytesView {
                    if byte == UInt8(ascii: "\n") {
                        if newline { event(at: now) }
                        newline.toggle()
                    } else if byte != UInt8(ascii: "\r") {
                        newline = false
                    }
                }
            case .end:
                end(context, error: nil)
            }
        }

        func event(at now: UInt64) {
            stats.events += 1
            if let lastEvent { stats.gapsNs.append(now - lastEvent) } else { stats.firstEventNs.append(now - sentAt) }
            lastEvent = now
            newline = false
        }

        func end(_ context: ChannelHandlerContext, error: String?) {
            guard !ended else { return }
            ended = true
            if let error { stats.fail(error) } else {
                stats.completed += 1
                stats.check()
            }
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !ended { end(context, error: "closed before the end") }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            end(context, error: "\(error)")
        }
    }
}
