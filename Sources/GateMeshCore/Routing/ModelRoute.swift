/// A named route: requests whose `model` is the route's name go to its targets instead, in
/// order (`fallback`: the next when one fails) or spread by weight (`weighted`: the others are
/// the fallbacks). A target that answered 429, or failed `failures` times in a row, cools down
/// for `cooldownMs`: it is tried only after every target that is not cooling down.
public struct ModelRoute: Sendable, Equatable {
    public enum Strategy: String, Sendable, Equatable { case fallback, weighted }

    public struct Target: Sendable, Equatable {
        public var provider: String
        /// The model to ask for; nil keeps the request's (which is then the route's name).
        public var model: String?
        /// A stored key for this target, replacing the provider's and the client's credential.
        public var apiKey: String?
        public var weight: Int

        public init(provider: String, model: String?, apiKey: String? = nil, weight: Int = 1) {
            self.provider = provider
            self.model = model
            self.apiKey = apiKey
            self.weight = weight
        }
    }

    public var name: String
    public var strategy: Strategy
    public var targets: [Target]
    public var cooldownMs: Int64
    public var failures: Int

    public init(name: String, strategy: Strategy = .fallback, targets: [Target], cooldownMs: Int64 = 30_000, failures: Int = 3) {
        self.name = name
        self.strategy = strategy
        self.targets = targets
        self.cooldownMs = cooldownMs
        self.failures = failures
    }
}

/// The health of every route's targets and the order to try them in. Pure: time and randomness
/// are passed in.
public struct RouteBalancer: Sendable {
    public enum Outcome: Sendable, Equatable {
        case success
        /// 429: cool down at once.
        case rateLimited
        /// 5xx, no connection, timeout: cool down after `failures` in a row.
        case failure
    }

    struct Health: Sendable {
        var consecutiveFailures = 0
        var coolingUntil: Int64 = 0
    }

    private var health: [String: [Health]] = [:]

    public init() {}

    /// The targets to try, by index: those not cooling down first (in order, or drawn by weight
    /// for `weighted`), then those cooling down (soonest available first). `random` gives numbers
    /// in 0..<1, one per draw.
    public func plan(_ route: ModelRoute, gateway: String, now: Int64, random: () -> Double) -> [Int] {
        let h = health["\(gateway)/\(route.name)"] ?? []
        func cooling(_ i: Int) -> Int64 { i < h.count && h[i].coolingUntil > now ? h[i].coolingUntil : 0 }
        var ready = route.targets.indices.filter { cooling($0) == 0 }
        let waiting = route.targets.indices.filter { cooling($0) > 0 }.sorted { cooling($0) < cooling($1) }
        if route.strategy == .weighted {
            var drawn: [Int] = []
            while !ready.isEmpty {
                let total = ready.reduce(0) { $0 + max(route.targets[$1].weight, 0) }
                guard total > 0 else {
                    drawn += ready
                    break
                }
                var pick = random() * Double(total)
                var chosen = ready.count - 1
                for (j, i) in ready.enumerated() {
                    pick -= Double(max(route.targets[i].weight, 0))
                    if pick < 0 {
                        chosen = j
                        break
                    }
                }
                drawn.append(ready.remove(at: chosen))
            }
            ready = drawn
        }
        return ready + waiting
    }

    /// Records how target `index` of `route` did at `now`.
    public mutating func record(_ route: ModelRoute, gateway: String, target index: Int, outcome: Outcome, now: Int64) {
        let key = "\(gateway)/\(route.name)"
        var h = health[key] ?? Array(repeating: Health(), count: route.targets.count)
        if h.count < route.targets.count { h += Array(repeating: Health(), count: route.targets.count - h.count) }
        guard index < h.count else { return }
        switch outcome {
        case .success:
            h[index] = Health()
        case .rateLimited:
            h[index].consecutiveFailures += 1
            h[index].coolingUntil = now + route.cooldownMs
        case .failure:
            h[index].consecutiveFailures += 1
            if h[index].consecutiveFailures >= route.failures {
                h[index].coolingUntil = now + route.cooldownMs
                h[index].consecutiveFailures = 0
            }
        }
        health[key] = h
    }

    /// When target `index` stops cooling down (0 when it is not).
    public func coolingUntil(_ route: ModelRoute, gateway: String, target index: Int, now: Int64) -> Int64 {
        guard let h = health["\(gateway)/\(route.name)"], index < h.count, h[index].coolingUntil > now else { return 0 }
        return h[index].coolingUntil
    }
}
