import Foundation
@testable import GateMeshUpstream
import GateMeshMock
import NIOCore
import Testing

@Suite(.serialized) struct UpstreamClientTests {
    static let timeouts = UpstreamTimeouts(connectMs: 2000, firstByteMs: 5000, totalMs: 30_000)
    let client = UpstreamClient(configuration: .init(responseBufferBytes: 16 * 1024))

    func chat(port: Int, stream: Bool, headers: [(String, String)] = []) -> UpstreamRequest {
        let body = #"{"model":"gpt-4o-mini","stream":\#(stream),"messages":[{"role":"user","content":"one two three"}]}"#
        return UpstreamRequest(
            method: "POST", url: "http://127.0.0.1:\(port)/v1/chat/completions",
            headers: [("content-type", "application/json")] + headers.map { (name: $0.0, value: $0.1) },
            body: .bytes(ByteBuffer(string: body)), timeouts: Self.timeouts)
    }

    func readAll(_ transfer: UpstreamTransfer) async throws -> String {
        var out = ByteBuffer()
        while var chunk = try await transfer.nextChunk() { out.writeBuffer(&chunk) }
        return String(buffer: out)
    }

    @Test func nonStreamedResponseArrivesWhole() async throws {
        try await withMockProvider { port, _ in
            let transfer = client.start(chat(port: port, stream: false))
            let head = try await transfer.responseHead()
            #expect(head.status == 200)
            #expect(head.header("content-type") == "application/json")
            let body = try await readAll(transfer)
            #expect(body.contains("\"prompt_tokens\":3"))
            #expect(body.contains("\"completion_tokens\":16"))
        }
    }

    @Test func streamedEventsArriveBeforeTheStreamEnds() async throws {
        try await withMockProvider { port, _ in
            let transfer = client.start(chat(port: port, stream: true, headers: [("x-mock-token-delay-ms", "400"), ("x-mock-output-tokens", "3")]))
            let started = Date()
            _ = try await transfer.responseHead()
            let first = try await transfer.nextChunk()
            let firstAt = Date().timeIntervalSince(started)
            #expect(first.map { String(buffer: $0) }?.hasPrefix("data: ") == true)
            #expect(firstAt < 0.35, "the first event must not wait for the next token (took \(firstAt)s)")
            let rest = try await readAll(transfer)
            #expect(rest.hasSuffix("data: [DONE]\n\n"))
            #expect(Date().timeIntervalSince(started) >= 1.2)
        }
    }

    @Test func aSlowReaderPausesTheTransferAndLosesNothing() async throws {
        try await withMockProvider { port, _ in
            let transfer = client.start(chat(port: port, stream: true, headers: [("x-mock-output-tokens", "20000")]))
            _ = try await transfer.responseHead()
            // Nobody reads: curl must stop at the high-water mark instead of buffering the stream.
            #expect(await eventually { transfer.testingSnapshot.receivePaused })
            try await Task.sleep(for: .milliseconds(300))
            let snapshot = transfer.testingSnapshot
            #expect(snapshot.receivePaused)
            #expect(snapshot.bufferedBytes <= transfer.highWater + 64 * 1024)
            let body = try await readAll(transfer)
            let events = body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.count == 20000 + 3, "role chunk + one per token + finish chunk + [DONE]")
            #expect(body.hasSuffix("data: [DONE]\n\n"))
        }
    }

    @Test func cancellingMidStreamClosesTheUpstreamConnection() async throws {
        try await withMockProvider { port, stats in
            let transfer = client.start(chat(port: port, stream: true, headers: [("x-mock-token-delay-ms", "50"), ("x-mock-output-tokens", "200")]))
            _ = try await transfer.responseHead()
            _ = try await transfer.nextChunk()
            transfer.cancel()
            await #expect(throws: UpstreamError.cancelled) { _ = try await self.readAll(transfer) }
            #expect(await eventually { stats.snapshot.streamsAborted == 1 })
            #expect(stats.snapshot.streamsCompleted == 0)
        }
    }

    @Test func taskCancellationCancelsTheTransfer() async throws {
        try await withMockProvider { port, stats in
            let transfer = client.start(chat(port: port, stream: true, headers: [("x-mock-token-delay-ms", "50"), ("x-mock-output-tokens", "200")]))
            let reader = Task { try await self.readAll(transfer) }
            try await Task.sleep(for: .milliseconds(200))
            reader.cancel()
            _ = await reader.result
            #expect(await eventually { stats.snapshot.streamsAborted == 1 })
        }
    }

    @Test func closedPortIsUnreachable() async throws {
        let transfer = client.start(UpstreamRequest(method: "GET", url: "http://127.0.0.1:9/x", headers: [], body: .none, timeouts: Self.timeouts))
        do {
            _ = try await transfer.responseHead()
            Issue.record("expected a failure")
        } catch let error as UpstreamError {
            guard case .unreachable = error else { Issue.record("expected unreachable, got \(error)"); return }
        }
    }

    @Test func slowHeadHitsTheFirstByteTimeout() async throws {
        try await withMockProvider { port, _ in
            var request = chat(port: port, stream: false, headers: [("x-mock-latency-ms", "3000")])
            request.timeouts.firstByteMs = 300
            let started = Date()
            let transfer = client.start(request)
            do {
                _ = try await transfer.responseHead()
                Issue.record("expected a timeout")
            } catch let error as UpstreamError {
                guard case .timeout = error else { Issue.record("expected timeout, got \(error)"); return }
            }
            #expect(Date().timeIntervalSince(started) < 2)
        }
    }

    @Test func streamedUploadOfUnknownLengthArrivesWhole() async throws {
        try await withMockProvider { port, _ in
            let transfer = client.start(UpstreamRequest(
                method: "PUT", url: "http://127.0.0.1:\(port)/echo/upload", headers: [("content-type", "application/octet-stream")],
                body: .streamed(length: nil), timeouts: Self.timeouts))
            let piece = ByteBuffer(repeating: UInt8(ascii: "x"), count: 10_000)
            for _ in 0..<50 { try await transfer.writeBody(piece) }
            transfer.finishBody()
            let head = try await transfer.responseHead()
            #expect(head.status == 200)
            let echo = try await readAll(transfer)
            #expect(echo.contains("\"body_bytes\":500000"))
            #expect(echo.contains("\"method\":\"PUT\""))
        }
    }

    @Test func connectionsAreReused() async throws {
        try await withMockProvider { port, _ in
            for _ in 0..<3 {
                let transfer = client.start(chat(port: port, stream: false))
                _ = try await transfer.responseHead()
                _ = try await readAll(transfer)
            }
            #expect(client.connectionsOpened <= 1)
        }
    }
}
