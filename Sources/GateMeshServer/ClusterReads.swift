import Foundation
import GateMeshAccounting
import GateMeshCluster
import GateMeshCore

/// `GET /api/logs`, `GET /api/logs/{id}` and `GET /api/analytics` for the whole cluster: the node
/// that is asked reads its own log and asks every live peer for its part over the peer link, in
/// parallel, then adds the parts up (`AnalyticsPartial`, `LogPageMerge`). With `?node=` only that
/// node is read. A peer that does not answer within the read's deadline (`?timeout=`, 2 s by
/// default), or that is dead, is named under `missing_nodes`; the answer is what the others hold.
///
/// Why ask at read time rather than replicate rollups: a read costs one query per node, only when
/// an operator looks, and sees every row the moment it is written, with any filter and grouping
/// (rollups would fix both in advance, and cost every node gossip all the time). See
/// `docs/architecture.md`.
final class ClusterReads: PeerReader {
    let local: LogAPI
    let cluster: ClusterService?
    let nodeName: String

    static let defaultTimeoutMs: Int64 = 2_000

    init(local: LogAPI, cluster: ClusterService?, nodeName: String) {
        self.local = local
        self.cluster = cluster
        self.nodeName = nodeName
        cluster?.serveReads(self)
    }

    // MARK: - The operator's side

    func analytics(_ query: Query) async throws -> String {
        let ask = try LogAPI.AnalyticsAsk(query, nowMs: WallClock.nowMs())
        let reach = try self.reach(query)
        var total = reach.me ? try await local.partial(ask) : AnalyticsPartial()
        var (parts, missing) = await gather(.analytics, ask.forPeers(reach.query), reach)
        for (node, bytes) in parts {
            guard let theirs = try? JSONDecoder().decode(AnalyticsPartial.self, from: Data(bytes)) else {
                missing.append((node, Self.undecodable))
                continue
            }
            total.merge(theirs)
        }
        return LogAPI.analytics(total.result, ask, extra: nodes(reach, missing: missing))
    }

    func logs(_ query: Query) async throws -> String {
        let reach = try self.reach(query)
        let limit = try LogAPI.limit(query)
        var pages = reach.me ? [try await local.page(reach.query)] : []
        var (parts, missing) = await gather(.logs, reach.query.items, reach)
        for (node, bytes) in parts {
            guard let page = Self.page(bytes) else {
                missing.append((node, Self.undecodable))
                continue
            }
            pages.append(page)
        }
        let merged = LogPageMerge.merge(pages, limit: limit)
        return JSONValue.object(JSONObject([
            ("data", .array(merged.rows)), ("next_cursor", LogAPI.orNull(merged.nextCursor)),
        ] + nodes(reach, missing: missing))).text
    }

    /// The row with `id`, from whichever node holds it; with `team`, only a row of that team.
    func log(id: String, team: String?, query: Query) async throws -> String {
        let reach = try self.reach(query)
        if reach.me, let row = try await local.row(id: id, team: team) { return row.text }
        var items = reach.query.items
        items["id"] = id
        if let team { items["team"] = team }
        let (parts, missing) = await gather(.log, items, reach)
        for (_, bytes) in parts {
            if let row = JSONValue.parse(bytes), !row.isNull { return row.text }
        }
        let unseen = missing.isEmpty ? "" : "; not asked or not answering: " + missing.map(\.node).sorted().joined(separator: ", ")
        throw GatewayError.notFound("no log row with id '\(id)'\(unseen)")
    }

    /// Which nodes a read reaches: this one or not, the peers to ask, and those named missing
    /// from the start (dead, or `?node=` names a dead member).
    struct Reach {
        var me: Bool
        var peers: [String]
        var missing: [(node: String, why: String)]
        var timeoutMs: Int64
        /// The query without the read's own parameters (`node`, `timeout`), as the nodes read it.
        var query: Query

        var silence: String { "did not answer within \(timeoutMs) ms" }
    }

