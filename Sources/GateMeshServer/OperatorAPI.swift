import Foundation
import CGateMeshOpenSSL
import GateMeshCluster
import GateMeshConfig
import GateMeshCore
import GateMeshUpstream
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers

/// `/healthz` and the admin-token-guarded operator endpoints.
struct OperatorAPI: Sendable {
    let state: NodeState
    let reads: ClusterReads
    let metrics: NodeMetrics
    let client: UpstreamClient
    let limits: LimitsService
    let cache: ResponseCache
    let cluster: ClusterService?
    let reloader: ConfigReloader
    let exporter: LogExporter?
    let traces: TraceExporter?

    func health() -> Response {
        json(AdminAnswer.Health(node: state.config.node.name))
    }

    /// Checks `Authorization: Bearer <admin token>`, then serves the endpoint. The dashboard page
    /// itself is a static shell with no data, served without the token: a browser cannot send a
    /// bearer header when it navigates, so the page asks for the token and sends it on every
    /// `/api/…` call it makes.
    func respond(path: String, request: Request, context: BasicRequestContext) async throws -> Response {
        if path == "/dashboard" || path == "/dashboard/" {
            try Self.requireGET(request)
            return Self.dashboard()
        }
        let op = try identify(request)
        try authorize(op, path: path, method: request.method)
        guard request.method != .get, request.method != .head, path.hasPrefix("/api/") || path.hasPrefix("/cluster/members/") else {
            return try await route(request: request, context: context, op: op)
        }
        // A change: it goes into the audit log with the documents before and after.
        let before = snapshot(path)
        let capture = AuditCapture()
        let response = try await AuditCapture.$current.withValue(capture) { try await route(request: request, context: context, op: op) }
        if (200..<300).contains(response.status.code) {
            let after = Self.withoutSecrets(capture.body)
            let now = WallClock.nowMs()
            limits.audit(AuditEntry(id: UUIDv7.make(unixMillis: UInt64(now)), atMs: now, node: state.config.node.name, actor: op.actor,
                                    action: "\(request.method.rawValue) \(path)", before: before, after: after,
                                    team: Self.team(of: path, before: before, after: after)))
        }
        return response
    }

    /// The cache's figures since start and its size in memory and on disk.
    func cacheReport() -> ClusterStatus.Cache {
        let f = cache.figures
        let m = cache.memoryFigures
        let d = (try? cache.disk.stats()) ?? (0, 0)
        let lookups = f.hits + f.misses
        return ClusterStatus.Cache(
            hits: f.hits, misses: f.misses, bypasses: f.bypasses, hitRatio: OrNull(lookups == 0 ? nil : Double(f.hits) / Double(lookups)),
            stored: f.stored, coalesced: f.coalesced,
            memory: .init(entries: m.entries, bytes: m.bytes, limitBytes: cache.config.memoryBytes, evictions: m.evictions),
            disk: .init(entries: d.0, bytes: d.1, limitBytes: cache.config.diskBytes))
    }

    /// The database's size on disk, and what the request log lost to the cap or to the disk.
    func storageReport() -> ClusterStatus.Storage {
        let size = (try? reads.local.log.store.size()) ?? .init()
        let d = reads.local.log.diskFigures
        let now = WallClock.nowMs()
        let recent = d.lastWriteError.flatMap { now - $0.atMs < 60_000 ? "\($0.message) (\(Timestamps.iso($0.atMs)))" : nil }
        return ClusterStatus.Storage(
            fileBytes: size.fileBytes, walBytes: size.walBytes, freeBytes: size.freeBytes,
            maxBytes: OrNull(state.config.storage.maxBytes == 0 ? nil : state.config.storage.maxBytes),
            rowsDeletedForSpace: d.deletedForSpace, rowsDroppedForSpace: d.droppedForSpace, rowsFailedToWrite: d.failedWrites,
            writeError: OrNull(recent))
    }

