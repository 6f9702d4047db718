/// Where and how one passthrough request goes upstream: the URL and the header list.
public struct UpstreamTarget: Sendable, Equatable {
    public var url: String
    public var headers: [HeaderField]

    public init(url: String, headers: [HeaderField]) {
        self.url = url
        self.headers = headers
    }

    /// Maps a passthrough route onto the provider's URL. `query` is the raw query string without
    /// `?` (kept byte for byte, except that a stored key replaces a `key=` credential parameter for
    /// providers that take one). `headers` MUST have lowercased names.
    public static func make(
        route: PassthroughRoute,
        provider: ResolvedProvider,
        query: String,
        headers: [(name: String, value: String)]
    ) throws(GatewayError) -> UpstreamTarget {
        var url: String
        switch provider.spec.pathStyle {
        case .append:
            if provider.spec.dropsRepeatedVersion, route.rest.hasPrefix("/v1/"), provider.baseURL.hasSuffix("/v1") {
                url = provider.baseURL + route.rest.dropFirst(3)
            } else {
                url = provider.baseURL + route.rest
            }
        case .resourceAndDeployment:
            let parts = route.rest.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
            // rest is "/{resource}/{deployment}/…": parts[0] is the empty string before the first '/'.
            guard parts.count >= 3, isAzureName(parts[1]), isAzureName(parts[2].prefix { $0 != "/" }) else {
                throw .malformedPath(
                    "\(provider.spec.id) paths are /\(route.provider)/{resource}/{deployment}/{path}, with names of letters, digits, '-', '_' and '.'")
            }
            let deploymentAndRest = parts[2]
            let deployment = deploymentAndRest.prefix { $0 != "/" }
            let rest = deploymentAndRest.dropFirst(deployment.count)
            url = provider.baseURL
                .replacing("{resource}", with: String(parts[1]))
                .replacing("{deployment}", with: String(deployment)) + rest
        }

        var storedCredential: (name: String, value: String)?
        var effectiveQuery = query
        if let key = provider.storedKey {
            storedCredential = (provider.spec.credentialHeader, provider.spec.credentialValue(for: key))
            if let param = provider.spec.queryKeyParameter, !query.isEmpty {
                effectiveQuery = removingParameter(param, from: query)
            }
        }
        if !effectiveQuery.isEmpty { url += "?" + effectiveQuery }
        let forwarded = HeaderPolicy.upstreamRequestHeaders(headers, storedCredential: storedCredential)
        return UpstreamTarget(url: url, headers: forwarded.map { HeaderField($0.name, $0.value) })
    }

    /// Azure resource and deployment names: non-empty, at most 64 of `[A-Za-z0-9._-]`, so that they
    /// cannot change the host or the path when substituted into the base URL.
    static func isAzureName(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.count <= 64, s != ".", s != ".." else { return false }
        return s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }

    /// The values of every `name` parameter in `query` (as sent, not decoded).
    public static func parameterValues(_ name: String, in query: Substring) -> [Substring] {
        query.split(separator: "&").compactMap { pair in
            guard let eq = pair.firstIndex(of: "="), pair[..<eq] == name else { return nil }
            return pair[pair.index(after: eq)...]
        }
    }

    public static func removingParameter(_ name: String, from query: String) -> String {
        query.split(separator: "&", omittingEmptySubsequences: false)
            .filter { pair in
                let key = pair.prefix { $0 != "=" }
                return key != name
            }
            .joined(separator: "&")
    }
}

extension UpstreamTarget {
    /// Sends `trace` upstream: the client's `traceparent` is replaced by one whose parent is the
    /// gateway's span, and its `tracestate` goes on as it was.
    public mutating func propagate(_ trace: TraceContext) {
        headers.removeAll { $0.name.lowercased() == "traceparent" || $0.name.lowercased() == "tracestate" }
        headers.append(HeaderField(name: "traceparent", value: trace.traceparent))
        if let state = trace.traceState { headers.append(HeaderField(name: "tracestate", value: state)) }
    }
}
