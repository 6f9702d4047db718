import GateMeshCluster
import GateMeshCore

/// Admin writes (limit rules, and the orgs, teams and keys the admin API makes: all are
/// `RuleRecord`s) made on random nodes, replicated as `ClusterService` does it: the node that
/// made a change sends it to every member it holds as live; every `RuleRecords.digestIntervalMs` each
/// node sends its digest to one live peer, which answers a different digest with every record it
/// holds and, unless the digest was itself an answer, with its own digest. Records are durable (the
/// store): a restarted node keeps them.
public struct RuleLoad: Sendable {
    /// Changes a second over the whole cluster.
    public var writesPerSecond: Double = 2
    /// How many record ids the changes spread over (half rules, half keys); one in ten deletes.
    public var ids = 40
    /// Writes stop this long before the end of the run, so agreement can be checked.
    public var quietMs: Int64 = 20_000
    public init() {}
}

public struct RulesReport: Sendable {
    public var writes = 0
    public var frames = 0
    public var bytes = 0
    /// How long after the last write every up node held the same records (nil: never).
    public var agreedAfterStopMs: Int64?
    /// Writes made by a node that is up at the end which no up node holds, nor anything newer.
    public var lostWrites = 0
}

/// The cache keys' owners, as each node sees them (`Rendezvous` over `Membership.owners`): keys
/// move when a member dies or joins, never on a suspicion, and nodes that agree on the members
/// agree on every key's owner.
public struct CacheOwnershipReport: Sendable {
    /// Sample keys whose owner changed in some node's view after the cluster converged.
    public var movesAfterConvergence = 0
    /// At the end, whether every up node names the same owner for every sample key (nil: the
    /// members did not agree at the end, so neither need the owners).
    public var ownersAgreeAtEnd: Bool?
}

extension ClusterSimulator {
    /// Each node's rule records and when it next sends a digest.
    struct RulesNode {
        var records = RuleRecords()
        var nextDigestAt: Int64 = 0
    }

    /// How many sample cache keys each node places.
    public static let cacheSampleKeys = 32
}

extension ClusterSimulator.Run {
    var cacheKeys: [String] { (0..<ClusterSimulator.cacheSampleKeys).map { "sample-cache-key-\($0)" } }

    // MARK: Rules and keys

    /// One tick of rule replication at node `i`: new admin writes (spread over the up nodes, as
    /// the budget's requests are) and the periodic digest.
    mutating func rulesTick(_ i: Int) {
        guard let load = o.rules else { return }
        if now < o.durationMs - load.quietMs {
            ruleArrivals[i] += load.writesPerSecond / Double(max(1, upCount)) * Double(o.tickMs) / 1000
            while ruleArrivals[i] >= 1 {
                ruleArrivals[i] -= 1
                write(at: i, load: load)
            }
        } else if rulesStoppedAt == nil {
            rulesStoppedAt = now
        }
        if now >= rules[i].nextDigestAt, let peer = nodes[i].live.randomElement(using: &rng), let to = index[peer.info.address] {
            rules[i].nextDigestAt = now + RuleRecords.digestIntervalMs
            sendRules(RulesCodec.digest(rules[i].records.digest(), count: rules[i].records.count, reply: false), from: i, to: to)
        }
    }

    /// An admin change at node `i`, as the admin API makes it: a version above the record it
    /// replaces, from this node's wall clock; then sent to every live member.
    mutating func write(at i: Int, load: RuleLoad) {
        let n = Int(rng.next() % UInt64(max(1, load.ids)))
        let id = n % 2 == 0 ? "rule-\(n)" : "key:k\(n)"
        let current = rules[i].records.byID[id]
        let ts = RuleRecord.nextVersion(now: clock(i), after: current)
        let deleted = rng.next() % 10 == 0
        let record = RuleRecord(id: id, gateway: "g", definition: deleted ? "" : "{\"v\":\(ts)}", createdTs: current?.createdTs ?? ts,
                                updatedTs: ts, origin: infos[i].name, deleted: deleted)
        _ = rules[i].records.apply(record)
        ruleWrites.append((i, record))
        report.rules?.writes += 1
        for f in RulesCodec.frames([record], budget: RulesCodec.frameBudgetBytes) {
            for peer in nodes[i].live { if let to = index[peer.info.address] { sendRules(f, from: i, to: to) } }
        }
    }

    mutating func sendRules(_ frame: Frame, from: Int, to: Int) {
        report.rules?.frames += 1
        report.rules?.bytes += Frame.headerSize + frame.payload.count
        enqueue(.frame(frame), size: Frame.headerSize + frame.payload.count, from: from, to: to)
    }

    /// A `.rules` or `.rulesDigest` frame, as `ClusterService.deliver` handles it.
    mutating func receiveRules(_ frame: Frame, at i: Int, from: Int) {
        do {
            if frame.kind == .rules {
                if o.brokenMerge { return }
                _ = rules[i].records.merge(try RulesCodec.decode(frame.payload))
                return
            }
            let theirs = try RulesCodec.decodeDigest(frame.payload)
            let mine = rules[i].records.digest()
            guard theirs.digest != mine else { return }
            for f in RulesCodec.frames(Array(rules[i].records.byID.values), budget: RulesCodec.frameBudgetBytes) { sendRules(f, from: i, to: from) }
            if !theirs.reply { sendRules(RulesCodec.digest(mine, count: rules[i].records.count, reply: true), from: i, to: from) }
        } catch {
            preconditionFailure("the simulator sent a rules frame its codec cannot read: \(error)")
        }
    }

    /// Every up node holds the same records.
    mutating func rulesAgree() -> Bool {
        var digest: UInt64?
        for i in nodes.indices where up[i] {
            let d = rules[i].records.digest()
            if digest == nil { digest = d } else if digest != d { return false }
        }
        return true
    }

    /// At the end: each write made by a node that is up now is held by the up nodes, or
    /// something newer is.
    mutating func finishRules() {
        guard let held = nodes.indices.first(where: { up[$0] }).map({ rules[$0].records.byID }) else { return }
        for (node, record) in ruleWrites where up[node] {
            guard let h = held[record.id], h == record || h.supersedes(record) else {
                report.rules?.lostWrites += 1
                continue
            }
        }
    }

    // MARK: Cache ownership

    /// Node `i`'s owners of the sample keys, recomputed when the owners its membership names
    /// changed; a change after the cluster converged is a move.
    mutating func cacheOwnershipTick(_ i: Int) {
        guard ownersChanged[i] else { return }
        ownersChanged[i] = false
        let owners = nodes[i].owners
        guard owners != ownerNames[i] else { return }
        ownerNames[i] = owners
        let placed = cacheKeys.map { Rendezvous.owner(of: $0, among: owners) ?? infos[i].name }
        if report.convergedAtMs != nil, !cacheOwners[i].isEmpty {
            report.cacheOwnership.movesAfterConvergence += zip(placed, cacheOwners[i]).count { $0 != $1 }
        }
        cacheOwners[i] = placed
    }

    /// At the end: nodes that agree on the members agree on every sample key's owner.
    mutating func finishCacheOwnership() {
        for i in nodes.indices where up[i] {
            ownersChanged[i] = true
            cacheOwnershipTick(i)
        }
        guard agreed() else { return }
        let ups = nodes.indices.filter { up[$0] }
        report.cacheOwnership.ownersAgreeAtEnd = ups.allSatisfy { cacheOwners[$0] == cacheOwners[ups[0]] }
    }
}
