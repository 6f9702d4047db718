import CGateMeshOpenSSL
import GateMeshCluster

/// OpenSSL for the whole process.
public enum OpenSSLProcess {
    /// Initializes OpenSSL without its cleanup at exit. A node exits (refusing to run, an error)
    /// while event-loop threads may still be in a TLS handshake; the cleanup frees the locks they
    /// take, and the process crashed (SIGSEGV) instead of exiting with its status. Call first in
    /// `main`, before libcurl or anything else initializes OpenSSL: the first initialization decides.
    public static func initialize() {
        precondition(copenssl_init_without_exit_cleanup() == 1, "OpenSSL failed to initialize")
    }
}

/// A TLS 1.3 configuration for one side of peer connections: trusts only the cluster CA,
/// presents this node's certificate, and requires the peer's.
public final class TLSContext: @unchecked Sendable {
    let raw: OpaquePointer
    public let isServer: Bool

    public init(isServer: Bool, caPEM: String, certificatePEM: String, keyPEM: String) throws(TLSError) {
        var err = [CChar](repeating: 0, count: 512)
        guard let ctx = copenssl_tls_ctx_new(isServer ? 1 : 0, caPEM, certificatePEM, keyPEM, &err, err.count) else {
            throw TLSError(message: String(cString: err))
        }
        raw = ctx
        self.isServer = isServer
    }

    deinit { copenssl_tls_ctx_free(raw) }
}

public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// One TLS connection's state machine on memory buffers: bytes from the network go in with
/// `receive`, bytes for the network come out of `takeOutbound`, plaintext goes in with `send` and
/// comes out of `readPlaintext`. No socket, no thread: a shell moves the bytes (a test moves them
/// between two engines). Used by one task at a time.
public final class TLSEngine {
    public enum ReadResult: Equatable {
        case data([UInt8])
        /// Nothing decrypted yet: feed more bytes.
        case wantMore
        /// The peer closed the connection cleanly.
        case closed
    }

    private let raw: OpaquePointer
    private let context: TLSContext
    public private(set) var handshakeDone = false

    public init(context: TLSContext) throws(TLSError) {
        guard let t = copenssl_tls_new(context.raw, context.isServer ? 1 : 0) else {
            throw TLSError(message: "cannot create a TLS connection")
        }
        raw = t
        self.context = context
    }

    deinit { copenssl_tls_free(raw) }

    /// Takes bytes that arrived from the network.
    public func receive(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        _ = bytes.withUnsafeBytes { copenssl_tls_feed(raw, $0.baseAddress, $0.count) }
    }

    /// Advances the handshake; true once it is complete. Throws when the peer is refused (no
    /// certificate, another CA, expired) or the handshake breaks.
    @discardableResult
    public func advanceHandshake() throws(TLSError) -> Bool {
        guard !handshakeDone else { return true }
        var err = [CChar](repeating: 0, count: 512)
        switch copenssl_tls_handshake(raw, &err, err.count) {
        case 1:
            handshakeDone = true
            return true
        case 0:
            return false
        default:
            throw TLSError(message: String(cString: err))
        }
    }

    /// Encrypts plaintext for the peer (after the handshake).
    public func send(_ bytes: [UInt8]) throws(TLSError) {
        var offset = 0
        var err = [CChar](repeating: 0, count: 512)
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { copenssl_tls_write(raw, $0.baseAddress! + offset, $0.count - offset, &err, err.count) }
            if n < 0 { throw TLSError(message: String(cString: err)) }
            if n == 0 { throw TLSError(message: "TLS write made no progress (handshake not complete?)") }
            offset += Int(n)
        }
    }

    /// Decrypted bytes from the peer, as much as is available.
    public func readPlaintext() throws(TLSError) -> ReadResult {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var err = [CChar](repeating: 0, count: 512)
        while true {
            let n = buffer.withUnsafeMutableBytes { copenssl_tls_read(raw, $0.baseAddress, $0.count, &err, err.count) }
            if n > 0 {
                out.append(contentsOf: buffer[0..<Int(n)])
                continue
            }
            if n == 0 { return out.isEmpty ? .wantMore : .data(out) }
            if n == -2 { return out.isEmpty ? .closed : .data(out) }
            throw TLSError(message: String(cString: err))
        }
    }

    /// Bytes to send to the network.
    public func takeOutbound() -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { copenssl_tls_drain(raw, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out.append(contentsOf: buffer[0..<Int(n)])
        }
    }

    /// Queues a close_notify for the peer.
    public func close() { _ = copenssl_tls_close(raw) }

    /// The peer certificate's common name (its node name), once the handshake is done.
    public var peerName: String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard copenssl_tls_peer_name(raw, &buffer, buffer.count) >= 0 else { return nil }
        return String(cString: buffer)
    }

    /// The peer's certificate (DER), once the handshake is done.
    public var peerCertificate: [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: CertificatesCodec.maxCertificateBytes)
        let n = copenssl_tls_peer_certificate(raw, &buffer, buffer.count)
        guard n > 0 else { return nil }
        return Array(buffer[0..<Int(n)])
    }
}
