/// Seeds as peers are dialled: each configured `host:port` whose host is a name that DNS resolves
/// to several addresses stands for all of them (one name for the whole cluster, for example a
/// headless service or a round-robin record); an address, or a name with one address, is kept as
/// written (a seed counts as joined when a member advertises the same text). Pure: the shell
/// resolves the names and passes the answers in.
public enum Seeds {
    /// The host and port of a seed (`host:port`, `[v6]:port`); nil when it is not one.
    public static func split(_ seed: String) -> (host: String, port: Int)? {
        guard let colon = seed.lastIndex(of: ":"), let port = Int(seed[seed.index(after: colon)...]), (1...65_535).contains(port) else {
            return nil
        }
        var host = String(seed[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    /// True for an IPv4 dotted quad or an IPv6 address (which needs no resolving).
    public static func isAddress(_ host: String) -> Bool {
        if host.contains(":") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }
    }

    /// The names among `seeds` to resolve.
    public static func names(in seeds: [String]) -> [String] {
        var out: [String] = []
        for s in seeds {
            if let (host, _) = split(s), !isAddress(host), !out.contains(host) { out.append(host) }
        }
        return out
    }

    /// The seeds to dial, given what each name resolved to (a name missing from `resolved`, or
    /// with fewer than two addresses, is kept as written). In order, without repeats.
    public static func expand(_ seeds: [String], resolved: [String: [String]]) -> [String] {
        var out: [String] = []
        func add(_ s: String) { if !out.contains(s) { out.append(s) } }
        for s in seeds {
            guard let (host, port) = split(s), !isAddress(host), let addresses = resolved[host], addresses.count > 1 else {
                add(s)
                continue
            }
            for a in addresses { add(a.contains(":") ? "[\(a)]:\(port)" : "\(a):\(port)") }
        }
        return out
    }
}
