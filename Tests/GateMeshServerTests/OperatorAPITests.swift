import Foundation
import GateMeshCore
import GateMeshServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// The operator API through Hummingbird's test client: the node's own responder, called with no
/// socket (`.router`), over a real store in a temporary data directory.
@Suite struct OperatorAPITests {
    static let admin: HTTPFields = [.authorization: "Bearer adm"]

    func withNode(_ configure: (inout Settings) -> Void = { _ in }, _ test: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        var config = Settings()
        config.node.name = "op-1"
        config.node.listen = ListenAddress(host: "127.0.0.1", port: 0)
        config.node.dataDir = NSTemporaryDirectory() + "gatemesh-operator-test-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: config.node.dataDir) }
        config.admin.token = "adm"
        configure(&config)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let node = try GatewayNode(config: config, logger: logger)
        defer { node.shutdown() }
        try await node.application().test(.router, test)
    }

    /// The answer's JSON object.
    func object(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
    }

    func error(_ response: TestResponse) throws -> (code: String, message: String) {
        let error = try #require(try object(response)["error"] as? [String: Any])
        return (try #require(error["code"] as? String), try #require(error["message"] as? String))
    }

    @Test func healthNeedsNoTokenAndEverythingElseDoes() async throws {
        try await withNode { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(try object(health)["node"] as? String == "op-1")

            for path in ["/cluster/status", "/api/rules", "/metrics", "/api/nothing-here"] {
                let refused = try await client.execute(uri: path, method: .get)
                #expect(refused.status == .unauthorized, "\(path)")
                #expect(refused.headers[.contentType] == "application/json")
                let wrong = try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer nope"])
                #expect(wrong.status == .unauthorized, "\(path)")
            }
            // With the token, an unknown path is a 404 that says where the endpoints are.
            let unknown = try await client.execute(uri: "/api/nothing-here", method: .get, headers: Self.admin)
            #expect(unknown.status == .notFound)
            #expect(try error(unknown).message.contains("docs/http-api.md"))
        }
    }

    @Test func withoutAnAdminTokenTheOperatorAPIIsOff() async throws {
        try await withNode({ $0.admin.token = nil }) { client in
            let off = try await client.execute(uri: "/cluster/status", method: .get, headers: Self.admin)
            #expect(off.status == .unauthorized)
            #expect(try error(off).code == "admin_disabled")
        }
    }

    @Test func theClusterStatusOfALoneNodeListsItAndItsGateways() async throws {
        try await withNode { client in
            let response = try await client.execute(uri: "/cluster/status", method: .get, headers: Self.admin)
            #expect(response.status == .ok)
            #expect(response.headers[.cacheControl] == "no-store")
            let status = try object(response)
            let cluster = try #require(status["cluster"] as? [String: Any])
            #expect(cluster["mode"] as? String == "single-node" && cluster["size"] as? Int == 1)
            let members = try #require(status["members"] as? [[String: Any]])
            #expect(members.count == 1 && members[0]["name"] as? String == "op-1" && members[0]["self"] as? Bool == true)
            let gateways = try #require(status["gateways"] as? [[String: Any]])
            #expect(gateways.map { $0["id"] as? String } == ["default"])
            // A method the endpoint does not take: 405 naming those it does.
            let post = try await client.execute(uri: "/cluster/status", method: .post, headers: Self.admin)
            #expect(post.status == .methodNotAllowed && post.headers[.allow] == "GET")
            let patch = try await client.execute(uri: "/api/rules", method: .patch, headers: Self.admin)
            #expect(patch.status == .methodNotAllowed && patch.headers[.allow] == "GET, POST")
            let get = try await client.execute(uri: "/api/rules/some-id/", method: .post, headers: Self.admin)
            #expect(get.status == .methodNotAllowed && get.headers[.allow] == "GET, PUT, DELETE")
            // A trailing slash is the same path; HEAD is answered as GET (the server leaves the body out).
            #expect(try await client.execute(uri: "/api/rules/", method: .get, headers: Self.admin).status == .ok)
            #expect(try await client.execute(uri: "/cluster/status", method: .head, headers: Self.admin).status == .ok)
        }
    }

    @Test func aRuleIsMadeReadReplacedAndDeleted() async throws {
        try await withNode { client in
            let rule = #"{"id":"team-red-rpm","gateway":"default","requests":60,"scope":{"only":{"metadata.team":"red"}},"window":{"sliding":"1m"}}"#
            let made = try await client.execute(uri: "/api/rules", method: .post, headers: Self.admin, body: ByteBuffer(string: rule))
            #expect(made.status == .created)
            let list = try object(try await client.execute(uri: "/api/rules", method: .get, headers: Self.admin))
            let rules = try #require(list["rules"] as? [[String: Any]])
            #expect(list["count"] as? Int == 1 && rules.first?["id"] as? String == "team-red-rpm")
            #expect(rules.first?["source"] as? String == "api" && rules.first?["kind"] as? String == "rate_limit")

            let again = try await client.execute(uri: "/api/rules", method: .post, headers: Self.admin, body: ByteBuffer(string: rule))
            #expect(again.status == .conflict)

            let replaced = try await client.execute(uri: "/api/rules/team-red-rpm", method: .put, headers: Self.admin,
                                                    body: ByteBuffer(string: rule.replacing("\"requests\":60", with: "\"requests\":30")))
            #expect(replaced.status == .ok)
            let one = try object(try await client.execute(uri: "/api/rules/team-red-rpm", method: .get, headers: Self.admin))
            #expect(one["requests"] as? Int == 30)

            let bad = try await client.execute(uri: "/api/rules", method: .post, headers: Self.admin,
                                               body: ByteBuffer(string: #"{"id":"x","gateway":"nowhere","requests":1,"window":{"fixed":"1m"}}"#))
            #expect(bad.status == .badRequest)
            #expect(try error(bad).message.contains("nowhere"))

            let deleted = try await client.execute(uri: "/api/rules/team-red-rpm", method: .delete, headers: Self.admin)
            #expect(deleted.status == .ok)
            let gone = try await client.execute(uri: "/api/rules/team-red-rpm", method: .get, headers: Self.admin)
            #expect(gone.status == .notFound)
        }
    }

    @Test func aKeysSecretIsShownOnceAndAViewerOnlyReads() async throws {
        try await withNode { client in
            let org = try await client.execute(uri: "/api/orgs", method: .post, headers: Self.admin, body: ByteBuffer(string: #"{"id":"acme"}"#))
            #expect(org.status == .created)
            let team = try await client.execute(uri: "/api/teams", method: .post, headers: Self.admin,
                                                body: ByteBuffer(string: #"{"id":"red","org":"acme"}"#))
            #expect(team.status == .created)
            let orphan = try await client.execute(uri: "/api/teams", method: .post, headers: Self.admin,
                                                  body: ByteBuffer(string: #"{"id":"blue","org":"nobody"}"#))
            #expect(orphan.status == .badRequest)

            let key = try object(try await client.execute(uri: "/api/keys", method: .post, headers: Self.admin,
                                                          body: ByteBuffer(string: #"{"team":"red","name":"ci-bot"}"#)))
            let secret = try #require(key["key"] as? String)
            #expect(secret.hasPrefix("gmk_"))
            let list = try await client.execute(uri: "/api/keys?team=red", method: .get, headers: Self.admin)
            let listed = String(buffer: list.body)
            #expect(listed.contains("ci-bot") && !listed.contains(secret))

            let token = try object(try await client.execute(uri: "/api/tokens", method: .post, headers: Self.admin,
                                                            body: ByteBuffer(string: #"{"role":"viewer","name":"dashboards"}"#)))
            let viewer: HTTPFields = [.authorization: "Bearer \(try #require(token["token"] as? String))"]
            #expect(try await client.execute(uri: "/api/keys", method: .get, headers: viewer).status == .ok)
            let change = try await client.execute(uri: "/api/orgs", method: .post, headers: viewer, body: ByteBuffer(string: #"{"id":"other"}"#))
            #expect(change.status == .forbidden)
            #expect(try await client.execute(uri: "/api/tokens", method: .get, headers: viewer).status == .forbidden)
        }
    }

    @Test func theBudgetsReportEveryRuleWithItsFiguresAndRights() async throws {
        try await withNode { client in
            let rules = #"[{"id":"daily","gateway":"default","usd":"2.5","window":{"calendar":"day"},"enforcement":"bounded"},"#
                + #"{"id":"rpm","gateway":"default","requests":60,"window":{"fixed":"1m"},"action":"block"}]"#
            let made = try await client.execute(uri: "/api/rules", method: .post, headers: Self.admin, body: ByteBuffer(string: rules))
            #expect(made.status == .created)
            let report = try object(try await client.execute(uri: "/api/budgets", method: .get, headers: Self.admin))
            #expect((report["time"] as? String)?.hasSuffix("Z") == true)
            let listed = try #require(report["rules"] as? [[String: Any]])
            #expect(listed.map { $0["id"] as? String } == ["daily", "rpm"])
            let daily = listed[0], rpm = listed[1]
            // Dollars as decimal strings, counts as numbers.
            #expect(daily["limit"] as? String == "2.500000000" && rpm["limit"] as? Int == 60)
            #expect(daily["action"] as? String == "block" && daily["source"] as? String == "api" && daily["leased"] as? Bool == true)
            let scope = try #require((daily["scopes"] as? [[String: Any]])?.first)
            #expect(scope["scope"] as? String == "" && scope["spent"] as? String == "0.000000000" && scope["state"] as? String == "ok")
            let rights = try #require(scope["rights"] as? [String: Any])
            #expect(rights["pool"] as? String == "2.500000000" && (rights["holders"] as? [Any])?.isEmpty == true)
            // A soft rule has no rights.
            #expect((rpm["scopes"] as? [[String: Any]])?.first?["rights"] == nil && rpm["enforcement"] as? String == "soft")
        }
    }

    @Test func theLogTheConfigAndTheCacheAnswerInTheirShapes() async throws {
        try await withNode { client in
            let logs = try object(try await client.execute(uri: "/api/logs", method: .get, headers: Self.admin))
            #expect((logs["data"] as? [Any])?.isEmpty == true && logs["next_cursor"] is NSNull)
            let analytics = try object(try await client.execute(uri: "/api/analytics?group_by=provider", method: .get, headers: Self.admin))
            let totals = try #require(analytics["totals"] as? [String: Any])
            #expect(totals["requests"] as? Int == 0 && totals["cost"] as? String == "0.000000000" && totals["latency_p50_ms"] is NSNull)
            #expect((analytics["groups"] as? [Any])?.isEmpty == true && analytics["step_ms"] as? Int == 3_600_000)
            let badQuery = try await client.execute(uri: "/api/logs?status=9xx", method: .get, headers: Self.admin)
            let badCode = try error(badQuery).code
            #expect(badQuery.status == .badRequest && badCode == "invalid_query")
            let missing = try await client.execute(uri: "/api/logs/nope", method: .get, headers: Self.admin)
            #expect(missing.status == .notFound)

            let config = try object(try await client.execute(uri: "/api/config", method: .get, headers: Self.admin))
            #expect(config["reloadable"] as? Bool == false && (config["digest"] as? String)?.isEmpty == false)
            #expect((config["loaded_at"] as? String)?.hasSuffix("Z") == true)

            let purged = try object(try await client.execute(uri: "/api/cache", method: .delete, headers: Self.admin))
            #expect(purged["purged"] as? Int == 0 && purged["gateway"] == nil)
            let byGateway = try object(try await client.execute(uri: "/api/cache?gateway=default", method: .delete, headers: Self.admin))
            #expect(byGateway["gateway"] as? String == "default")
            let cache = try object(try await client.execute(uri: "/api/cache", method: .get, headers: Self.admin))
            #expect(cache["hit_ratio"] is NSNull && (cache["memory"] as? [String: Any])?["entries"] as? Int == 0)
        }
    }

    @Test func theMetricsAreThePrometheusText() async throws {
        try await withNode { client in
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: Self.admin)
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
        }
    }
}
