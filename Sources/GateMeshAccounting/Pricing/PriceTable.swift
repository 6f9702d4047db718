import Foundation
import GateMeshCore

/// Model prices: the table shipped in the binary (`prices.json`, compiled on a stated date) with
/// the config's overrides and additions on top.
///
/// Lookup is by provider and model id: an exact id or alias first, then the longest listed id
/// that the requested one extends with `-…` (a dated snapshot such as `gpt-4o-mini-2024-07-18`).
/// `azure-openai` uses OpenAI's prices; `openrouter` and the unified API's `provider/model` ids are
/// looked up under the named provider.
public struct PriceTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var provider: String
        public var model: String
        public var price: ModelPrice
    }

    public let compiled: String
    private var byKey: [Key: Entry] = [:]
    private var idsByProvider: [String: [String]] = [:]

    public init(compiled: String, entries: [Entry], aliases: [(provider: String, alias: String, model: String)] = []) {
        self.compiled = compiled
        for entry in entries { insert(entry) }
        for (provider, alias, model) in aliases {
            if let entry = byKey[Self.key(provider, model)] { byKey[Self.key(provider, alias)] = entry }
        }
    }

    /// A provider's model: hashed as the two strings, with no string built for a lookup.
    struct Key: Hashable {
        var provider: String
        var model: String
    }

    static func key(_ provider: String, _ model: String) -> Key { Key(provider: provider, model: model) }

    /// Adds or replaces one model's price.
    public mutating func insert(_ entry: Entry) {
        let k = Self.key(entry.provider, entry.model)
        if byKey[k] == nil { idsByProvider[entry.provider, default: []].append(entry.model) }
        byKey[k] = entry
    }

    public var count: Int { idsByProvider.values.reduce(0) { $0 + $1.count } }

    /// The models priced for `provider`, in the order they were listed.
    public func models(provider: String) -> [String] { idsByProvider[provider] ?? [] }

    /// The price of `model` on `provider`, and the listed entry it was priced as.
    public func price(provider: String, model: String) -> Entry? {
        if let found = lookup(provider: provider, model: model) { return found }
        var provider = provider
        var model = model
        if provider == "azure-openai" { provider = "openai" }
        if provider == "openrouter" || provider.isEmpty, let slash = model.firstIndex(of: "/") {
            provider = Self.openRouterVendors[String(model[..<slash])] ?? String(model[..<slash])
            model = String(model[model.index(after: slash)...])
        }
        if let found = lookup(provider: provider, model: model) { return found }
        // OpenRouter writes versions with dots (`claude-sonnet-4.5`) where providers use dashes.
        if model.contains(".") { return lookup(provider: provider, model: model.replacing(".", with: "-")) }
        return nil
    }

    /// OpenRouter's vendor prefixes that differ from GateMesh's provider names.
    static let openRouterVendors = ["google": "google-ai-studio", "x-ai": "xai", "mistralai": "mistral", "perplexity": "perplexity-ai"]

    /// An exact id or alias, else the longest listed id the model extends with a dated-snapshot
    /// suffix (`-2024-07-18`, `-20250929`, `-0613`, `-latest`): never a different model that merely
    /// shares a prefix (`gpt-4o-audio-preview` is not `gpt-4o`).
    private func lookup(provider: String, model: String) -> Entry? {
        if let exact = byKey[Self.key(provider, model)] { return exact }
        guard let ids = idsByProvider[provider] else { return nil }
        var best: String?
        for id in ids where model.hasPrefix(id + "-") && id.count > (best?.count ?? 0) {
            let suffix = model.dropFirst(id.count + 1)
            if suffix == "latest" || (!suffix.isEmpty && suffix.allSatisfy { $0.isASCIIDigit || $0 == "-" }) { best = id }
        }
        return best.flatMap { byKey[Self.key(provider, $0)] }
    }

    /// The table with the config's prices laid over it (`overrides[provider][model]`). Provider
    /// names may be aliases (`grok`). The overrides MUST have been validated (the config loader does).
    public func applying(_ overrides: [String: [String: PriceOverride]], aliases: [String: String] = ProviderSpec.aliases) -> PriceTable {
        var table = self
        for (provider, models) in overrides {
            let canonical = aliases[provider] ?? provider
            for (model, o) in models {
                guard let input = TokenPrice(dollarsPerMillion: o.input), let output = TokenPrice(dollarsPerMillion: o.output) else { continue }
                table.insert(Entry(provider: canonical, model: model, price: ModelPrice(
                    input: input, output: output, cacheRead: o.cacheRead.flatMap { TokenPrice(dollarsPerMillion: $0) },
                    cacheWrite: o.cacheWrite.flatMap { TokenPrice(dollarsPerMillion: $0) })))
            }
        }
        return table
    }

    // MARK: - The shipped table

    /// The table compiled into the binary. Fails only if the shipped file is malformed, which the
    /// unit tests rule out.
    public static func shipped() throws -> PriceTable {
        try parse(json: PackageResources.prices_json)
    }

    public struct FormatError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// `prices.json` as it is written: prices are decimal strings, read exactly by `TokenPrice`.
    struct File: Decodable {
        struct Model: Decodable {
            var provider: String
            var model: String
            var aliases: [String]?
            var input: String
            var output: String
            var cacheRead: String?
            var cacheWrite: String?

            enum CodingKeys: String, CodingKey {
                case provider, model, aliases, input, output
                case cacheRead = "cache_read", cacheWrite = "cache_write"
            }
        }

        var compiled: String
        var models: [Model]
    }

    /// Parses the `prices.json` format (see the file's header).
    public static func parse(json bytes: [UInt8]) throws -> PriceTable {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw FormatError(message: "prices.json: \(Self.describe(error))")
        }
        var entries: [Entry] = []
        var aliases: [(String, String, String)] = []
        for m in file.models {
            func price(_ key: String, _ text: String?) throws -> TokenPrice? {
                guard let text else { return nil }
                guard let p = TokenPrice(dollarsPerMillion: text) else {
                    throw FormatError(message: "prices.json: \(m.provider)/\(m.model).\(key) must be a decimal string with at most six decimals")
                }
                return p
            }
            guard let input = try price("input", m.input), let output = try price("output", m.output) else { continue }
            entries.append(Entry(provider: m.provider, model: m.model,
                                 price: ModelPrice(input: input, output: output, cacheRead: try price("cache_read", m.cacheRead),
                                                   cacheWrite: try price("cache_write", m.cacheWrite))))
            for alias in m.aliases ?? [] { aliases.append((m.provider, alias, m.model)) }
        }
        return PriceTable(compiled: file.compiled, entries: entries, aliases: aliases)
    }

    /// Where a decoding error is (`models[3].input`) and what was wrong there.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
        }
        switch error {
        case .keyNotFound(let key, let c): return "\(path(c.codingPath + [key])) is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): return "\(path(c.codingPath)) must be a string (\(c.debugDescription))"
        case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
