import GateMeshCore
import HTTPTypes

/// Virtual keys on the request path: a `gmk_` secret found where an SDK sends its credential is
/// looked up in the directory (a hash-table read) and names the request's key, team and org.
/// The key is never forwarded: the provider key comes from the config.
extension ProxyHandler {
    /// Where a client may present its key: the provider credential headers its SDK already
    /// sends (OpenAI's `Authorization: Bearer`, Anthropic's `x-api-key`, Google's
    /// `x-goog-api-key`), and the gateway's own authorization headers.
    static let virtualKeyHeaders = [HTTPField.Name.authorization, HTTPField.Name("x-api-key")!, HTTPField.Name("x-goog-api-key")!]
        + gatewayAuthHeaders

    /// The `gmk_` secret the request presents, bare or after `Bearer `.
    static func presentedKey(_ headers: HTTPFields) -> Substring? {
        for name in virtualKeyHeaders {
            guard let value = headers[name] else { continue }
            var text = Substring(value)
            if text.count > 7, text.prefix(7).lowercased() == "bearer " { text = text.dropFirst(7) }
            text = text.drop { $0 == " " }
            if text.hasPrefix(VirtualKey.prefix) { return text }
        }
        return nil
    }

    /// Authenticates the request on `gateway`: by its virtual key when it presents one (which
    /// then stands in for the gateway token too), else by the gateway token as before. Returns
    /// the caller, or nil for a request without a key on a gateway that does not require one.
    func authenticate(_ gateway: GatewayConfig, headers: HTTPFields) throws(GatewayError) -> KeyDirectory.Caller? {
        guard let secret = Self.presentedKey(headers) else {
            if gateway.virtualKeys == .required {
                throw .unauthorized("gateway '\(gateway.id)' requires a virtual key: send it as your SDK's API key (Authorization: Bearer gmk_…, or x-api-key)",
                                    code: "missing_virtual_key")
            }
            try Self.authorize(gateway, headers: headers)
            return nil
        }
        guard gateway.virtualKeys != .off else {
            throw .unauthorized("gateway '\(gateway.id)' does not take virtual keys (virtual_keys: off)", code: "virtual_keys_off")
        }
        let directory = limits?.directory.withLockedValue { $0 } ?? KeyDirectory()
        switch directory.authenticate(hash: LimitsService.secretHash(String(secret)), now: LimitsService.now()) {
        case .success(let caller): return caller
        case .failure(let refusal): throw .unauthorized(refusal.message, code: refusal.code)
        }
    }

    /// A request with a virtual key uses the config's key for the provider; without one it
    /// cannot be sent.
    static func requireStoredKey(_ provider: ResolvedProvider) throws(GatewayError) {
        guard provider.storedKey == nil else { return }
        throw GatewayError(status: 400, type: "invalid_request_error", code: "no_provider_key",
                           message: "requests with a virtual key use the gateway's key for the provider, and '\(provider.spec.id)' has none: "
                               + "set providers.\(provider.spec.id).api_key in the config")
    }

    /// The caller's metadata over the client's: the key's (then its team's, then its org's) win
    /// for the same name, so a client cannot claim another team's metadata.
    static func merging(_ metadata: RequestMetadata, with caller: KeyDirectory.Caller) -> RequestMetadata {
        var out = metadata
        for (name, value) in caller.metadata {
            if let i = out.entries.firstIndex(where: { $0.key == name }) {
                out.entries[i].value = .string(value)
            } else {
                out.entries.append((name, .string(value)))
            }
        }
        return out
    }
}
