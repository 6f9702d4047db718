import GateMeshConfig
import GateMeshCore
import Testing

@Suite struct RouteBalancerTests {
    let route = ModelRoute(name: "smart", targets: [.init(provider: "anthropic", model: "a"), .init(provider: "openai", model: "b"),
                                                    .init(provider: "groq", model: "c")], cooldownMs: 30_000, failures: 2)

    @Test func fallbackKeepsTheOrderAndMovesCoolingTargetsLast() {
        var b = RouteBalancer()
        #expect(b.plan(route, gateway: "g", now: 0, random: { 0 }) == [0, 1, 2])
        b.record(route, gateway: "g", target: 0, outcome: .failure, now: 0)
        #expect(b.plan(route, gateway: "g", now: 0, random: { 0 }) == [0, 1, 2], "one failure of two allowed")
        b.record(route, gateway: "g", target: 0, outcome: .failure, now: 0)
        #expect(b.plan(route, gateway: "g", now: 1000, random: { 0 }) == [1, 2, 0])
        b.record(route, gateway: "g", target: 1, outcome: .rateLimited, now: 2000)
        #expect(b.plan(route, gateway: "g", now: 3000, random: { 0 }) == [2, 0, 1], "soonest available first among the cooling")
        #expect(b.plan(route, gateway: "g", now: 30_000, random: { 0 }) == [0, 2, 1])
        #expect(b.plan(route, gateway: "other", now: 3000, random: { 0 }) == [0, 1, 2], "health is per gateway")
        b.record(route, gateway: "g", target: 1, outcome: .success, now: 4000)
        #expect(b.coolingUntil(route, gateway: "g", target: 1, now: 4000) == 0)
    }

    @Test func weightedDrawsByWeight() {
        var weighted = route
        weighted.strategy = .weighted
        weighted.targets[0].weight = 6
        weighted.targets[1].weight = 3
        weighted.targets[2].weight = 1
        let b = RouteBalancer()
        var firsts = [0, 0, 0]
        var state: UInt64 = 42
        func random() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        for _ in 0..<10_000 {
            let plan = b.plan(weighted, gateway: "g", now: 0, random: random)
            #expect(Set(plan) == [0, 1, 2])
            firsts[plan[0]] += 1
        }
        #expect((5700...6300).contains(firsts[0]) && (2700...3300).contains(firsts[1]) && (800...1200).contains(firsts[2]), "\(firsts)")
        weighted.targets[2].weight = 0
        #expect(b.plan(weighted, gateway: "g", now: 0, random: { 0.99 }).last == 2, "weight 0 is only a last resort")
    }

    @Test func theConfigShape() throws {
        let c = try ConfigLoader.parse(yaml: """
            gateways:
              - id: default
                routes:
                  - name: smart
                    strategy: weighted
                    cooldown: 1m
                    failures: 5
                    targets:
                      - {provider: anthropic, model: claude-sonnet-4-5, api_key: k1, weight: 2}
                      - {provider: grok, model: grok-4}
            """, environment: [:])
        let r = try #require(c.gateways[0].routes["smart"])
        #expect(r.strategy == .weighted && r.cooldownMs == 60_000 && r.failures == 5)
        #expect(r.targets == [.init(provider: "anthropic", model: "claude-sonnet-4-5", apiKey: "k1", weight: 2),
                              .init(provider: "xai", model: "grok-4", apiKey: nil, weight: 1)])
        for (yaml, key) in [("{name: a, targets: []}", "routes[0].targets"), ("{name: a, targets: [{provider: nope, model: m}]}", "routes[0].targets[0].provider"),
                            ("{name: a, targets: [{provider: openai}]}", "routes[0].targets[0].model"),
                            ("{name: a, strategy: random, targets: [{provider: openai, model: m}]}", "routes[0].strategy"),
                            ("{targets: [{provider: openai, model: m}]}", "routes[0].name")] {
            do {
                _ = try ConfigLoader.parse(yaml: "gateways:\n  - id: g\n    routes: [\(yaml)]\n", environment: [:])
                Issue.record("expected an error for \(yaml)")
            } catch {
                #expect(error.key == "gateways[0].\(key)", "\(yaml): \(error)")
            }
        }
    }
}
