import GateMeshConfig
import GateMeshCore
import Testing

@Suite struct KeyDirectoryTests {
    func key(_ id: String, team: String, hash: String, policy: EntityPolicy = EntityPolicy()) -> VirtualKey {
        VirtualKey(id: id, team: team, name: id, secrets: [.init(hash: hash)], hint: "gmk_abcd…", createdAtMs: 1, policy: policy)
    }

    @Test func documentsRoundTripThroughTheirStoredForm() throws {
        let text = """
        {"team": "red", "name": "ci-bot", "budgets": [{"id": "daily", "usd": "0.08", "window": {"calendar": "day"}}],
         "rate_limits": [{"id": "rpm", "requests": 60, "scope": {"split_by": ["user"]}, "window": {"fixed": "1m"}}],
         "models": ["openai/*"], "gateways": ["default"], "expires_at": "2027-01-31T00:00:00Z", "metadata": {"owner": "ci"}}
        """
        let p = try EntityDocument.parse(text, kind: .key)
        #expect(p.team == "red" && p.name == "ci-bot" && p.policy.rules.count == 2 && p.policy.models == ["openai/*"])
        #expect(p.policy.expiresAtMs == Timestamps.unixMs("2027-01-31T00:00:00Z"))
        let k = VirtualKey(id: "key-1", team: "red", name: "ci-bot", secrets: [.init(hash: "ab", validUntilMs: 5), .init(hash: "cd")],
                           hint: "gmk_x…", createdAtMs: 7, policy: p.policy)
        let stored = EntityDocument.json(k, stored: true)
        let back = try EntityDocument.parse(stored, kind: .key, stored: true)
        #expect(back.policy == k.policy && back.secrets == k.secrets && back.createdMs == 7 && back.hint == "gmk_x…")
        // What the API shows reads back too (sent again with PUT), without the hashes.
        let shown = EntityDocument.json(k, stored: false)
        let reread = try EntityDocument.parse(shown, kind: .key)
        #expect(!shown.contains("\"ab\"") && reread.policy == k.policy)
        let team = Team(id: "red", org: "acme", policy: p.policy)
        let teamBack = try EntityDocument.parse(EntityDocument.json(team), kind: .team, stored: true)
        #expect(teamBack.policy == team.policy)
    }

    @Test func aKeyIsAuthenticatedByItsHashAndRefusedWithTheReason() {
        var d = KeyDirectory()
        d.put(Org(id: "acme"))
        d.put(Team(id: "red", org: "acme"))
        d.put(key("k1", team: "red", hash: "h1"))
        #expect((try? d.authenticate(hash: "h1", now: 10).get())?.team.id == "red")
        #expect(d.authenticate(hash: "nope", now: 10).failure == .unknown)
        var expiring = EntityPolicy()
        expiring.expiresAtMs = 100
        d.put(Team(id: "red", org: "acme", policy: expiring))
        #expect(d.authenticate(hash: "h1", now: 100).failure == .expired(.team, "red"))
        d.put(Team(id: "red", org: "acme"))
        var revoked = key("k1", team: "red", hash: "h1")
        revoked.revokedAtMs = 50
        d.put(revoked)
        #expect(d.authenticate(hash: "h1", now: 60).failure == .revoked(key: "k1"))
        var rotated = key("k2", team: "red", hash: "new")
        rotated.secrets.insert(.init(hash: "old", validUntilMs: 200), at: 0)
        d.put(rotated)
        #expect((try? d.authenticate(hash: "old", now: 199).get()) != nil)
        #expect(d.authenticate(hash: "old", now: 200).failure == .rotatedOut(key: "k2"))
        d.remove(.org, id: "acme")
        #expect(d.authenticate(hash: "new", now: 1).failure == .orphaned(.org, "acme"))
    }

    @Test func modelsMustBeAllowedByKeyTeamAndOrg() throws {
        var d = KeyDirectory()
        var org = EntityPolicy()
        org.models = ["openai/*", "anthropic/claude-*"]
        var team = EntityPolicy()
        team.models = ["gpt-4o-mini", "anthropic/*"]
        d.put(Org(id: "acme", policy: org))
        d.put(Team(id: "red", org: "acme", policy: team))
        d.put(key("k1", team: "red", hash: "h1"))
        let caller = try d.authenticate(hash: "h1", now: 0).get()
        #expect(KeyDirectory.denial(caller, gateway: "g", provider: "openai", model: "gpt-4o-mini") == nil)
        #expect(KeyDirectory.denial(caller, gateway: "g", provider: "openai", model: "gpt-4o")?.hasPrefix("team 'red'") == true)
        #expect(KeyDirectory.denial(caller, gateway: "g", provider: "anthropic", model: "claude-3-5-haiku") == nil)
        #expect(KeyDirectory.denial(caller, gateway: "g", provider: "mistral", model: "gpt-4o-mini")?.hasPrefix("org 'acme'") == true)
        #expect(KeyDirectory.denial(caller, gateway: "g", provider: "openai", model: nil) != nil)
        #expect(Glob.matches("a*b*c", "axxbyyc") && !Glob.matches("a*b", "axxbyyc") && Glob.matches("*", "") && Glob.matches("x/*", "x/a/b"))
    }

    @Test func entityRulesAreScopedToTheirEntityOnEveryGateway() throws {
        var d = KeyDirectory()
        var policy = EntityPolicy()
        policy.rules = try EntityDocument.parse(#"{"budgets": [{"id": "daily", "usd": "1", "window": {"calendar": "day"}}]}"#, kind: .org).policy.rules
        d.put(Org(id: "acme", policy: policy))
        d.put(Team(id: "red", org: "acme", policy: policy))
        let rules = d.rules
        #expect(rules.map(\.id) == ["org:acme:daily", "team:red:daily"])
        #expect(rules.allSatisfy { $0.gateway == LimitRule.anyGateway })
        var request = LimitRequest(gateway: "default", provider: "openai", model: "m")
        #expect(rules[0].scopeValue(for: request) == nil)
        request.set(Principal(key: "k1", team: "red", org: "acme"))
        #expect(rules[0].scopeValue(for: request) == "" && rules[1].scopeValue(for: request) == "")
    }

    @Test func timestampsReadRFC3339AndWriteISO() {
        #expect(Timestamps.unixMs("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamps.unixMs("2027-01-31T00:00:00.250+01:00") == 1_801_350_000_250)
        #expect(Timestamps.unixMs("2024-02-29") == 1_709_164_800_000)
        #expect(Timestamps.unixMs("2023-02-29") == nil && Timestamps.unixMs("2027-01-31T00:00:00") == nil && Timestamps.unixMs("soon") == nil)
        #expect(Timestamps.iso(1_801_350_000_250) == "2027-01-30T23:00:00.250Z")
    }
}

extension Result {
    var failure: Failure? { if case .failure(let f) = self { return f }; return nil }
}
