import CGateMeshOpenSSL
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird

/// `/healthz` and the admin-token-guarded operator endpoints.
struct OperatorAPI: Sendable {
    let state: NodeState
    let logs: LogAPI
    let metrics: NodeMetrics
    let client: UpstreamClient
    let limits: LimitsService
    let cache: ResponseCache

    func health() -> Response {
        json("{\"status\":\"ok\",\"node\":\(JSON.quoted(state.config.node.name))}")
    }

    /// Checks `Authorization: Bearer <admin token>`, then serves the endpoint. The dashboard page
    /// itself is a static shell with no data, served without the token: a browser cannot send a
    /// bearer header when it navigates, so the page asks for the token and sends it on every
    /// `/api/…` call it makes.
    func respond(path: String, request: Request) async throws -> Response {
        if path == "/dashboard" || path == "/dashboard/" {
            try Self.requireGET(request)
            return Self.dashboard()
        }
        guard let token = state.config.admin.token else {
            throw GatewayError.unauthorized("the operator API is disabled: set admin.token in the config (or GATEMESH_ADMIN_TOKEN when running without one)",
                                code: "admin_disabled")
        }
        guard let header = request.headers[.authorization] else {
            throw GatewayError.unauthorized("missing admin token: send Authorization: Bearer <admin token>", code: "missing_admin_token")
        }
        guard let presented = TokenCheck.bearerToken(header), TokenCheck.constantTimeEquals(presented, token) else {
            throw GatewayError.unauthorized("wrong admin token", code: "invalid_admin_token")
        }
        let query = Query(request.uri)
        switch path {
        case "/cluster/status":
            try Self.requireGET(request)
            return json(clusterStatus())
        case "/metrics":
            try Self.requireGET(request)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            let text = metrics.exposition(log: logs.log, inFlight: state.inFlight, client: client)
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        case "/api/logs":
            try Self.requireGET(request)
            return json(try await logs.logs(query))
        case "/api/budgets":
            try Self.requireGET(request)
            return json(limits.report())
        case "/api/analytics":
            try Self.requireGET(request)
            return json(try await logs.analytics(query))
        case "/api/rules", "/api/rules/":
            switch request.method {
            case .get, .head:
                return json(limits.listRules(gateway: query["gateway"]))
            case .post:
                return json(try limits.createRules(try await Self.text(request)), status: .created)
            default:
                throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "GET, POST")
            }
        case _ where path.hasPrefix("/api/rules/"):
            let id = String(path.dropFirst("/api/rules/".count))
            switch request.method {
            case .get, .head:
                return json(try limits.ruleDocument(id: id))
            case .put:
                let (created, body) = try limits.putRule(id: id, try await Self.text(request))
                return json(body, status: created ? .created : .ok)
            case .delete:
                return json(try limits.deleteRule(id: id))
            default:
                throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "GET, PUT, DELETE")
            }
        case "/api/cache", "/api/cache/":
            switch request.method {
            case .get, .head:
                return json(cacheReport())
            case .delete:
                // Everything, or one gateway's entries with ?gateway=ID.
                let gateway = query["gateway"]
                if let gateway, state.config.gateway(gateway) == nil { throw GatewayError.unknownGateway(gateway) }
                let purged = try await cache.purge(gateway: gateway)
                return json("{\"purged\":\(purged)" + (gateway.map { ",\"gateway\":\(JSON.quoted($0))" } ?? "") + "}")
            default:
                throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "GET, DELETE")
            }
        case _ where path.hasPrefix("/api/cache/"):
            let key = String(path.dropFirst("/api/cache/".count))
            guard request.method == .delete else { throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: "DELETE") }
            guard key.utf8.count == 64, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                throw GatewayError.badRequest("a cache key is 64 lowercase hex digits (the x-gatemesh-cache-key response header)", code: "invalid_cache_key")
            }
            let purged = try await cache.purge(key: key)
            return json("{\"purged\":\(purged),\"key\":\(JSON.quoted(key))}")
        case _ where path.hasPrefix("/api/logs/"):
            try Self.requireGET(request)
            let id = String(path.dropFirst("/api/logs/".count))
            guard let body = try await logs.log(id: id) else { throw GatewayError.notFound("no log row with id '\(id)'") }
            return json(body)
        default:
            throw GatewayError.notFound("no operator endpoint at \(path); see docs/http-api.md")
        }
    }

    /// The cache's figures since start and its size in memory and on disk.
    func cacheReport() -> String {
        let f = cache.figures
        let m = cache.memoryFigures
        let d = (try? cache.disk.stats()) ?? (0, 0)
        let lookups = f.hits + f.misses
        let ratio = lookups == 0 ? "null" : String(Double(f.hits) / Double(lookups))
        return """
        {"hits":\(f.hits),"misses":\(f.misses),"bypasses":\(f.bypasses),"hit_ratio":\(ratio),"stored":\(f.stored),\
        "coalesced":\(f.coalesced),"memory":{"entries":\(m.entries),"bytes":\(m.bytes),"limit_bytes":\(cache.config.memoryBytes),\
        "evictions":\(m.evictions)},"disk":{"entries":\(d.0),"bytes":\(d.1),"limit_bytes":\(cache.config.diskBytes)}}
        """
    }

    /// The cluster as this node sees it. Until nodes join each other it is this node alone.
    func clusterStatus() -> String {
        let c = state.config
        let uptime = ContinuousClock.now - state.startedAt
        let self_ = """
        {"name":\(JSON.quoted(c.node.name)),"node_id":\(JSON.quoted(state.identity.nodeID)),"region":\(JSON.quoted(c.node.region)),\
        "address":\(JSON.quoted(state.address.description)),"status":"alive","self":true,"started_at":\(state.startedAtUnix),\
        "uptime_seconds":\(uptime.components.seconds),"in_flight":\(state.inFlight),"requests_served":\(state.served),\
        "starts":\(state.identity.starts)}
        """
        let gateways = c.gateways.map { g in
            "{\"id\":\(JSON.quoted(g.id)),\"authenticated\":\(!g.authTokens.isEmpty)}"
        }.joined(separator: ",")
        return """
        {"cluster":{"size":1,"mode":"single-node"},"members":[\(self_)],"gateways":[\(gateways)],\
        "versions":{"gatemesh":\(JSON.quoted(GateMeshVersion.current)),"libcurl":\(JSON.quoted(UpstreamClient.libcurlVersion)),\
        "libcurl_http2":\(UpstreamClient.libcurlHasHTTP2),"openssl":\(JSON.quoted(String(cString: copenssl_version())))}}
        """
    }

    static let dashboardPage = ByteBuffer(bytes: PackageResources.dashboard_html)

    static func dashboard() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: dashboardPage))
    }

    static func requireGET(_ request: Request) throws(GatewayError) {
        guard request.method == .get || request.method == .head else {
            throw .methodNotAllowed(request.method.rawValue, allowed: "GET")
        }
    }

    func json(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// A request body as UTF-8 text, at most `LimitsService.maxDocumentBytes`.
    static func text(_ request: Request) async throws -> String {
        var request = request
        let buffer = try await ProxyHandler.collect(&request, limit: LimitsService.maxDocumentBytes,
                                                     setting: "the admin API's fixed limit on a rules document")
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw GatewayError.badRequest("the body is not UTF-8 text", code: "invalid_rule")
        }
        guard !text.allSatisfy(\.isWhitespace) else {
            throw GatewayError.badRequest("the body is empty: send a rule object or an array of rules as JSON", code: "invalid_rule")
        }
        return text
    }
}

public enum GateMeshVersion {
    public static let current = "0.1.0"
}
