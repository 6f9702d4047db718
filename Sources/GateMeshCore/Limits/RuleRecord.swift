/// Limit rules made through the admin API, replicated to every node as a last-writer-wins map:
/// each rule id has one record (its definition, or a tombstone once deleted) with a version, the
/// change's time and the node that made it. A record replaces another of the same id when its
/// version is higher, so every node that has seen the same records holds the same rules, whatever
/// the order they arrived in; duplicates change nothing. Also the row the node's store keeps for
/// each (`limit_rules`). Pure.
public struct RuleRecord: Sendable, Equatable {
    public var id: String
    public var gateway: String
    /// The rule's JSON document; empty for a tombstone.
    public var definition: String
    public var createdTs: Int64
    /// The version's time (ms since the epoch): later wins.
    public var updatedTs: Int64
    /// The node (by name) that made this version: breaks ties between changes in the same
    /// millisecond; empty for versions stored before rules replicated.
    public var origin: String
    public var deleted: Bool

    public init(id: String, gateway: String, definition: String, createdTs: Int64, updatedTs: Int64, origin: String = "",
                deleted: Bool = false) {
        self.id = id
        self.gateway = gateway
        self.definition = definition
        self.createdTs = createdTs
        self.updatedTs = updatedTs
        self.origin = origin
        self.deleted = deleted
    }

    /// True when this version replaces `other` (the same id).
    public func supersedes(_ other: RuleRecord) -> Bool {
        if updatedTs != other.updatedTs { return updatedTs > other.updatedTs }
        if origin != other.origin { return origin > other.origin }
        // The same change seen twice is not newer; a delete wins over an edit made at the same instant.
        return deleted && !other.deleted
    }

    /// The version time for a change made now to a rule whose current record is `current`: the
    /// clock, but always above the current version (so a change wins over what it replaces even
    /// when this node's clock is behind the one that made it).
    public static func nextVersion(now: Int64, after current: RuleRecord?) -> Int64 {
        max(now, (current?.updatedTs ?? 0) + 1)
    }
}
