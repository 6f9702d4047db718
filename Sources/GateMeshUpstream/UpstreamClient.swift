import CGateMeshCurl
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The HTTP client the gateway uses for every provider: libcurl's multi interface, one driver
/// thread per multi handle, connection reuse and HTTP/2 where the provider offers it.
///
/// TLS is verified against the system CA store (or `caFile`). Proxies come from the standard
/// environment variables, as libcurl reads them: `https_proxy`/`HTTPS_PROXY`, `http_proxy`,
/// `no_proxy`/`NO_PROXY`.
public final class UpstreamClient: Sendable {
    public struct Configuration: Sendable {
        public var http2: Bool
        public var caFile: String?
        /// Response bytes buffered per transfer before it is paused.
        public var responseBufferBytes: Int
        /// Idle connections kept open for reuse, across all providers.
        public var maxCachedConnections: Int
        /// Driver threads (each with its own multi handle and connection cache).
        public var drivers: Int
        /// Ask providers for compressed answers and decode them (the body handed on is plain).
        public var decompresses: Bool

        public init(http2: Bool = true, caFile: String? = nil, responseBufferBytes: Int = 256 * 1024,
                    maxCachedConnections: Int = 256, drivers: Int = 1, decompresses: Bool = true) {
            self.http2 = http2
            self.caFile = caFile
            self.responseBufferBytes = responseBufferBytes
            self.maxCachedConnections = maxCachedConnections
            self.drivers = drivers
            self.decompresses = decompresses
        }
    }

    private let drivers: [CurlDriver]
    private let next = NIOLockedValueBox(0)
    private let configuration: Configuration

    /// The linked libcurl's version, and whether it can speak HTTP/2.
    public static var libcurlVersion: String { String(cString: ccurl_version()) }
    public static var libcurlHasHTTP2: Bool { ccurl_has_http2() != 0 }

    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "gatemesh.upstream")) {
        Self.globalInit
        self.configuration = configuration
        self.drivers = (0..<max(1, configuration.drivers)).map {
            CurlDriver(configuration: configuration, logger: logger, index: $0)
        }
    }

    private static let globalInit: Void = {
        let rc = ccurl_global_init()
        precondition(rc == 0, "curl_global_init failed with \(rc)")
    }()

    /// Starts a transfer. The request is sent at once; read the head with `responseHead()`.
    public func start(_ request: UpstreamRequest) -> UpstreamTransfer {
        start(request, delivery: nil)
    }

    /// Starts a transfer whose answer goes to `sink` on `loop` (call from `loop`): no task and no
    /// continuation per event; the driver hands each loop all its transfers' events of one pass
    /// in one `execute`. The sink keeps the transfer to `release` what it wrote and to `cancel`.
    public func start(_ request: UpstreamRequest, on loop: any EventLoop, sink: any UpstreamSink) -> UpstreamTransfer {
        start(request, delivery: (loop, NIOLoopBound(sink, eventLoop: loop)))
    }

    private func start(_ request: UpstreamRequest, delivery: (loop: any EventLoop, sink: NIOLoopBound<any UpstreamSink>)?) -> UpstreamTransfer {
        let driver = pickDriver()
        let transfer = UpstreamTransfer(request: request, driver: driver, bufferBytes: configuration.responseBufferBytes, delivery: delivery)
        driver.submit(.add(transfer))
        return transfer
    }

    private func pickDriver() -> CurlDriver {
        let driver: CurlDriver
        if drivers.count == 1 {
            driver = drivers[0]
        } else {
            let i = next.withLockedValue { v -> Int in
                v = (v + 1) % drivers.count
                return v
            }
            driver = drivers[i]
        }
        return driver
    }

    /// New upstream connections opened since start; requests that reused a connection add nothing.
    public var connectionsOpened: Int {
        drivers.reduce(0) { $0 + $1.connectionsOpened.load(ordering: .relaxed) }
    }

    /// Cancels every transfer still running and stops the driver threads.
    public func shutdown() {
        for driver in drivers { driver.shutdown() }
    }
}

/// An async sequence over a transfer's response body.
public struct UpstreamBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let transfer: UpstreamTransfer
    public init(_ transfer: UpstreamTransfer) { self.transfer = transfer }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let transfer: UpstreamTransfer
        public mutating func next() async throws -> ByteBuffer? { try await transfer.nextChunk() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(transfer: transfer) }
}
