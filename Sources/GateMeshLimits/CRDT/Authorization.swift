/// Who may bring which figure. Every figure of a counter entry has one writer: a spend or
/// reservation slot its node, a rights figure the run (`node/epoch`) that wrote it (the owner, for
/// what it granted and the leases; the holder, for what it used, got back and gave back). A
/// max-merge cannot be made to forget a figure, but it takes any larger one: a peer that writes
/// another node's `returned` grows the pool, one that writes a higher version of another node's
/// reservation slot hides it, and either lets the cluster spend past the limit.
///
/// So a frame brings the figures of its sender, and of writers that cannot bring their own: nodes
/// this node does not hold as live (dead, departed, or not heard of yet), whose figures only
/// others still have. A live node's figures come from that node, over its own authenticated
/// link. This node's own figures come back from anyone (a restarted node learns its earlier
/// runs' figures, and its spend slot, from its peers; `CounterMap.merge` keeps its reservation
/// slot of this run), except the rights figures of this run, which only it writes. Pure.
extension CounterMap.Entry {
    /// Only the figures whose writer passes `keep`: its node id, and for rights figures the
    /// writing run (`node/epoch`; nil for the per-node spend and reservation slots).
    public func filtered(_ keep: (_ node: Substring, _ run: String?) -> Bool) -> CounterMap.Entry {
        let node = { (holder: String) in RightsEntry.split(holder: holder).node }
        let r = rights
        return CounterMap.Entry(
            spent: GCounter(slots: spent.slots.filter { keep($0.key[...], nil) }),
            reserved: VersionedSlots(slots: reserved.slots.filter { keep($0.key[...], nil) }),
            rights: RightsEntry(granted: r.granted.filter { keep(node($0.key.from), $0.key.from) },
                                used: r.used.filter { keep(node($0.key), $0.key) },
                                refunded: r.refunded.filter { keep(node($0.key), $0.key) },
                                returned: r.returned.filter { keep(node($0.key), $0.key) },
                                leases: r.leases.filter { keep(node($0.key.from), $0.key.from) }))
    }

    /// Whether every figure's writer passes `keep` (then `filtered` would return the entry as is).
    public func all(_ keep: (_ node: Substring, _ run: String?) -> Bool) -> Bool {
        let node = { (holder: String) in RightsEntry.split(holder: holder).node }
        let r = rights
        return spent.slots.keys.allSatisfy { keep($0[...], nil) } && reserved.slots.keys.allSatisfy { keep($0[...], nil) }
            && r.granted.keys.allSatisfy { keep(node($0.from), $0.from) } && r.leases.keys.allSatisfy { keep(node($0.from), $0.from) }
            && r.used.keys.allSatisfy { keep(node($0), $0) } && r.refunded.keys.allSatisfy { keep(node($0), $0) }
            && r.returned.keys.allSatisfy { keep(node($0), $0) }
    }

    /// The figures `node` wrote (in every run), cut out of the whole entry: what
    /// `CounterMap.ownEntries` must give for this node, which it builds from its own figures
    /// without reading the others' (the tests hold it to this).
    public func written(by node: String) -> CounterMap.Entry {
        var spent = GCounter(), reserved = VersionedSlots()
        if let v = self.spent.slots[node] { spent = GCounter(slots: [node: v]) }
        if let slot = self.reserved.slots[node] { reserved = VersionedSlots(slots: [node: slot]) }
        return CounterMap.Entry(spent: spent, reserved: reserved, rights: rights.isEmpty ? RightsEntry() : rights.written(byPrefix: node + "/"))
    }

    public var isEmpty: Bool { spent.slots.isEmpty && reserved.slots.isEmpty && rights.isEmpty }
}

/// Which figures a frame from a peer may bring into this node's counters (see above).
public struct FigureAuthority: Sendable {
    /// This node's id, and its holder name in this run.
    public let me: String
    public let myRun: String
    /// The ids of the members this node holds as live (alive or suspect), itself excluded.
    public var live: Set<String>
    /// The ids of the members this node holds as dead or departed (and not live again).
    public var gone: Set<String> = []

    public init(me: String, myRun: String, live: Set<String> = []) {
        self.me = me
        self.myRun = myRun
        self.live = live
    }

    /// Whether `sender` (its node id; nil when unknown) may bring a figure written by `node`
    /// (`run` for a rights figure).
    public func allows(_ node: Substring, run: String?, from sender: String?) -> Bool {
        if let sender, node == sender { return true }
        if node == me { return run != myRun }
        return !live.contains(String(node))
    }

    /// `entries` as `peer` (its node id; nil when unknown) may take them from this node: this
    /// node's figures, the peer's own (a restarted peer learns its earlier figures back), and those
    /// of writers not live here (only others still have them). Every other live node sends the peer
    /// its own, so a whole table or a digest's answer costs what this node wrote, not what the
    /// cluster wrote: at 1,000 nodes, every node sending every newcomer every node's figures is a
    /// cube of the cluster's size.
    public func forPeer(_ entries: [CounterMap.Key: CounterMap.Entry], peer: String?) -> [CounterMap.Key: CounterMap.Entry] {
        Self.keeping(entries) { node, _ in node == me || (peer.map { node == $0 } ?? false) || !live.contains(String(node)) }.entries
    }

    /// What this node sends a peer that needs every entry (it is new, or back): `own`, this node's
    /// figures (`CounterMap.ownEntries`), with those of members it holds as gone, which only others
    /// still have (`entries` is read only when there are such members). Not the figures of live
    /// writers, which each send their own, nor the peer's own or those of writers not heard of
    /// yet: a restarted peer has its own in its store and journal, and a digest's answer
    /// (`forPeer`) brings any that are missing. Reading every figure of the table for each
    /// newcomer is what made a cold start of 1,000 nodes cost the cube of the cluster's size.
    public func forNewPeer(own: [CounterMap.Key: CounterMap.Entry], entries: () -> [CounterMap.Key: CounterMap.Entry]) -> [CounterMap.Key: CounterMap.Entry] {
        guard !gone.isEmpty else { return own }
        var out = own
        for (key, e) in Self.keeping(entries(), { node, _ in gone.contains(String(node)) }).entries { out[key, default: .init()].merge(e) }
        return out
    }

    /// `entries` with only the figures `sender` may bring (entries left empty are dropped), and
    /// how many figures were dropped.
    public func admit(_ entries: [CounterMap.Key: CounterMap.Entry], from sender: String?) -> (entries: [CounterMap.Key: CounterMap.Entry], dropped: Int) {
        Self.keeping(entries) { node, run in allows(node, run: run, from: sender) }
    }

    /// `entries` with only the figures whose writer passes `keep` (an entry that keeps all of them
    /// is passed on as it is, one that keeps none is left out), and how many figures were dropped.
    static func keeping(_ entries: [CounterMap.Key: CounterMap.Entry],
                        _ keep: (_ node: Substring, _ run: String?) -> Bool) -> (entries: [CounterMap.Key: CounterMap.Entry], dropped: Int) {
        var out = entries
        var dropped = 0
        for (key, entry) in entries where !entry.all(keep) {
            let kept = entry.filtered(keep)
            dropped += entry.figureCount - kept.figureCount
            out[key] = kept.isEmpty ? nil : kept
        }
        return (out, dropped)
    }
}

extension CounterMap.Entry {
    var figureCount: Int {
        spent.slots.count + reserved.slots.count + rights.granted.count + rights.used.count + rights.refunded.count
            + rights.returned.count + rights.leases.count
    }
}
