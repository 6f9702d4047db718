import GateMeshUpstream
import NIOCore

extension UpstreamClient {
    /// One POST of `body` to a sink of the node's own (the log export, the OTLP collector, the
    /// alert webhook), the answer read and dropped: nil when it answered 2xx, else what went wrong.
    /// `configured` (the operator's headers for the sink) go after `headers`, in name order.
    func post(_ url: String, headers: [(name: String, value: String)], configured: [String: String] = [:], body: [UInt8],
              timeouts: UpstreamTimeouts) async -> String? {
        let headers = headers + configured.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
        var buffer = ByteBuffer()
        buffer.writeBytes(body)
        let transfer = start(UpstreamRequest(method: "POST", url: url, headers: headers, body: .bytes(buffer), timeouts: timeouts))
        do {
            let head = try await transfer.responseHead()
            while try await transfer.nextChunk() != nil {}
            return (200..<300).contains(head.status) ? nil : "answered \(head.status)"
        } catch {
            return "\(error)"
        }
    }
}
