import CGateMeshOpenSSL
import GateMeshCore

/// Digests of a node's config for `/cluster/status`: the first 16 hex digits of the SHA-256 of
/// its canonical text. `whole` covers every setting (nodes differ in theirs: name, listeners);
/// `shared` covers the gateways with their tokens, rules, routes, retries and cache TTLs, which
/// every node of a cluster should have alike. Gossiped with the node's membership record.
enum ConfigDigest {
    static func whole(_ config: GateMeshConfig) -> String { digest(CanonicalText.of(config)) }

    static func shared(_ config: GateMeshConfig) -> String { digest(CanonicalText.of(config.gateways)) }

    static func digest(_ text: String) -> String {
        var hash = [UInt8](repeating: 0, count: 32)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { copenssl_sha256($0.baseAddress, $0.count, &hash) }
        let hex = Array("0123456789abcdef".utf8)
        return String(decoding: hash.prefix(8).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0xF)]] }, as: UTF8.self)
    }
}
