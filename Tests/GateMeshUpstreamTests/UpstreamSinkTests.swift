import Foundation
@testable import GateMeshUpstream
import GateMeshMock
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A transfer's answer handed to a sink on an event loop (`UpstreamClient.start(_:on:sink:)`).
@Suite(.serialized) struct UpstreamSinkTests {
    static let timeouts = UpstreamTimeouts(connectMs: 2000, firstByteMs: 5000, totalMs: 30_000)
    let client = UpstreamClient(configuration: .init(responseBufferBytes: 16 * 1024))
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    func chat(port: Int, headers: [(String, String)]) -> UpstreamRequest {
        let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"one two three"}]}"#
        return UpstreamRequest(method: "POST", url: "http://127.0.0.1:\(port)/v1/chat/completions",
                               headers: [("content-type", "application/json")] + headers.map { (name: $0.0, value: $0.1) },
                               body: .bytes(ByteBuffer(string: body)), timeouts: Self.timeouts)
    }

    /// Records what it is handed, checking it is on its loop; gives chunks back only when told.
    final class Recorder: UpstreamSink, @unchecked Sendable {
        let loop: any EventLoop
        let ended: EventLoopPromise<Void>
        var transfer: UpstreamTransfer?
        var calls: [String] = []
        var body = ByteBuffer()
        var held = 0
        var releases = true
        var batches = 0
        let sawBody = NIOLockedValueBox(false)

        init(loop: any EventLoop) {
            self.loop = loop
            ended = loop.makePromise()
        }

        func upstreamHead(_ head: UpstreamResponseHead) {
            loop.preconditionInEventLoop()
            calls.append("head \(head.status)")
        }

        func upstreamBody(_ chunk: ByteBuffer) {
            loop.preconditionInEventLoop()
            if calls.last != "body" { calls.append("body") }
            sawBody.withLockedValue { $0 = true }
            var chunk = chunk
            body.writeBuffer(&chunk)
            if releases { transfer?.release(chunk.writerIndex) } else { held += chunk.writerIndex }
        }

        func upstreamEnd(_ error: UpstreamError?) {
            loop.preconditionInEventLoop()
            calls.append(error.map { "end \($0)" } ?? "end")
            ended.succeed()
        }

        func upstreamDelivered() { batches += 1 }
    }

    @Test func aStreamArrivesOnTheLoopHeadBodyEndInOrder() async throws {
        try await withMockProvider { port, _ in
            let sink = Recorder(loop: loop)
            try await loop.submit {
                sink.transfer = client.start(chat(port: port, headers: [("x-mock-output-tokens", "300")]), on: loop, sink: sink)
            }.get()
            try await sink.ended.futureResult.get()
            let (calls, body, batches) = try await loop.submit { (sink.calls, String(buffer: sink.body), sink.batches) }.get()
            #expect(calls == ["head 200", "body", "end"])
            #expect(body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.count == 300 + 3)
            #expect(body.hasSuffix("data: [DONE]\n\n") && batches >= 1)
        }
    }

    @Test func chunksNotGivenBackPauseTheProviderAndNothingIsLost() async throws {
        try await withMockProvider { port, _ in
            let sink = Recorder(loop: loop)
            sink.releases = false
            let transfer = try await loop.submit {
                let t = client.start(chat(port: port, headers: [("x-mock-output-tokens", "20000")]), on: loop, sink: sink)
                sink.transfer = t
                return t
            }.get()
            #expect(await eventually { transfer.testingSnapshot.receivePaused })
            let held = try await loop.submit { sink.held }.get()
            #expect(held >= transfer.highWater && held <= transfer.highWater + 64 * 1024)
            // Given back: the provider resumes, and from now on each chunk is given back as it comes.
            try await loop.submit {
                sink.releases = true
                transfer.release(sink.held)
            }.get()
            try await sink.ended.futureResult.get()
            let body = try await loop.submit { String(buffer: sink.body) }.get()
            #expect(body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.count == 20000 + 3)
        }
    }

    @Test func anUnreachableProviderEndsWithAnErrorAndNoHead() async throws {
        let sink = Recorder(loop: loop)
        try await loop.submit {
            sink.transfer = client.start(chat(port: 9, headers: []), on: loop, sink: sink)
        }.get()
        try await sink.ended.futureResult.get()
        let calls = try await loop.submit { sink.calls }.get()
        #expect(calls.count == 1 && calls[0].hasPrefix("end ") && !calls.contains { $0.hasPrefix("head") })
    }

    @Test func cancellingEndsTheSinkWithCancelled() async throws {
        try await withMockProvider { port, stats in
            let sink = Recorder(loop: loop)
            let transfer = try await loop.submit {
                let t = client.start(chat(port: port, headers: [("x-mock-token-delay-ms", "50"), ("x-mock-output-tokens", "200")]),
                                     on: loop, sink: sink)
                sink.transfer = t
                return t
            }.get()
            #expect(await eventually { sink.sawBody.withLockedValue { $0 } })
            transfer.cancel()
            try await sink.ended.futureResult.get()
            let calls = try await loop.submit { sink.calls }.get()
            #expect(calls.last == "end \(UpstreamError.cancelled)")
            #expect(await eventually { stats.snapshot.streamsAborted == 1 })
        }
    }
}
