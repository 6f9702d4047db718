// The floor of the stack, for `bench/proxy.py`: what the HTTP server and the upstream client cost
// with nothing of the gateway on top. Not part of the product.
//
//   gatemesh-floor nio-hello PORT            SwiftNIO's HTTP/1 channel handlers, a fixed answer
//   gatemesh-floor hummingbird-hello PORT    a Hummingbird 2 route, the same fixed answer
//   gatemesh-floor hummingbird-proxy PORT URL  a Hummingbird 2 route that sends the request body
//                                            to URL through GateMeshUpstream (libcurl) and answers
//                                            with the upstream's status and body
//   gatemesh-floor nio-proxy PORT URL        the same exchange from SwiftNIO's channel handlers: a
//                                            task per request drives the transfer, the answer is
//                                            written from the event loop
//   gatemesh-floor nio-loop-proxy PORT URL   the same from SwiftNIO's channel handlers with the
//                                            transfer's answer delivered to the handler on its event
//                                            loop (`UpstreamSink`): no task, one `execute` per batch
//   gatemesh-floor nio-nio-proxy PORT URL    SwiftNIO's handlers on both sides: each client connection
//                                            gets its own upstream connection on the same event loop,
//                                            and response parts are passed through as they come (no
//                                            task, no thread hop: the shape of nginx's proxy_pass)
import GateMeshUpstream
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

let answer = #"{"id":"chatcmpl-floor","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}"#

/// Answers every request with `answer` from the event loop, with no task.
final class FixedAnswer: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(answer.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: answer)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// Sends each request's body to `url` through GateMeshUpstream and writes the upstream's answer
/// back from the event loop: what the proxy costs without Hummingbird's request and response
/// streams (a task per request remains, to await the transfer).
final class CurlProxy: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let client: UpstreamClient
    let url: String
    var body = ByteBuffer()

    init(client: UpstreamClient, url: String) {
        self.client = client
        self.url = url
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard collect(unwrapInboundIn(data), into: &body) else { return }
        let transfer = client.start(UpstreamRequest(
            method: "POST", url: url, headers: [("content-type", "application/json"), ("authorization", "Bearer floor")],
            body: .bytes(body), timeouts: .init(connectMs: 2000, firstByteMs: 30000, totalMs: 0)))
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        Task {
            var status = 502
            var answer = ByteBuffer()
            do {
                status = try await transfer.responseHead().status
                for try await var chunk in UpstreamBody(transfer) { answer.writeBuffer(&chunk) }
            } catch {
                answer = ByteBuffer(string: #"{"error":"upstream"}"#)
            }
            let (code, result) = (status, answer)
            loop.execute {
                let (handler, context) = bound.value
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "application/json")
                headers.add(name: "content-length", value: String(result.readableBytes))
                context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: code),
                                                                             headers: headers))), promise: nil)
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(result))), promise: nil)
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// `nio-loop-proxy`: the answer is passed through as the driver hands it over, on the
/// connection's event loop; chunks are given back to the transfer once written.
final class LoopCurlProxy: ChannelInboundHandler, UpstreamSink {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let client: UpstreamClient
    let url: String
    var body = ByteBuffer()
    var context: ChannelHandlerContext?
    var transfer: UpstreamTransfer?
    var headSent = false

    init(client: UpstreamClient, url: String) {
        self.client = client
        self.url = url
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard collect(unwrapInboundIn(data), into: &body) else { return }
        self.context = context
        headSent = false
        transfer = client.start(UpstreamRequest(
            method: "POST", url: url, headers: [("content-type", "application/json"), ("authorization", "Bearer floor")],
            body: .bytes(body), timeouts: .init(connectMs: 2000, firstByteMs: 30000, totalMs: 0)), on: context.eventLoop, sink: self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        transfer?.cancel()
        transfer = nil
        self.context = nil
        context.fireChannelInactive()
    }

    func upstreamHead(_ head: UpstreamResponseHead) {
        guard let context else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: head.headers.first { $0.name == "content-type" }?.value ?? "application/json")
        if let length = head.headers.first(where: { $0.name == "content-length" })?.value { headers.add(name: "content-length", value: length) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: head.status), headers: headers))),
                      promise: nil)
        headSent = true
    }

    func upstreamBody(_ chunk: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
        transfer?.release(chunk.readableBytes)
    }

    func upstreamEnd(_ error: UpstreamError?) {
        guard let context else { return }
        if !headSent {
            let answer = ByteBuffer(string: #"{"error":"upstream"}"#)
            let headers = HTTPHeaders([("content-type", "application/json"), ("content-length", String(answer.readableBytes))])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badGateway, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(answer))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        transfer = nil
    }

    func upstreamDelivered() { context?.flush() }
}

