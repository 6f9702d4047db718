import Foundation
import GateMeshCore
import HTTPTypes
import Hummingbird
import HummingbirdCore

/// The operator API's request context: Hummingbird's own, the API that serves the request, the
/// caller its token named, and the query (with a `team_admin`'s team set).
struct OperatorContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var api: OperatorAPI?
    var op = Operator(actor: "", role: .viewer, team: nil)
    var query = Query()

    /// Required by `RequestContext`; the node makes its contexts from the request's own instead.
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    init(_ core: CoreRequestContextStorage, api: OperatorAPI, op: Operator, query: Query) {
        coreContext = core
        self.api = api
        self.op = op
        self.query = query
    }

    /// The API serving the request (always set by `OperatorAPI.route`).
    var served: OperatorAPI { api! }

    /// The path parameter `name` (`/api/rules/:id`).
    func parameter(_ name: String) -> String { parameters.get(name) ?? "" }
}

/// The operator endpoints in Hummingbird's router. Each path answers the methods it takes (`HEAD`
/// as `GET`) and a `405` with `Allow` for any other, as the router alone would not (it answers
/// `404`); a path with no route is the operator API's JSON `404`.
extension OperatorAPI {
    typealias Handler = @Sendable (Request, OperatorContext) async throws -> Response

    /// Serves an operator endpoint for a caller whose role allows it.
    func route(request: Request, context: BasicRequestContext, op: Operator) async throws -> Response {
        var query = Query(request.uri)
        // A team_admin reads its own team's figures only.
        if op.role == .teamAdmin, let team = op.team { query = query.setting("team", team) }
        return try await Self.routes.respond(to: request, context: OperatorContext(context.coreContext, api: self, op: op, query: query))
    }

