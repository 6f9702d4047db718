import GateMeshCore
import Testing

@Suite struct PathRouterTests {
    let router = PathRouter(
        catalogue: ProviderCatalogue(overrides: ["custom-ollama": ProviderConfig(baseURL: "http://127.0.0.1:11434/v1")]),
        gateways: ["default", "team-a"])

    func passthrough(_ path: String) throws -> PassthroughRoute {
        guard case .passthrough(let route) = try router.route(path: path) else {
            Issue.record("expected a passthrough for \(path)")
            throw GatewayError.internalError("not a passthrough")
        }
        return route
    }

    @Test func providerPathGoesToTheDefaultGateway() throws {
        let route = try passthrough("/openai/chat/completions")
        #expect(route == PassthroughRoute(gateway: "default", provider: "openai", rest: "/chat/completions", shape: .direct))
    }

    @Test func namedGatewayPath() throws {
        let route = try passthrough("/team-a/anthropic/v1/messages")
        #expect(route == PassthroughRoute(gateway: "team-a", provider: "anthropic", rest: "/v1/messages", shape: .named))
    }

    @Test func cloudflareShapedPath() throws {
        let route = try passthrough("/v1/acct123/team-a/groq/chat/completions")
        #expect(route == PassthroughRoute(gateway: "team-a", provider: "groq", rest: "/chat/completions", shape: .cloudflare(account: "acct123")))
    }

    @Test func cloudflareShapeWithUnknownGatewayIs404() {
        #expect(throws: GatewayError.unknownGateway("nope")) { try router.route(path: "/v1/acct/nope/openai/chat/completions") }
    }

    @Test func aliasAndCustomProviders() throws {
        #expect(try passthrough("/grok/v1/chat/completions").provider == "grok")
        #expect(try passthrough("/custom-ollama/chat/completions").provider == "custom-ollama")
    }

    @Test func unknownCustomProviderIs404() {
        #expect(throws: GatewayError.unknownProvider("custom-vllm")) { try router.route(path: "/custom-vllm/chat/completions") }
    }

    @Test func unknownProviderUnderAGatewayIs404() {
        #expect(throws: GatewayError.unknownProvider("nonesuch")) { try router.route(path: "/team-a/nonesuch/x") }
    }

    @Test func unknownFirstSegmentIs404() throws {
        do {
            _ = try router.route(path: "/nonesuch/chat/completions")
            Issue.record("expected an error")
        } catch {
            #expect(error.status == 404)
            #expect(error.code == "unknown_provider_or_gateway")
        }
    }

    @Test func healthAndOperatorEndpoints() throws {
        #expect(try router.route(path: "/healthz") == .health)
        #expect(try router.route(path: "/cluster/status") == .operatorEndpoint(path: "/cluster/status"))
        #expect(try router.route(path: "/api/logs") == .operatorEndpoint(path: "/api/logs"))
        #expect(try router.route(path: "/metrics") == .operatorEndpoint(path: "/metrics"))
    }

    @Test func unifiedAndUniversalEndpoints() throws {
        #expect(try router.route(path: "/v1/chat/completions") == .unified(gateway: "default", endpoint: "/v1/chat/completions"))
        #expect(try router.route(path: "/team-a/v1/messages") == .unified(gateway: "team-a", endpoint: "/v1/messages"))
        #expect(try router.route(path: "/team-a") == .universal(gateway: "team-a"))
        #expect(try router.route(path: "/v1/acct/team-a") == .universal(gateway: "team-a"))
    }

    @Test func cloudflareShapeNamesTheMissingPiece() throws {
        #expect(throws: GatewayError.unknownProvider("nonesuch")) { try router.route(path: "/v1/acct/team-a/nonesuch/x") }
        #expect(try router.route(path: "/v1/acct/nogw/nonesuch/x") == .unified(gateway: "default", endpoint: "/v1/acct/nogw/nonesuch/x"))
        #expect(throws: GatewayError.unknownGateway("nogw")) { try router.route(path: "/v1/acct/nogw/openai/chat/completions") }
        #expect(try router.route(path: "/v1/models") == .unified(gateway: "default", endpoint: "/v1/models"))
        #expect(try router.route(path: "/v1/audio/speech") == .unified(gateway: "default", endpoint: "/v1/audio/speech"))
        #expect(try router.route(path: "/v1/files/file-abc/content") == .unified(gateway: "default", endpoint: "/v1/files/file-abc/content"))
    }

    @Test(arguments: ["/openai/../secret", "/openai/%2e%2e/x", "/openai/a/./b", "/openai/a\\b", "/openai/x/..%2fsecret", "/openai/x/%2E%2E%2Fy"])
    func dotSegmentsAndBackslashesAreMalformed(_ path: String) {
        #expect(throws: GatewayError.self) { try router.route(path: path) }
        do { _ = try router.route(path: path) } catch { #expect(error.status == 400) }
    }

    @Test func queryIsNotPartOfTheRoute() throws {
        let route = try passthrough("/google-ai-studio/v1beta/models/gemini-2.5-flash:streamGenerateContent")
        #expect(route.rest == "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    }
}