/// The client side of `nio-nio-proxy`: one upstream connection per client connection, on the
/// client connection's event loop.
final class PinnedProxy: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let host: String
    let port: Int
    let path: String
    var upstream: (any Channel)?
    /// A request that arrived before the upstream connection was made.
    var waiting = false
    var body = ByteBuffer()

    init(host: String, port: Int, path: String) {
        self.host = host
        self.port = port
        self.path = path
    }

    func channelActive(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Back(bound))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let channel):
                    handler.upstream = channel
                    if handler.waiting { handler.send() }
                case .failure: context.close(promise: nil)
                }
            }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        upstream?.close(promise: nil)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard collect(unwrapInboundIn(data), into: &body) else { return }
        if upstream == nil { waiting = true } else { send() }
    }

    func send() {
        guard let upstream else { return }
        waiting = false
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "\(host):\(port)")
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "authorization", value: "Bearer floor")
        headers.add(name: "content-length", value: String(body.readableBytes))
        upstream.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)), promise: nil)
        upstream.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
        upstream.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    }

    /// Passes the upstream's response parts to the client connection.
    final class Back: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let front: NIOLoopBound<(PinnedProxy, ChannelHandlerContext)>

        init(_ front: NIOLoopBound<(PinnedProxy, ChannelHandlerContext)>) { self.front = front }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let (handler, client) = front.value
            switch unwrapInboundIn(data) {
            case .head(let head):
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: head.headers.first(name: "content-type") ?? "application/json")
                if let length = head.headers.first(name: "content-length") { headers.add(name: "content-length", value: length) }
                client.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: head.status, headers: headers))), promise: nil)
            case .body(let chunk):
                client.write(handler.wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
            case .end:
                client.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// Collects a request's body; true at its end.
func collect(_ part: HTTPServerRequestPart, into body: inout ByteBuffer) -> Bool {
    switch part {
    case .head: body.clear()
    case .body(var chunk): body.writeBuffer(&chunk)
    case .end: return true
    }
    return false
}

/// Serves HTTP/1 on 127.0.0.1:`port` with SwiftNIO's server pipeline and `handler` after it.
func serveHTTP1(port: Int, handler: @escaping @Sendable () -> any ChannelHandler) async throws {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(handler())
            }
        }
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .bind(host: "127.0.0.1", port: port).get()
    try await channel.closeFuture.get()
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "streams" {
    try await StreamLoad.run(Array(arguments.dropFirst()))
    exit(0)
}
guard arguments.count >= 2, let port = Int(arguments[1]) else {
    print("usage: gatemesh-floor nio-hello|hummingbird-hello|hummingbird-proxy|nio-proxy|nio-loop-proxy|nio-nio-proxy PORT [URL] | streams URL STREAMS TOKENS DELAY_MS")
    exit(2)
}

switch arguments[0] {
case "nio-hello":
    try await serveHTTP1(port: port) { FixedAnswer() }
case "nio-proxy" where arguments.count == 3:
    let client = UpstreamClient(configuration: .init(http2: false))
    let url = arguments[2]
    try await serveHTTP1(port: port) { CurlProxy(client: client, url: url) }
case "nio-loop-proxy" where arguments.count == 3:
    let client = UpstreamClient(configuration: .init(http2: false))
    let url = arguments[2]
    try await serveHTTP1(port: port) { LoopCurlProxy(client: client, url: url) }
case "nio-nio-proxy" where arguments.count == 3:
    // http://HOST:PORT/PATH, as bench/proxy.py passes it.
    let parts = arguments[2].dropFirst("http://".count).split(separator: "/", maxSplits: 1)
    let hostPort = parts[0].split(separator: ":")
    let (host, upstreamPort, path) = (String(hostPort[0]), Int(hostPort[1]) ?? 80, "/" + (parts.count > 1 ? String(parts[1]) : ""))
    try await serveHTTP1(port: port) { PinnedProxy(host: host, port: upstreamPort, path: path) }
case "hummingbird-hello":
    let body = ByteBuffer(string: answer)
    let router = Router()
    router.post("/**") { request, _ -> Response in
        _ = try await request.body.collect(upTo: 1 << 20)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
    try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port))).runService()
case "hummingbird-proxy" where arguments.count == 3:
    let url = arguments[2]
    let client = UpstreamClient(configuration: .init(http2: false))
    let router = Router()
    router.post("/**") { request, _ -> Response in
        let body = try await request.body.collect(upTo: 1 << 20)
        let transfer = client.start(UpstreamRequest(
            method: "POST", url: url, headers: [("content-type", "application/json"), ("authorization", "Bearer floor")],
            body: .bytes(body), timeouts: .init(connectMs: 2000, firstByteMs: 30000, totalMs: 0)))
        let head = try await transfer.responseHead()
        var answer = ByteBuffer()
        for try await var chunk in UpstreamBody(transfer) { answer.writeBuffer(&chunk) }
        return Response(status: .init(code: head.status), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: answer))
    }
    try await Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port))).runService()
default:
    print("usage: gatemesh-floor nio-hello|hummingbird-hello|hummingbird-proxy|nio-proxy|nio-loop-proxy|nio-nio-proxy PORT [URL] | streams URL STREAMS TOKENS DELAY_MS")
    exit(2)
}
