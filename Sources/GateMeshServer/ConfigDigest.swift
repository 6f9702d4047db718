import GateMeshCore

/// Digests of a node's config for `/cluster/status`: the first 16 hex digits of the SHA-256 of
/// its canonical text. `whole` covers every setting (nodes differ in theirs: name, listeners);
/// `shared` covers the gateways with their tokens, rules, routes, retries and cache TTLs, which
/// every node of a cluster should have alike. Gossiped with the node's membership record.
enum ConfigDigest {
    static func whole(_ config: Settings) -> String { digest(CanonicalText.of(config)) }

    static func shared(_ config: Settings) -> String { digest(CanonicalText.of(config.gateways)) }

    static func digest(_ text: String) -> String {
        String(ResponseCache.key(Array(text.utf8)).prefix(16))
    }
}
