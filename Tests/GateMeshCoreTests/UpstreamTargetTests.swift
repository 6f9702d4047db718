import GateMeshCore
import Testing

@Suite struct UpstreamTargetTests {
    func target(_ provider: String, rest: String, query: String = "", headers: [(String, String)],
                overrides: [String: ProviderConfig] = [:]) throws -> UpstreamTarget {
        let catalogue = ProviderCatalogue(overrides: overrides)
        let route = PassthroughRoute(gateway: "default", provider: provider, rest: rest, shape: .direct)
        return try UpstreamTarget.make(route: route, provider: catalogue.provider(named: provider)!, query: query,
                                       headers: headers.map { (name: $0.0, value: $0.1) })
    }

    @Test func openAIPathAndQueryPassUntouched() throws {
        let t = try target("openai", rest: "/chat/completions", query: "a=1&b=%20x", headers: [("authorization", "Bearer sk-client")])
        #expect(t.url == "https://api.openai.com/v1/chat/completions?a=1&b=%20x")
        #expect(t.headers == [.init("authorization", "Bearer sk-client")])
    }

    @Test func storedKeyReplacesEveryClientCredential() throws {
        let t = try target("anthropic", rest: "/v1/messages",
                           headers: [("x-api-key", "client"), ("authorization", "Bearer client"), ("anthropic-version", "2023-06-01")],
                           overrides: ["anthropic": ProviderConfig(apiKey: "stored")])
        #expect(t.headers == [.init("anthropic-version", "2023-06-01"), .init("x-api-key", "stored")])
    }

    @Test func hopByHopAndGatewayHeadersAreDropped() throws {
        let t = try target("openai", rest: "/models", headers: [
            ("connection", "keep-alive, x-private"), ("x-private", "1"), ("keep-alive", "timeout=5"), ("te", "trailers"),
            ("transfer-encoding", "chunked"), ("upgrade", "h2c"), ("proxy-authorization", "Basic x"), ("host", "node"),
            ("content-length", "10"), ("expect", "100-continue"), ("x-gatemesh-authorization", "Bearer gw"),
            ("cf-aig-authorization", "Bearer gw"), ("x-gatemesh-metadata", "{}"), ("accept", "application/json"),
            ("user-agent", "OpenAI/Python"),
        ])
        #expect(t.headers == [.init("accept", "application/json"), .init("user-agent", "OpenAI/Python")])
    }

    @Test func azureSubstitutesResourceAndDeployment() throws {
        let t = try target("azure-openai", rest: "/my-res/gpt4o/chat/completions", query: "api-version=2024-10-21",
                           headers: [("api-key", "k")])
        #expect(t.url == "https://my-res.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21")
    }

    @Test(arguments: ["/evil.com#/d/chat", "/a@b/d/x", "/only-resource", "/res//x"])
    func azureRejectsNamesThatCouldChangeTheHost(_ rest: String) {
        #expect(throws: GatewayError.self) { try target("azure-openai", rest: rest, headers: []) }
    }

    @Test func googleStoredKeyRemovesTheKeyQueryParameter() throws {
        let t = try target("google-ai-studio", rest: "/v1beta/models/g:generateContent", query: "key=client&alt=sse",
                           headers: [], overrides: ["google-ai-studio": ProviderConfig(apiKey: "stored")])
        #expect(t.url == "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?alt=sse")
        #expect(t.headers == [.init("x-goog-api-key", "stored")])
    }

    @Test func baseURLOverrideWithTrailingSlash() throws {
        let t = try target("openai", rest: "/chat/completions", headers: [],
                           overrides: ["openai": ProviderConfig(baseURL: "http://127.0.0.1:9999/v1/")])
        #expect(t.url == "http://127.0.0.1:9999/v1/chat/completions")
    }

    @Test func repeatedVersionIsDroppedWhereTheBaseEndsInIt() throws {
        #expect(try target("xai", rest: "/v1/chat/completions", headers: []).url == "https://api.x.ai/v1/chat/completions")
        #expect(try target("grok", rest: "/chat/completions", headers: []).url == "https://api.x.ai/v1/chat/completions")
        #expect(try target("openrouter", rest: "/v1/chat/completions", headers: []).url == "https://openrouter.ai/api/v1/chat/completions")
        #expect(try target("mistral", rest: "/v1/chat/completions", headers: []).url == "https://api.mistral.ai/v1/chat/completions")
        #expect(try target("cohere", rest: "/v1/chat", headers: []).url == "https://api.cohere.ai/v1/chat")
    }

    @Test func responseHeadersDropHopByHopAndAltSvc() {
        let out = HeaderPolicy.clientResponseHeaders([
            (name: "content-type", value: "text/event-stream"), (name: "connection", value: "close"),
            (name: "transfer-encoding", value: "chunked"), (name: "alt-svc", value: "h3=\":443\""),
            (name: "content-length", value: "5"), (name: "x-request-id", value: "req_1"),
            (name: "x-gatemesh-provider", value: "spoofed"), (name: "cf-aig-cache-status", value: "HIT"),
        ])
        #expect(out.map(\.name) == ["content-type", "x-request-id"])
    }
}

@Suite struct TokenCheckTests {
    @Test func bearerParsing() {
        #expect(TokenCheck.bearerToken("Bearer abc") == "abc")
        #expect(TokenCheck.bearerToken("bearer  abc") == "abc")
        #expect(TokenCheck.bearerToken("Basic abc") == nil)
        #expect(TokenCheck.bearerToken("Bearer ") == nil)
    }

    @Test func matching() {
        #expect(TokenCheck.matches("t2", anyOf: ["t1", "t2"]))
        #expect(!TokenCheck.matches("t", anyOf: ["t1", "t2"]))
        #expect(!TokenCheck.matches("t1x", anyOf: ["t1"]))
        #expect(!TokenCheck.matches("", anyOf: []))
    }

    @Test func errorBodyIsEscapedJSON() {
        let e = GatewayError.badRequest("a \"quoted\"\nline\u{01}")
        #expect(e.jsonBody == #"{"error":{"type":"invalid_request_error","code":"bad_request","message":"a \"quoted\"\nline\u0001"}}"#)
    }
}
