// The floor of the stack, for `bench/proxy.py`: what the HTTP server and the upstream client cost
// with nothing of the gateway on top. Not part of the product.
//
//   gatemesh-floor nio-hello PORT            SwiftNIO's HTTP/1 channel handlers, a fixed answer
//   gatemesh-floor hummingbird-hello PORT    a Hummingbird 2 route, the same fixed answer
//   gatemesh-floor hummingbird-proxy PORT URL  a Hummingbird 2 route that sends the request body
//                                            to URL through GateMeshUpstream (libcurl) and answers
//                                            with the upstream's status and body
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

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2, let port = Int(arguments[1]) else {
    print("usage: gatemesh-floor nio-hello|hummingbird-hello|hummingbird-proxy PORT [URL]")
    exit(2)
}

switch arguments[0] {
case "nio-hello":
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(FixedAnswer())
            }
        }
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .bind(host: "127.0.0.1", port: port).get()
    try await channel.closeFuture.get()
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
    print("usage: gatemesh-floor nio-hello|hummingbird-hello|hummingbird-proxy PORT [URL]")
    exit(2)
}