    static let routes: RouterResponder<OperatorContext> = {
        let router = Router(context: OperatorContext.self)
        router.add(middleware: NoEndpoint())
        func on(_ path: RouterPath, get: Handler? = nil, post: Handler? = nil, put: Handler? = nil, delete: Handler? = nil) {
            let handlers: [(HTTPRequest.Method, Handler?)] = [(.get, get), (.head, get), (.post, post), (.put, put), (.delete, delete)]
            let allowed = handlers.filter { $0.1 != nil && $0.0 != .head }.map(\.0.rawValue).joined(separator: ", ")
            for (method, handler) in handlers {
                router.on(path, method: method, use: handler ?? { request, _ in throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: allowed) })
            }
            for method in [HTTPRequest.Method.patch, .options, .trace] {
                router.on(path, method: method) { request, _ -> Response in throw GatewayError.methodNotAllowed(request.method.rawValue, allowed: allowed) }
            }
        }
        // Tokens and the audit log.
        on("/api/tokens", get: { _, c in c.served.json(c.served.limits.tokenList()) },
           post: { r, c in c.served.json(try c.served.limits.createToken(try await text(r, what: "token")), status: .created) })
        on("/api/tokens/:id", delete: { _, c in c.served.json(try c.served.limits.revokeToken(id: c.parameter("id"))) })
        on("/api/audit", get: { _, c in
            c.served.json(c.served.limits.auditLog(limit: try c.query.int("limit", range: 1...1000) ?? 100, cursor: c.query["cursor"],
                                                   team: c.op.role == .teamAdmin ? c.op.team : nil))
        })
        // The cluster.
        on("/cluster/status", get: { _, c in c.served.json(c.served.clusterStatus()) })
        on("/cluster/members/:name/forget", post: { _, c in
            guard let cluster = c.served.cluster else { throw GatewayError.notFound("this node runs alone: there are no members to forget") }
            return c.served.json(try cluster.forget(name: c.parameter("name")))
        })
        // Orgs, teams and keys.
        for kind in [EntityKind.org, .team, .key] {
            on("/api/\(kind.rawValue)s", get: { _, c in c.served.entities(kind, c) }, post: { r, c in try await c.served.create(kind, r, c) })
            on("/api/\(kind.rawValue)s/:id", get: { _, c in try c.served.entity(kind, c) }, put: { r, c in try await c.served.put(kind, r, c) },
               delete: { _, c in try c.served.delete(kind, c) })
        }
        on("/api/keys/:id/rotate", post: { r, c in
            try c.served.requireTeam(c.op, key: c.parameter("id"))
            return c.served.json(try c.served.limits.rotateKey(id: c.parameter("id"), graceMs: try await grace(r)))
        })
        // The config.
        on("/api/config", get: { _, c in
            let loaded = c.served.state.loaded
            return c.served.json(AdminAnswer.Config(digest: loaded.digest, gatewaysDigest: loaded.sharedDigest, loadedAt: Timestamps.iso(loaded.atMs),
                                                    reloadable: c.served.reloader.source != nil))
        })
        on("/api/config/reload", post: { _, c in
            let outcome = try c.served.reloader.reload(trigger: "POST /api/config/reload")
            return c.served.json(AdminAnswer.Reload(changed: outcome.changed, digest: outcome.digest, gatewaysDigest: outcome.sharedDigest))
        })
        // What the node has seen.
        on("/metrics", get: { _, c in c.served.metricsText() })
        // The request log: the whole cluster's, or one node's (`?node=`).
        on("/api/logs", get: { _, c in c.served.json(try await c.served.reads.logs(c.query)) })
        on("/api/logs/:id", get: { _, c in
            c.served.json(try await c.served.reads.log(id: c.parameter("id"), team: c.op.role == .teamAdmin ? c.op.team ?? "" : nil, query: c.query))
        })
        on("/api/analytics", get: { _, c in c.served.json(try await c.served.reads.analytics(c.query)) })
        on("/api/budgets", get: { _, c in c.served.budgets(c) })
        // Rules.
        on("/api/rules", get: { _, c in c.served.json(c.served.limits.listRules(gateway: c.query["gateway"])) },
           post: { r, c in c.served.json(try c.served.limits.createRules(try await text(r)), status: .created) })
        on("/api/rules/:id", get: { _, c in c.served.json(try c.served.limits.ruleDocument(id: c.parameter("id"))) },
           put: { r, c in
               let (created, body) = try c.served.limits.putRule(id: c.parameter("id"), try await text(r))
               return c.served.json(body, status: created ? .created : .ok)
           },
           delete: { _, c in c.served.json(try c.served.limits.deleteRule(id: c.parameter("id"))) })
        // The response cache.
        on("/api/cache", get: { _, c in c.served.json(c.served.cacheReport()) }, delete: { _, c in try await c.served.purge(c) })
        on("/api/cache/:key", delete: { _, c in try await c.served.purge(key: c.parameter("key")) })
        return router.buildResponder()
    }()

    /// A path with no route: the operator API's own 404, not the router's empty one.
    struct NoEndpoint: RouterMiddleware {
        typealias Context = OperatorContext
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            do {
                return try await next(request, context)
            } catch let error as HTTPError where error.status == .notFound {
                throw OperatorAPI.noEndpoint(request.uri.path)
            }
        }
    }

    static func noEndpoint(_ path: String) -> GatewayError {
        GatewayError.notFound("no operator endpoint at \(path); see docs/http-api.md")
    }

    // MARK: - Handlers with more to them than a call

    private func entities(_ kind: EntityKind, _ c: OperatorContext) -> Response {
        json(limits.entityList(kind, team: kind == .key ? c.query["team"] : nil))
    }

    private func create(_ kind: EntityKind, _ request: Request, _ c: OperatorContext) async throws -> Response {
        let text = try await Self.text(request, what: kind.rawValue)
        let team = c.op.role == .teamAdmin ? c.op.team ?? "" : nil
        return json(kind == .key ? try limits.createKey(text, teamAdminOf: team) : try limits.createEntity(kind, text), status: .created)
    }

    private func entity(_ kind: EntityKind, _ c: OperatorContext) throws -> Response {
        let id = c.parameter("id")
        if kind == .key { try requireTeam(c.op, key: id) }
        return json(try limits.entityDocument(kind, id: id))
    }

    private func put(_ kind: EntityKind, _ request: Request, _ c: OperatorContext) async throws -> Response {
        let id = c.parameter("id")
        if kind == .key { try requireTeam(c.op, key: id) }
        let text = try await Self.text(request, what: kind.rawValue)
        if kind == .key { return json(try limits.putKey(id: id, text, teamAdminOf: c.op.role == .teamAdmin ? c.op.team ?? "" : nil)) }
        let (created, body) = try limits.putEntity(kind, id: id, text)
        return json(body, status: created ? .created : .ok)
    }

    private func delete(_ kind: EntityKind, _ c: OperatorContext) throws -> Response {
        let id = c.parameter("id")
        if kind == .key { try requireTeam(c.op, key: id) }
        return json(kind == .key ? try limits.revokeKey(id: id) : try limits.deleteEntity(kind, id: id))
    }

    private func metricsText() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        let text = metrics.exposition(log: reads.local.log, inFlight: state.inFlight, client: client, limits: limits, cluster: cluster, exporter: exporter, traces: traces)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Every budget; a `team_admin` sees its team's and its keys' rules only.
    private func budgets(_ c: OperatorContext) -> Response {
        guard c.op.role == .teamAdmin, let team = c.op.team else { return json(limits.report()) }
        let keys = limits.directory.withLockedValue { d in Set(d.keys.values.filter { $0.team == team }.map(\.id)) }
        return json(limits.report(only: { rule in
            rule.id.hasPrefix("team:\(team):") || (rule.id.hasPrefix("key:") && keys.contains(String(rule.id.dropFirst(4).prefix { $0 != ":" })))
        }))
    }

    /// Purges everything, or one gateway's entries with `?gateway=ID`.
    private func purge(_ c: OperatorContext) async throws -> Response {
        let gateway = c.query["gateway"]
        if let gateway, state.config.gateway(gateway) == nil { throw GatewayError.unknownGateway(gateway) }
        return json(AdminAnswer.Purged(purged: try await cache.purge(gateway: gateway), gateway: gateway))
    }

    private func purge(key: String) async throws -> Response {
        guard key.utf8.count == 64, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw GatewayError.badRequest("a cache key is 64 lowercase hex digits (the x-gatemesh-cache-key response header)", code: "invalid_cache_key")
        }
        return json(AdminAnswer.Purged(purged: try await cache.purge(key: key), key: key))
    }
}
