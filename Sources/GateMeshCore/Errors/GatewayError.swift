/// An error the gateway answers with: one HTTP status and one JSON body in the OpenAI error shape.
///
/// Every failure that reaches a client goes through this type, so the mapping from a problem to
/// its status code lives in one place. `type` and `code` are stable, machine-readable strings;
/// `message` says what was wrong in words a person can act on.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var type: String
    public var code: String
    public var message: String
    /// Extra response headers (for example `Retry-After`).
    public var headers: [(String, String)]
    /// Extra members of the JSON error object, as (name, raw JSON value) pairs.
    public var details: [(String, String)] = []

    public init(status: Int, type: String, code: String, message: String, headers: [(String, String)] = []) {
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.headers = headers
    }

    public static func == (lhs: GatewayError, rhs: GatewayError) -> Bool {
        lhs.status == rhs.status && lhs.type == rhs.type && lhs.code == rhs.code && lhs.message == rhs.message
    }

    public var description: String { "\(status) \(code): \(message)" }

    /// The JSON body: `{"error":{"type":…,"code":…,"message":…}}`.
    public var jsonBody: String {
        var out = "{\"error\":{\"type\":"
        JSON.appendQuoted(type, to: &out)
        out += ",\"code\":"
        JSON.appendQuoted(code, to: &out)
        out += ",\"message\":"
        JSON.appendQuoted(message, to: &out)
        for (name, value) in details {
            out += ","
            JSON.appendQuoted(name, to: &out)
            out += ":" + value
        }
        out += "}}"
        return out
    }
}

// MARK: - The catalogue of errors, one constructor per client-visible case

extension GatewayError {
    public static func badRequest(_ message: String, code: String = "bad_request") -> GatewayError {
        GatewayError(status: 400, type: "invalid_request_error", code: code, message: message)
    }

    public static func malformedPath(_ message: String) -> GatewayError {
        GatewayError(status: 400, type: "invalid_request_error", code: "malformed_path", message: message)
    }

    public static func unauthorized(_ message: String, code: String = "invalid_gateway_token") -> GatewayError {
        GatewayError(status: 401, type: "authentication_error", code: code, message: message,
                     headers: [("WWW-Authenticate", "Bearer")])
    }

    /// The gateway does not let clients price their own requests (`allow_custom_cost`).
    public static func customCostNotAllowed(gateway: String) -> GatewayError {
        GatewayError(status: 403, type: "permission_error", code: "custom_cost_not_allowed",
                     message: "gateway '\(gateway)' does not accept x-gatemesh-custom-cost (or cf-aig-custom-cost): a client's own price could take it past every budget; set allow_custom_cost: true on the gateway to trust its clients' prices")
    }

    public static func unknownProvider(_ name: String) -> GatewayError {
        GatewayError(status: 404, type: "not_found_error", code: "unknown_provider",
                     message: "unknown provider '\(name)'; see docs/providers.md for the supported providers, or configure 'custom-\(name)' under providers")
    }

    public static func unknownGateway(_ name: String) -> GatewayError {
        GatewayError(status: 404, type: "not_found_error", code: "unknown_gateway",
                     message: "unknown gateway '\(name)'; gateways are configured under 'gateways' in the config")
    }

    /// The client closed its connection before its request was complete (nginx's 499). Nobody
    /// reads the answer; the status is for the log.
    public static func clientClosedRequest() -> GatewayError {
        GatewayError(status: 499, type: "invalid_request_error", code: "client_closed_request",
                     message: "the client closed its connection before its request body was complete")
    }

    public static func notFound(_ message: String) -> GatewayError {
        GatewayError(status: 404, type: "not_found_error", code: "not_found", message: message)
    }

    public static func methodNotAllowed(_ method: String, allowed: String) -> GatewayError {
        GatewayError(status: 405, type: "invalid_request_error", code: "method_not_allowed",
                     message: "method \(method) is not allowed here; use \(allowed)", headers: [("Allow", allowed)])
    }

    /// `setting` names where the limit comes from (a config key, or a fixed limit of an endpoint).
    public static func payloadTooLarge(limit: Int, setting: String = "limits.max_body_bytes") -> GatewayError {
        GatewayError(status: 413, type: "invalid_request_error", code: "body_too_large",
                     message: "request body is larger than the limit of \(limit) bytes (\(setting))")
    }

    public static func notImplemented(_ message: String) -> GatewayError {
        GatewayError(status: 501, type: "not_implemented_error", code: "not_implemented", message: message)
    }

    public static func upstreamUnreachable(_ detail: String) -> GatewayError {
        GatewayError(status: 502, type: "upstream_error", code: "upstream_unreachable",
                     message: "the provider could not be reached: \(detail)")
    }

    public static func upstreamFailed(_ detail: String) -> GatewayError {
        GatewayError(status: 502, type: "upstream_error", code: "upstream_error",
                     message: "the provider connection failed: \(detail)")
    }

    public static func upstreamTimeout(_ detail: String) -> GatewayError {
        GatewayError(status: 504, type: "upstream_error", code: "upstream_timeout",
                     message: "the provider did not answer in time: \(detail)")
    }

    public static func unavailable(_ message: String) -> GatewayError {
        GatewayError(status: 503, type: "server_error", code: "unavailable", message: message)
    }

    public static func internalError(_ message: String) -> GatewayError {
        GatewayError(status: 500, type: "server_error", code: "internal_error", message: message)
    }
}
