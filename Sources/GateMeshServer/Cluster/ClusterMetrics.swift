import GateMeshCluster
import GateMeshCore

/// What this node received from one peer since start.
struct PeerReceived {
    var frames = 0
    var bytes = 0
    /// When its last `counters` frame (a delta or an answer) arrived, on the monotonic clock.
    var lastCountersAt: Int64?
}

/// The figures `/metrics` shows about the cluster itself (docs/operations.md#metrics).
extension ClusterService {
    func count(_ frame: Frame, from peer: String) {
        let counters = frame.kind == .counters
        let now = counters ? Self.monotonicNow() : 0
        received.withLockedValue { r in
            r[peer, default: PeerReceived()].frames += 1
            r[peer, default: PeerReceived()].bytes += Frame.headerSize + frame.payload.count
            if counters { r[peer, default: PeerReceived()].lastCountersAt = now }
        }
    }

    /// One peer as `/metrics` shows it.
    struct PeerFigures {
        var name: String
        var state: Membership.State
        var rttMs: Int64?
        var framesReceived = 0, bytesReceived = 0, framesSent = 0, bytesSent = 0
        /// Seconds since its last counter delta; nil before the first.
        var deltaAgeSeconds: Double?
    }

    /// Every member but this node, with its traffic since start.
    var peerFigures: [PeerFigures] {
        let members = view.members.filter { $0.info.name != me.name }
        let received = self.received.withLockedValue { $0 }
        let sent = connections.sentByAddress
        let now = Self.monotonicNow()
        return members.map { m in
            var p = PeerFigures(name: m.info.name, state: m.state, rttMs: m.rttMs)
            if let r = received[m.info.name] {
                p.framesReceived = r.frames
                p.bytesReceived = r.bytes
                p.deltaAgeSeconds = r.lastCountersAt.map { Double(now - $0) / 1000 }
            }
            if let s = sent[m.info.address] {
                p.framesSent = s.frames
                p.bytesSent = s.bytes
            }
            return p
        }
    }
}