    /// The cluster as this node sees it: itself, every member, every budget's cluster-wide spend
    /// with each node's contribution, and cache figures.
    func clusterStatus() -> ClusterStatus {
        let c = state.config
        // One snapshot of the membership for the whole answer (each read takes its lock and sorts).
        let view = cluster?.view
        let live = view?.members.filter { $0.state == .alive || $0.state == .suspect } ?? []
        // Each live member's share of the cache key space (rendezvous hashing over them all,
        // suspects included: keys move when a member is dead), to four places.
        let shares = Rendezvous.shares(among: live.map(\.info.name) + [c.node.name])
        func share(_ name: String) -> Double { ((shares[name] ?? 0) * 10_000).rounded() / 10_000 }
        var members = [selfRecord(view: view, share: share(c.node.name))]
        var names = [state.identity.nodeID: c.node.name]
        // Membership keeps time on the monotonic clock: ages are taken there, and a change's wall
        // time is now minus its age.
        let now = ClusterService.monotonicNow(), wallNow = ClusterService.now()
        for m in view?.members ?? [] {
            names[m.info.id] = m.info.name
            members.append(ClusterStatus.Member(
                name: m.info.name, nodeID: m.info.id, region: m.info.region, peerAddress: OrNull(m.info.address), status: "\(m.state)",
                isSelf: false, incarnation: m.incarnation, lastHeardMsAgo: OrNull(m.lastHeardAt.map { now - $0 }), rttMs: OrNull(m.rttMs),
                stateSince: Timestamps.iso(wallNow - (now - m.changedAt)), keySpaceShare: share(m.info.name),
                gatewaysDigest: OrNull(m.info.configDigest.isEmpty ? nil : m.info.configDigest)))
        }
        let budgets = limits.contributions().map { item in
            let measure = item.rule.measure
            let total = item.byNode.values.reduce((spent: Int64(0), reserved: Int64(0))) { ($0.spent + $1.spent, $0.reserved + $1.reserved) }
            let leased = item.rule.enforcement != .soft
            return ClusterStatus.Budget(
                rule: item.rule.id, gateway: item.rule.gateway, scope: item.scope, enforcement: item.rule.enforcement.rawValue, leased: leased,
                pool: item.pool.map { Amount($0, measure) }, limit: Amount(item.rule.limit, measure), spent: Amount(total.spent, measure),
                reserved: Amount(total.reserved, measure),
                byNode: item.byNode.sorted { $0.key < $1.key }.map { id, v in
                    .init(nodeID: id, name: OrNull(names[id]), spent: Amount(v.spent, measure), reserved: Amount(v.reserved, measure),
                          rights: leased ? Amount(v.rights, measure) : nil)
                })
        }
        return ClusterStatus(
            cluster: .init(size: 1 + live.count, mode: cluster == nil ? "single-node" : "cluster"), members: members, budgets: budgets,
            cache: cacheReport(), storage: storageReport(), gateways: c.gateways.map { .init(id: $0.id, authenticated: !$0.authTokens.isEmpty) },
            config: Self.configAgreement(mine: (c.node.name, state.loaded.sharedDigest), members: live.map { ($0.info.name, $0.info.configDigest) }),
            versions: .init(gatemesh: GateMeshVersion.current, libcurl: UpstreamClient.libcurlVersion, libcurlHTTP2: UpstreamClient.libcurlHasHTTP2,
                            openssl: String(cString: copenssl_version())))
    }

    /// This node's own record in the status: what only it knows about itself.
    private func selfRecord(view: ClusterService.View?, share: Double) -> ClusterStatus.Member {
        let c = state.config
        let loaded = state.loaded
        return ClusterStatus.Member(
            name: c.node.name, nodeID: state.identity.nodeID, region: c.node.region, address: state.address.description,
            peerAddress: OrNull(cluster?.me.address), status: "alive", isSelf: true, incarnation: view?.incarnation ?? 0,
            healthScore: view?.healthScore ?? 0, forgedRecords: view?.forgedRecords ?? 0,
            membersAgreed: OrNull(cluster?.membersAgreed.withLockedValue { $0 }), startedAt: state.startedAtUnix,
            uptimeSeconds: (ContinuousClock.now - state.startedAt).components.seconds, inFlight: state.inFlight,
            requestsServed: state.served, starts: state.identity.starts, configDigest: loaded.digest,
            configLoadedAt: Timestamps.iso(loaded.atMs), keySpaceShare: share, gatewaysDigest: OrNull(loaded.sharedDigest))
    }

    /// Whether the live nodes have the same gateway settings: the digest most of them have (ties
    /// go to this node's), and the nodes whose digest differs from it. Members of builds that do
    /// not send a digest are left out.
    static func configAgreement(mine: (name: String, digest: String), members: [(name: String, digest: String)]) -> ClusterStatus.ConfigAgreement {
        let all = [mine] + members.filter { !$0.digest.isEmpty }
        var counts: [String: Int] = [:]
        for m in all { counts[m.digest, default: 0] += 1 }
        let common = counts.max { a, b in
            a.value != b.value ? a.value < b.value : b.key == mine.digest || (a.key != mine.digest && a.key > b.key)
        } ?? (mine.digest, 1)
        let differing = all.filter { $0.digest != common.key }.map(\.name).sorted()
        return .init(gatewaysAgree: differing.isEmpty, gatewaysDigest: common.key, differing: differing)
    }

