/// A provider as this node will call it: its spec, its effective base URL and any stored key.
public struct ResolvedProvider: Sendable, Equatable {
    public var spec: ProviderSpec
    /// The base URL in force (the config's override or the spec's default), no trailing slash.
    public var baseURL: String
    /// A key from the config. When set it replaces whatever credential the client sent.
    public var storedKey: String?

    public init(spec: ProviderSpec, baseURL: String, storedKey: String?) {
        self.spec = spec
        self.baseURL = baseURL
        self.storedKey = storedKey
    }
}

/// The providers a node serves: the built-in ones (with config overrides) and `custom-{name}` ones.
///
/// Lookups are a single dictionary read; the catalogue is built once from the config and never
/// changes while the node runs.
public struct ProviderCatalogue: Sendable {
    private var byName: [String: ResolvedProvider]

    /// Builds the catalogue. `overrides` maps a provider name (built-in, alias or `custom-…`) to its
    /// config; a `custom-…` entry MUST carry a base URL (the config loader checks this).
    public init(overrides: [String: ProviderConfig] = [:]) {
        var byName: [String: ResolvedProvider] = [:]
        for spec in ProviderSpec.builtIn {
            byName[spec.id] = ResolvedProvider(spec: spec, baseURL: spec.defaultBaseURL, storedKey: nil)
        }
        for (name, config) in overrides {
            let canonical = ProviderSpec.aliases[name] ?? name
            if var existing = byName[canonical] {
                if let base = config.baseURL { existing.baseURL = Self.trimTrailingSlash(base) }
                if let key = config.apiKey { existing.storedKey = key }
                byName[canonical] = existing
            } else if let base = config.baseURL {
                let trimmed = Self.trimTrailingSlash(base)
                byName[canonical] = ResolvedProvider(
                    spec: .custom(id: canonical, baseURL: trimmed), baseURL: trimmed, storedKey: config.apiKey)
            }
        }
        for (alias, target) in ProviderSpec.aliases {
            byName[alias] = byName[target]
        }
        self.byName = byName
    }

    /// The provider a URL segment names, if any.
    public func provider(named name: some StringProtocol) -> ResolvedProvider? {
        byName[String(name)]
    }

    public func contains(_ name: some StringProtocol) -> Bool {
        byName[String(name)] != nil
    }

    /// Every name the catalogue answers to, sorted.
    public var names: [String] { byName.keys.sorted() }

    static func trimTrailingSlash(_ s: String) -> String {
        var s = s
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }
}