    func reach(_ query: Query) throws(GatewayError) -> Reach {
        let timeoutMs = try query.duration("timeout") ?? Self.defaultTimeoutMs
        guard (100...60_000).contains(timeoutMs) else {
            throw GatewayError.badRequest("timeout must be from 100ms to 60s, got '\(query["timeout"] ?? "")'", code: "invalid_query")
        }
        let stripped = query.removing("node", "timeout")
        let peers = cluster?.readPeers ?? (ask: [], dead: [])
        guard let node = query["node"] else {
            return Reach(me: true, peers: peers.ask, missing: peers.dead.map { ($0, "dead") }, timeoutMs: timeoutMs, query: stripped)
        }
        if node == nodeName { return Reach(me: true, peers: [], missing: [], timeoutMs: timeoutMs, query: stripped) }
        guard let cluster, cluster.isMember(node) else {
            throw GatewayError.notFound("no node named '\(node)' in the cluster (see GET /cluster/status)")
        }
        if peers.ask.contains(node) { return Reach(me: false, peers: [node], missing: [], timeoutMs: timeoutMs, query: stripped) }
        return Reach(me: false, peers: [], missing: [(node, peers.dead.contains(node) ? "dead" : "left the cluster")],
                     timeoutMs: timeoutMs, query: stripped)
    }

    static let undecodable = "its answer did not decode"

    /// Asks every peer of `reach` at once: the parts that came, and the nodes missing (those of
    /// `reach`, then the peers that failed or did not answer in time, and why).
    private func gather(_ read: ReadCodec.Read, _ items: [String: String], _ reach: Reach)
        async -> (parts: [(node: String, bytes: [UInt8])], missing: [(node: String, why: String)]) {
        var parts: [(node: String, bytes: [UInt8])] = [], missing = reach.missing
        guard let cluster, !reach.peers.isEmpty else { return (parts, missing) }
        await withTaskGroup(of: (String, ReadCodec.Answer?).self) { group in
            for peer in reach.peers {
                group.addTask { (peer, await cluster.read(read, query: items, from: peer, timeoutMs: reach.timeoutMs)) }
            }
            for await (node, answer) in group {
                switch answer {
                case .part(let bytes)?: parts.append((node, bytes))
                case .failed(let why)?: missing.append((node, why))
                case nil: missing.append((node, reach.silence))
                }
            }
        }
        return (parts, missing)
    }

    /// `nodes` (those whose rows the answer holds) and `missing_nodes` (those it lacks, and why).
    func nodes(_ reach: Reach, missing: [(node: String, why: String)]) -> [(String, JSONValue)] {
        let gone = Set(missing.map(\.node))
        let answered = ((reach.me ? [nodeName] : []) + reach.peers).filter { !gone.contains($0) }.sorted()
        return [
            ("nodes", .array(answered.map(JSONValue.string))),
            ("missing_nodes", .array(missing.sorted { $0.node < $1.node }.map { node, why in
                .object(JSONObject([("node", .string(node)), ("reason", .string(why))]))
            })),
        ]
    }

    /// A peer's page: `{"data": [rows], "more": bool}`.
    static func page(_ bytes: [UInt8]) -> LogPageMerge.Page<JSONValue>? {
        guard let value = JSONValue.parse(bytes), let rows = value["data"]?.arrayValue, let more = value["more"]?.boolValue else { return nil }
        var out: [(id: String, row: JSONValue)] = []
        for row in rows {
            guard let id = row["log_id"]?.stringValue else { return nil }
            out.append((id, row))
        }
        return LogPageMerge.Page(rows: out, more: more)
    }

    // MARK: - A peer's side

    func answer(_ read: ReadCodec.Read, query items: [String: String], budget: Int) async -> ReadCodec.Answer {
        let query = Query(items: items)
        do {
            switch read {
            case .analytics:
                let ask = try LogAPI.AnalyticsAsk(query, nowMs: WallClock.nowMs())
                let bytes = Array(try JSONEncoder().encode(try await local.partial(ask)))
                guard bytes.count <= budget else { return .failed("its part (\(bytes.count) bytes) is over the peer frame limit; choose a larger step") }
                return .part(bytes)
            case .logs:
                var page = try await local.page(query)
                // Rows that do not fit in a frame are left for the next page.
                while true {
                    let bytes = JSONValue.object(JSONObject([("data", .array(page.rows.map(\.row))), ("more", .bool(page.more))])).bytes
                    if bytes.count <= budget { return .part(bytes) }
                    guard page.rows.count > 1 else { return .failed("one log row is over the peer frame limit") }
                    page.rows.removeLast(max(1, page.rows.count / 4))
                    page.more = true
                }
            case .log:
                guard let id = items["id"] else { return .failed("a read of one row names no id") }
                let row = try await local.row(id: id, team: items["team"]) ?? .null
                let bytes = row.bytes
                guard bytes.count <= budget else { return .failed("the row (\(bytes.count) bytes) is over the peer frame limit") }
                return .part(bytes)
            }
        } catch let error as GatewayError {
            return .failed(error.message)
        } catch {
            return .failed("\(error)")
        }
    }
}
