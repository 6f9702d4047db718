/// Which headers cross the gateway, in each direction (RFC 9110 §7.6.1 for hop-by-hop fields).
public enum HeaderPolicy {
    /// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
    /// de-facto `keep-alive` and `proxy-connection`).
    public static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization", "trailer",
    ]

    /// Request fields the upstream client sets itself: from the URL and the body, and the
    /// compression it negotiates (it decodes the answer, so usage can always be read).
    static let setByClient: Set<String> = ["host", "content-length", "expect", "accept-encoding"]

    /// Response fields that only make sense between the provider and us: `alt-svc` would point the
    /// client at the provider's host, the body length is set by our own framing, and the body
    /// reaches the client decoded, so the provider's `content-encoding` no longer applies.
    static let responseOnlyUpstream: Set<String> = ["alt-svc", "content-length", "content-encoding"]

    /// True for the gateway's own control headers, which are consumed here and never forwarded.
    /// Inlinable: called for every header of every request, from other modules too, where an
    /// unspecialized `StringProtocol.hasPrefix` would compare characters one at a time.
    @inlinable
    public static func isGatewayControl(_ lowercasedName: some StringProtocol) -> Bool {
        lowercasedName.hasPrefix("x-gatemesh-") || lowercasedName.hasPrefix("cf-aig-")
    }

    /// The names a `Connection` field lists, lowercased: these are hop-by-hop for this message too.
    public static func connectionOptions(_ headers: [(name: String, value: String)]) -> Set<String> {
        var names: Set<String> = []
        for (name, value) in headers where name == "connection" {
            // Token by token, without an array of them; `keep-alive` (most answers' only one) is
            // dropped as hop-by-hop anyway, so it builds no set.
            var rest = Substring(value)
            while !rest.isEmpty {
                let comma = rest.firstIndex(of: ",") ?? rest.endIndex
                let t = rest[..<comma].trimmingSpaces().lowercased()
                rest = comma < rest.endIndex ? rest[rest.index(after: comma)...] : ""
                if !t.isEmpty && !hopByHop.contains(t) { names.insert(t) }
            }
        }
        return names
    }

    /// The request headers to send upstream. `headers` MUST have lowercased names (HTTP/2 and
    /// swift-http-types give them so). With `storedCredential` set, every credential field the
    /// client sent is dropped and the stored one is added in its place.
    public static func upstreamRequestHeaders(
        _ headers: [(name: String, value: String)],
        storedCredential: (name: String, value: String)?
    ) -> [(name: String, value: String)] {
        let listed = connectionOptions(headers)
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(headers.count + 1)
        for (name, value) in headers {
            if hopByHop.contains(name) || setByClient.contains(name) || listed.contains(name) { continue }
            if isGatewayControl(name) { continue }
            if storedCredential != nil, ProviderSpec.allCredentialHeaders.contains(name) { continue }
            out.append((name, value))
        }
        if let storedCredential { out.append(storedCredential) }
        return out
    }

    /// The response headers to send to the client from the provider's response head. The gateway's
    /// own `x-gatemesh-…`/`cf-aig-…` names are reserved for the gateway and never taken from upstream.
    public static func clientResponseHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        let listed = connectionOptions(headers)
        var out: [(name: String, value: String)] = []
        out.reserveCapacity(headers.count)
        for (name, value) in headers
        where !(hopByHop.contains(name) || responseOnlyUpstream.contains(name) || listed.contains(name) || isGatewayControl(name)) {
            out.append((name, value))
        }
        return out
    }
}

extension StringProtocol {
    func trimmingSpaces() -> Substring {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let end = s.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return s[start...end]
    }
}
