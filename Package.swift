// swift-tools-version:6.1
import PackageDescription

// Targets with one job each. The pure targets (GateMeshCore, GateMeshConfig) depend on no
// networking, storage or C library, so they cannot import the shells.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "gatemesh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatemesh", targets: ["gatemesh"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // MARK: C libraries and shims
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CGateMeshCurl", dependencies: ["CCurl"]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "CGateMeshOpenSSL", dependencies: ["COpenSSL"]),
        // gzip for the request log's export.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // MARK: Pure core
        .target(name: "GateMeshCore", swiftSettings: swiftSettings),
        .target(
            name: "GateMeshConfig",
            dependencies: ["GateMeshCore", "GateMeshAccounting", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "GateMeshAccounting", dependencies: ["GateMeshCore"],
            resources: [.embedInCode("Pricing/prices.json")], swiftSettings: swiftSettings
        ),

        .target(name: "GateMeshLimits", dependencies: ["GateMeshCore"], swiftSettings: swiftSettings),
        // Pure: cluster membership (SWIM), peer frames, replication.
        .target(name: "GateMeshCluster", dependencies: ["GateMeshCore", "GateMeshLimits", "GateMeshCache"], swiftSettings: swiftSettings),
        // The whole-cluster simulator (pure): many membership state machines on one seeded scheduler.
        .target(name: "GateMeshSimulator", dependencies: ["GateMeshCluster", "GateMeshCore", "GateMeshLimits"], swiftSettings: swiftSettings),
        // Pure: the response cache's key, directives, byte-bounded LRU and cached-answer type.
        .target(name: "GateMeshCache", dependencies: ["GateMeshCore"], swiftSettings: swiftSettings),
        // Pure: translation between provider formats (OpenAI chat, Anthropic messages, Google generateContent).
        .target(name: "GateMeshTranslate", dependencies: ["GateMeshCore", "GateMeshAccounting"], swiftSettings: swiftSettings),

        // MARK: Shells
        .target(
            name: "GateMeshUpstream",
            dependencies: [
                "CGateMeshCurl",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GateMeshStore",
            dependencies: [
                "GateMeshCore", "GateMeshAccounting", "GateMeshCache", "GateMeshLimits", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Shell: the peer transport (cluster certificates, TLS 1.3 on memory BIOs).
        .target(name: "GateMeshPeer", dependencies: ["CGateMeshOpenSSL", "GateMeshCluster"], swiftSettings: swiftSettings),
        .target(
            name: "GateMeshServer",
            dependencies: [
                "GateMeshCore", "GateMeshConfig", "GateMeshUpstream", "GateMeshStore", "GateMeshAccounting", "GateMeshLimits", "GateMeshCache",
                "GateMeshCluster", "GateMeshPeer", "GateMeshTranslate", "CGateMeshOpenSSL", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("Dashboard/dashboard.html")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GateMeshMock",
            dependencies: [
                "GateMeshCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The benchmark's floor (bench/proxy.py): the server and the upstream client alone.
        .executableTarget(
            name: "gatemesh-floor",
            dependencies: [
                "GateMeshUpstream",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The simulator's properties at 1,000 nodes, built in release by scripts/test (CI).
        .executableTarget(
            name: "gatemesh-scale",
            dependencies: ["GateMeshSimulator", "GateMeshCluster", "GateMeshLimits", "GateMeshCore"],
            swiftSettings: swiftSettings
        ),
        // The limits replication benchmark: admission latency while replication holds the lock.
        .executableTarget(
            name: "gatemesh-limits-bench",
            dependencies: [
                "GateMeshLimits", "GateMeshCluster", "GateMeshCore",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Fuzzing: the parsers and codecs that read untrusted bytes, one function per target
        // (docs/fuzzing.md); `gatemesh-fuzz` runs them under libFuzzer or replays a corpus.
        .target(
            name: "GateMeshFuzzTargets",
            dependencies: ["GateMeshCore", "GateMeshConfig", "GateMeshAccounting", "GateMeshLimits", "GateMeshCluster", "GateMeshCache"],
            swiftSettings: swiftSettings
        ),
        // `Extern` declares libFuzzer's driver (`@_extern(c)`), used only in the fuzzing build.
        .executableTarget(
            name: "gatemesh-fuzz", dependencies: ["GateMeshFuzzTargets"],
            swiftSettings: swiftSettings + [.enableExperimentalFeature("Extern")]
        ),
        .executableTarget(
            name: "gatemesh",
            dependencies: [
                "GateMeshServer", "GateMeshMock", "GateMeshConfig", "GateMeshCore", "GateMeshPeer", "GateMeshSimulator", "GateMeshCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        // What several test targets share (not a test target itself: those cannot be imported).
        .target(name: "GateMeshTestSupport", path: "Tests/GateMeshTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshCoreTests", dependencies: ["GateMeshCore", "GateMeshConfig", "GateMeshAccounting"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshAccountingTests", dependencies: ["GateMeshAccounting"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshLimitsTests", dependencies: ["GateMeshLimits", "GateMeshCore", "GateMeshTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshTranslateTests", dependencies: ["GateMeshTranslate", "GateMeshCore"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshCacheTests", dependencies: ["GateMeshCache", "GateMeshCore"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshFuzzTests", dependencies: ["GateMeshFuzzTargets"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshPeerTests", dependencies: ["GateMeshPeer", "GateMeshCluster"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshClusterTests", dependencies: ["GateMeshCluster", "GateMeshLimits", "GateMeshCore", "GateMeshCache", "GateMeshTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "GateMeshSimulatorTests", dependencies: ["GateMeshSimulator", "GateMeshCluster", "GateMeshTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GateMeshStoreTests",
            dependencies: [
                "GateMeshStore", "GateMeshAccounting", "GateMeshCore", "GateMeshCache", "GateMeshLimits",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GateMeshUpstreamTests",
            dependencies: [
                "GateMeshUpstream", "GateMeshMock", "CGateMeshCurl", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GateMeshServerTests",
            dependencies: [
                "GateMeshServer", "GateMeshMock", "GateMeshStore", "GateMeshUpstream", "GateMeshConfig", "GateMeshPeer", "GateMeshCluster",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
