import NIOCore

/// One request to a provider, as the curl driver will send it.
public struct UpstreamRequest: Sendable {
    public var method: String
    /// The absolute URL, query included.
    public var url: String
    /// Header fields to send, names as they should go on the wire.
    public var headers: [(name: String, value: String)]
    /// The body: nil for none; streamed bodies are written through `UpstreamTransfer.writeBody`.
    public var body: Body
    public var timeouts: UpstreamTimeouts

    public enum Body: Sendable {
        case none
        /// The whole body, already in memory.
        case bytes(ByteBuffer)
        /// A body the caller streams with `writeBody` and ends with `finishBody`; `length` when known.
        case streamed(length: Int?)
    }

    public init(method: String, url: String, headers: [(name: String, value: String)], body: Body, timeouts: UpstreamTimeouts) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeouts = timeouts
    }
}

/// The limits on one exchange with a provider.
public struct UpstreamTimeouts: Sendable, Equatable {
    /// TCP and TLS connect.
    public var connectMs: Int
    /// From the start of the transfer to the end of the response head.
    public var firstByteMs: Int
    /// The whole transfer, body included; 0 for none.
    public var totalMs: Int

    public init(connectMs: Int, firstByteMs: Int, totalMs: Int) {
        self.connectMs = connectMs
        self.firstByteMs = firstByteMs
        self.totalMs = totalMs
    }
}

/// The status line and header fields of a provider's response.
public struct UpstreamResponseHead: Sendable {
    public var status: Int
    /// Header fields with lowercased names, in the order received.
    public var headers: [(name: String, value: String)]
    /// `1.1` or `2`, as negotiated.
    public var httpVersion: String

    public func header(_ lowercasedName: String) -> String? {
        headers.first { $0.name == lowercasedName }?.value
    }
}

/// Why an exchange with a provider failed, before or during the response.
public enum UpstreamError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection could be made: DNS, refused, unreachable, TLS handshake.
    case unreachable(String)
    /// The connect, first-byte or total timeout ran out.
    case timeout(String)
    /// The connection broke after it was made (reset, malformed response, truncated body).
    case transport(String)
    /// The transfer was cancelled by our side (the client went away, shutdown).
    case cancelled
    /// The client is shutting down and accepts no new transfers.
    case shutdown

    public var description: String {
        switch self {
        case .unreachable(let m): return "unreachable: \(m)"
        case .timeout(let m): return "timeout: \(m)"
        case .transport(let m): return "transport: \(m)"
        case .cancelled: return "cancelled"
        case .shutdown: return "shutting down"
        }
    }
}
