/// `GET /cluster/status`: the cluster as one node sees it (docs/http-api.md has every field).
/// `gatemesh status` decodes the same type.
public struct ClusterStatus: Codable, Sendable {
    public struct Cluster: Codable, Sendable {
        public var size: Int
        /// `cluster` or `single-node`.
        public var mode: String
    }

    /// A member: the answering node (`isSelf`, with the fields only it knows), then its peers.
    public struct Member: Codable, Sendable {
        public var name: String
        public var nodeID: String
        public var region: String
        /// This node only: the HTTP address it is bound to.
        public var address: String?
        public var peerAddress: OrNull<String>
        public var status: String
        public var isSelf: Bool
        public var incarnation: UInt64
        // This node only.
        public var healthScore: Int?
        public var forgedRecords: Int?
        public var membersAgreed: OrNull<Bool>?
        public var startedAt: Int?
        public var uptimeSeconds: Int64?
        public var inFlight: Int?
        public var requestsServed: Int?
        public var starts: Int?
        public var configDigest: String?
        public var configLoadedAt: String?
        // Peers only.
        public var lastHeardMsAgo: OrNull<Int64>?
        public var rttMs: OrNull<Int64>?
        public var stateSince: String?
        // Every member.
        public var keySpaceShare: Double
        public var gatewaysDigest: OrNull<String>

        enum CodingKeys: String, CodingKey {
            case name, region, address, status, incarnation, starts
            case nodeID = "node_id", peerAddress = "peer_address", isSelf = "self", healthScore = "health_score"
            case forgedRecords = "forged_records", membersAgreed = "members_agreed", startedAt = "started_at"
            case uptimeSeconds = "uptime_seconds", inFlight = "in_flight", requestsServed = "requests_served"
            case configDigest = "config_digest", configLoadedAt = "config_loaded_at", lastHeardMsAgo = "last_heard_ms_ago"
            case rttMs = "rtt_ms", stateSince = "state_since", keySpaceShare = "key_space_share", gatewaysDigest = "gateways_digest"
        }
    }

    /// A budget's cluster-wide figures in one scope value, with each node's share.
    public struct Budget: Codable, Sendable {
        public struct Share: Codable, Sendable {
            public var nodeID: String
            /// Nil for a node this one does not know as a member.
            public var name: OrNull<String>
            public var spent: Amount
            public var reserved: Amount
            /// `bounded` and `strict` rules only.
            public var rights: Amount?

            enum CodingKeys: String, CodingKey {
                case name, spent, reserved, rights
                case nodeID = "node_id"
            }
        }

        public var rule: String
        public var gateway: String
        public var scope: String
        public var enforcement: String
        public var leased: Bool
        public var pool: Amount?
        public var limit: Amount
        public var spent: Amount
        public var reserved: Amount
        public var byNode: [Share]

        enum CodingKeys: String, CodingKey {
            case rule, gateway, scope, enforcement, leased, pool, limit, spent, reserved
            case byNode = "by_node"
        }
    }

    /// The response cache's figures (also `GET /api/cache`).
    public struct Cache: Codable, Sendable {
        public struct Tier: Codable, Sendable {
            public var entries: Int
            public var bytes: Int
            public var limitBytes: Int
            /// Memory only.
            public var evictions: Int?

            enum CodingKeys: String, CodingKey {
                case entries, bytes, evictions
                case limitBytes = "limit_bytes"
            }
        }

        public var hits: Int
        public var misses: Int
        public var bypasses: Int
        /// Null before the first lookup.
        public var hitRatio: OrNull<Double>
        public var stored: Int
        public var coalesced: Int
        public var memory: Tier
        public var disk: Tier

        enum CodingKeys: String, CodingKey {
            case hits, misses, bypasses, stored, coalesced, memory, disk
            case hitRatio = "hit_ratio"
        }
    }

    /// This node's database on disk (`storage.max_bytes`) and how its request log fares with it.
    public struct Storage: Codable, Sendable {
        public var fileBytes: Int
        public var walBytes: Int
        /// Free pages inside the file, not yet given back.
        public var freeBytes: Int
        /// Null without a cap.
        public var maxBytes: OrNull<Int>
        /// Old log rows deleted to stay under the cap, since start.
        public var rowsDeletedForSpace: Int
        /// Log rows not written: they would not fit under the cap with the log emptied.
        public var rowsDroppedForSpace: Int
        /// Log rows lost to write errors (a full disk), since start.
        public var rowsFailedToWrite: Int
        /// The last write error, when it is less than a minute old: the node is serving without
        /// logging what it serves.
        public var writeError: OrNull<String>

        enum CodingKeys: String, CodingKey {
            case fileBytes = "file_bytes", walBytes = "wal_bytes", freeBytes = "free_bytes", maxBytes = "max_bytes"
            case rowsDeletedForSpace = "rows_deleted_for_space", rowsDroppedForSpace = "rows_dropped_for_space"
            case rowsFailedToWrite = "rows_failed_to_write", writeError = "write_error"
        }
    }

    public struct Gateway: Codable, Sendable {
        public var id: String
        public var authenticated: Bool
    }

    /// Whether the live members have the same gateway settings.
    public struct ConfigAgreement: Codable, Sendable, Equatable {
        public var gatewaysAgree: Bool
        /// The digest most of them have (ties go to the answering node's).
        public var gatewaysDigest: String
        /// The live members whose digest is another, by name.
        public var differing: [String]

        enum CodingKeys: String, CodingKey {
            case differing
            case gatewaysAgree = "gateways_agree", gatewaysDigest = "gateways_digest"
        }
    }

    public struct Versions: Codable, Sendable {
        public var gatemesh: String
        public var libcurl: String
        public var libcurlHTTP2: Bool
        public var openssl: String

        enum CodingKeys: String, CodingKey {
            case gatemesh, libcurl, openssl
            case libcurlHTTP2 = "libcurl_http2"
        }
    }

    public var cluster: Cluster
    public var members: [Member]
    public var budgets: [Budget]
    public var cache: Cache
    /// Optional: a node of an earlier build does not report it.
    public var storage: Storage?
    public var gateways: [Gateway]
    public var config: ConfigAgreement
    public var versions: Versions
}