    /// The current document of what a change at `path` is about (for the audit log's "before").
    func snapshot(_ path: String) -> String? {
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "api" else { return nil }
        let id = String(parts[2])
        switch parts[1] {
        case "rules": return try? limits.ruleDocument(id: id)
        case "orgs": return try? limits.entityDocument(.org, id: id)
        case "teams": return try? limits.entityDocument(.team, id: id)
        case "keys": return try? limits.entityDocument(.key, id: id)
        case "tokens": return limits.directory.withLockedValue { $0.tokens[id]?.shown }
        default: return nil
        }
    }

    /// An answer with the secrets it shows once (`key`, `token`) taken out.
    static func withoutSecrets(_ body: String?) -> String? {
        guard let body, body.contains(VirtualKey.prefix) || body.contains(OperatorToken.prefix) else { return body }
        guard case .object(var o)? = JSONValue.parse(body) else { return nil }
        o["key"] = nil
        o["token"] = nil
        var out = ""
        JSONValue.object(o).write(to: &out)
        return out
    }

    /// The team a change concerns: a key's team, or the team itself.
    static func team(of path: String, before: String?, after: String?) -> String? {
        func field(_ doc: String?, _ name: String) -> String? {
            guard let doc, case .object(let o)? = JSONValue.parse(doc) else { return nil }
            return o[name]?.stringValue
        }
        if path.hasPrefix("/api/keys") { return field(after, "team") ?? field(before, "team") }
        if path.hasPrefix("/api/teams") { return field(after, "id") ?? field(before, "id") }
        if path.hasPrefix("/api/tokens") { return field(after, "team") ?? field(before, "team") }
        return nil
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

    /// An answer of the admin API's `Codable` types.
    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        json(AdminJSON.encode(value), status: status)
    }

    func json(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        AuditCapture.current?.body = body
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// `POST /api/keys/{id}/rotate`'s body: `{"grace": "1h"}` (a duration, or seconds), or none
    /// for no grace period.
    static func grace(_ request: Request) async throws -> Int64 {
        var request = request
        let buffer = try await ProxyHandler.collect(&request, limit: 64 * 1024, setting: "the admin API's fixed limit on a rotate request")
        guard buffer.readableBytes > 0 else { return 0 }
        guard case .object(let o)? = JSONValue.parse(buffer.readableBytesView) else {
            throw GatewayError.badRequest("the body is a JSON object such as {\"grace\": \"1h\"}", code: "invalid_entity")
        }
        guard let value = o["grace"] else { return 0 }
        if let seconds = value.intValue {
            // Range-checked before it is multiplied: a huge number is a 400, not a trap.
            guard (0...Int(LimitsService.maxGraceMs / 1000)).contains(seconds) else {
                throw GatewayError.badRequest("grace must be between 0s and 30d", code: "invalid_entity")
            }
            return Int64(seconds) * 1000
        }
        guard let text = value.stringValue, let ms = Units.durationMs(text) else {
            throw GatewayError.badRequest("'grace' is a duration such as 30m or 1h, or a number of seconds", code: "invalid_entity")
        }
        return Int64(ms)
    }

    /// A request body as UTF-8 text, at most `LimitsService.maxDocumentBytes`.
    static func text(_ request: Request, what: String = "rule") async throws -> String {
        var request = request
        let buffer = try await ProxyHandler.collect(&request, limit: LimitsService.maxDocumentBytes,
                                                     setting: "the admin API's fixed limit on a rules document")
        guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
            throw GatewayError.badRequest("the body is not UTF-8 text", code: "invalid_rule")
        }
        guard !text.allSatisfy(\.isWhitespace) else {
            throw GatewayError.badRequest(what == "rule" ? "the body is empty: send a rule object or an array of rules as JSON"
                                              : "the body is empty: send the \(what) as a JSON object", code: what == "rule" ? "invalid_rule" : "invalid_entity")
        }
        return text
    }
}

public enum GateMeshVersion {
    public static let current = "0.1.0"
}

/// The body of the operator API's answer to a change, for the audit log.
final class AuditCapture: @unchecked Sendable {
    @TaskLocal static var current: AuditCapture?
    private let lock = NIOLock()
    private var captured: String?
    var body: String? {
        get { lock.withLock { captured } }
        set { lock.withLock { captured = newValue } }
    }
}
