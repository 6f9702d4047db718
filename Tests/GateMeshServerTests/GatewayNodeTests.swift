import Foundation
import GateMeshCore
import GateMeshMock
import GateMeshServer
import GateMeshUpstream
import Hummingbird
import Logging
import NIOCore
import Testing

/// A node and the mock provider in this process, on loopback, driven through the curl client.
@Suite(.serialized) struct GatewayNodeTests {
    static let timeouts = UpstreamTimeouts(connectMs: 2000, firstByteMs: 5000, totalMs: 30_000)
    let client = UpstreamClient()

    func withNode(_ configure: (inout Settings, Int) -> Void = { _, _ in },
                  _ body: @Sendable (_ nodePort: Int, _ stats: MockStats) async throws -> Void) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let mock = MockProvider(host: "127.0.0.1", port: 0)
        let (mockPorts, mockReady) = AsyncStream.makeStream(of: Int.self)
        let mockApp = mock.application(logger: logger) { mockReady.yield($0) }
        let mockTask = Task { try await mockApp.run() }
        defer { mockTask.cancel() }
        var it = mockPorts.makeAsyncIterator()
        let mockPort = await it.next()!

        var config = Settings()
        config.node.listen = ListenAddress(host: "127.0.0.1", port: 0)
        config.node.dataDir = NSTemporaryDirectory() + "gatemesh-node-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: config.node.dataDir) }
        config.admin.token = "adm"
        config.providers["openai"] = ProviderConfig(baseURL: "http://127.0.0.1:\(mockPort)/v1")
        configure(&config, mockPort)
        let node = try GatewayNode(config: config, logger: logger)
        defer { node.shutdown() }
        let (nodePorts, nodeReady) = AsyncStream.makeStream(of: Int.self)
        let app = node.application { nodeReady.yield($0) }
        let nodeTask = Task { try await app.run() }
        defer { nodeTask.cancel() }
        var nit = nodePorts.makeAsyncIterator()
        try await body(await nit.next()!, mock.stats)
    }

    func send(_ method: String, _ url: String, headers: [(String, String)] = [], body: String? = nil) async throws -> (Int, [(name: String, value: String)], String) {
        let transfer = client.start(UpstreamRequest(
            method: method, url: url, headers: headers.map { (name: $0.0, value: $0.1) },
            body: body.map { .bytes(ByteBuffer(string: $0)) } ?? .none, timeouts: Self.timeouts))
        let head = try await transfer.responseHead()
        var out = ByteBuffer()
        while var chunk = try await transfer.nextChunk() { out.writeBuffer(&chunk) }
        return (head.status, head.headers, String(buffer: out))
    }

    @Test func passthroughReachesTheProviderAndNamesIt() async throws {
        try await withNode { port, stats in
            let (status, headers, body) = try await send(
                "POST", "http://127.0.0.1:\(port)/openai/chat/completions", headers: [("content-type", "application/json")],
                body: #"{"model":"m","messages":[{"role":"user","content":"a b"}]}"#)
            #expect(status == 200)
            #expect(headers.contains { $0.name == "x-gatemesh-provider" && $0.value == "openai" })
            #expect(body.contains("\"prompt_tokens\":2"))
            #expect(stats.snapshot.requests == 1)
        }
    }

    @Test func errorsAreJSONInOneShape() async throws {
        try await withNode { port, _ in
            let (status, headers, body) = try await send("GET", "http://127.0.0.1:\(port)/custom-nope/x")
            #expect(status == 404)
            #expect(headers.contains { $0.name == "content-type" && $0.value == "application/json" })
            #expect(body.hasPrefix(#"{"error":{"type":"not_found_error","code":"unknown_provider","#))
        }
    }

    @Test func clusterStatusListsThisNode() async throws {
        try await withNode({ config, _ in config.node.name = "eu-1"; config.node.region = "eu-west" }) { port, _ in
            let (status, _, body) = try await send("GET", "http://127.0.0.1:\(port)/cluster/status", headers: [("authorization", "Bearer adm")])
            #expect(status == 200)
            let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [String: Any]
            let members = json["members"] as! [[String: Any]]
            #expect(members.count == 1)
            #expect(members[0]["name"] as? String == "eu-1")
            #expect(members[0]["region"] as? String == "eu-west")
        }
    }
}
