import GateMeshCore

/// What a cache key is made of (docs/caching.md states the rule). The shell hashes these bytes
/// with SHA-256; the hex digest is the key.
///
/// In: a version tag, the gateway, the provider, the method, the upstream path with its query, the
/// headers that change the answer (`keyHeaders`, by lowercased name, sorted) and the body in its
/// canonical JSON form (`CanonicalJSON`; a body that is not JSON counts byte for byte), and a
/// digest of the provider credential when the client supplies it (not when the config does).
/// Never in: the credentials themselves (`authorization`, `x-api-key`, …), gateway headers
/// (`x-gatemesh-…`, `cf-aig-…`, metadata included) or any other header. A `cache-key` given by the client replaces everything
/// but the version tag and the gateway, so a custom key never reaches another gateway's entries.
public enum CacheKeyMaterial {
    public static let version = "gatemesh-cache-v1"

    /// Request headers that change what a provider answers, and so are part of the key.
    public static let keyHeaders: [String] = ["anthropic-beta", "anthropic-version", "openai-beta"]

    /// `credential`: a digest of the provider credential the client sent (nil when the config
    /// supplies it, or the client sent none), so that clients with different keys never share
    /// answers.
    public static func make(gateway: String, provider: String, method: String, path: String,
                            headers: [(name: String, value: String)], body: [UInt8], credential: String? = nil) -> [UInt8] {
        var out = Array("\(version)\ngateway=\(gateway)\nprovider=\(provider)\nmethod=\(method)\npath=\(path)\n".utf8)
        for name in keyHeaders {
            let values = headers.filter { $0.name == name }.map(\.value)
            guard !values.isEmpty else { continue }
            out.append(contentsOf: "header:\(name)=\(values.joined(separator: ","))\n".utf8)
        }
        if let credential { out.append(contentsOf: "credential=\(credential)\n".utf8) }
        out.append(contentsOf: "body=".utf8)
        out.append(contentsOf: CanonicalJSON.canonical(body) ?? body)
        return out
    }

    /// The material for a client's own `cache-key` (with the client's credential digest, as above).
    public static func custom(gateway: String, key: String, credential: String? = nil) -> [UInt8] {
        Array("\(version)\ngateway=\(gateway)\n".utf8) + (credential.map { Array("credential=\($0)\n".utf8) } ?? [])
            + Array("custom=\(key)".utf8)
    }

    /// What of a request is the client's provider credential: the value of each credential header
    /// it sent (`credentialHeaders`, in that order) and of the provider's query parameter, if any.
    /// Empty when it sent none. The shell hashes it (never stored, never logged).
    public static func credential(headers: [(name: String, value: String)], queryValues: [Substring]) -> [UInt8] {
        var out: [UInt8] = []
        for name in credentialHeaders {
            for h in headers where h.name == name {
                out.append(contentsOf: "\(name):".utf8)
                out.append(contentsOf: h.value.utf8)
                out.append(0x0A)
            }
        }
        for v in queryValues {
            out.append(contentsOf: "query:".utf8)
            out.append(contentsOf: v.utf8)
            out.append(0x0A)
        }
        return out
    }

    /// The request headers any provider reads a credential from, in a fixed order.
    public static let credentialHeaders = ProviderSpec.allCredentialHeaders.sorted()
}

/// What the cache does for one request.
public enum CacheDecision: Sendable, Equatable {
    /// The cache is off for this request's gateway and the request did not ask for it: no
    /// `cache-status` header.
    case off
    /// Neither read nor written, and why (for the log): `cache-status: BYPASS`.
    case bypass(String)
    /// Answer from the cache when the key is there; otherwise fetch and store for `ttlSeconds`.
    case lookup(ttlSeconds: Int)
    /// Fetch (never answer from the cache) and store for `ttlSeconds`.
    case refresh(ttlSeconds: Int)

    /// `gatewayTTL` is the gateway's default TTL, nil when its cache is off. `bodyKnown` is false
    /// when the body streams up unread (it cannot be part of a key).
    public static func decide(gatewayTTL: Int?, directives d: CacheDirectives, method: String, bodyKnown: Bool) -> CacheDecision {
        guard let ttl = d.ttlSeconds ?? gatewayTTL else { return .off }
        if d.skip { return .bypass("skip-cache") }
        guard method == "POST" || method == "GET" else { return .bypass("method \(method)") }
        guard bodyKnown else { return .bypass("request body too large to key") }
        return d.refresh ? .refresh(ttlSeconds: ttl) : .lookup(ttlSeconds: ttl)
    }
}
