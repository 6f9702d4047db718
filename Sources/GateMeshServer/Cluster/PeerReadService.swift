import GateMeshCluster
import GateMeshCore

/// What answers a peer's read of this node's request log (`ClusterReads`): its part, no larger
/// than `budget` bytes (the largest frame the asker takes, less the answer's own bytes).
protocol PeerReader: AnyObject, Sendable {
    func answer(_ read: ReadCodec.Read, query: [String: String], budget: Int) async -> ReadCodec.Answer
}

/// Held weakly: the reader holds the cluster.
struct ReaderRef { weak var reader: (any PeerReader)? }

/// Reads of the request log across nodes, on the peer link: the asking side (`read`) and the
/// answering side (`onRead`).
extension ClusterService {
    /// `reader` answers the peers' reads of this node's log.
    func serveReads(_ reader: any PeerReader) { readerRef.withLockedValue { $0.reader = reader } }

    /// The peers a cluster-wide read asks (alive or suspect: a suspect may well answer), and the
    /// ones it cannot (dead: the answer names them as missing). Members that left are neither.
    var readPeers: (ask: [String], dead: [String]) {
        let members = view.members.filter { $0.info.name != me.name }
        return (members.filter { $0.state == .alive || $0.state == .suspect }.map(\.info.name),
                members.filter { $0.state == .dead }.map(\.info.name))
    }

    /// Whether `name` is a member this node knows, itself included.
    func isMember(_ name: String) -> Bool { name == me.name || address(of: name) != nil }

    /// Asks `member` for its part of a read; nil when it does not answer within `timeoutMs` (or up
    /// to a tick more: asks expire on the tick), or is gone meanwhile.
    func read(_ read: ReadCodec.Read, query: [String: String], from member: String, timeoutMs: Int64) async -> ReadCodec.Answer? {
        guard let address = address(of: member) else { return nil }
        let asks = self.asks
        let id = asks.withLockedValue { $0.nextID() }
        let end: @Sendable () -> Void = { asks.withLockedValue { $0.cancel(id) }?.resume(returning: nil) }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let deadline = Self.monotonicNow() + timeoutMs
                asks.withLockedValue { $0.start(id, member: member, waiter: continuation, deadline: deadline) }
                if Task.isCancelled { end() } else { connections.send(ReadCodec.ask(id: id, read, query: query), to: address) }
            }
        } onCancel: {
            end()
        }
    }

    func onRead(_ frame: Frame, from peer: String) throws {
        switch frame.kind {
        case .readAsk:
            let (id, read, query) = try ReadCodec.decodeAsk(frame.payload)
            guard let address = address(of: peer) else { return }
            let reader = readerRef.withLockedValue { $0.reader }
            let budget = config.maxFrameBytes - ReadCodec.answerOverhead
            let connections = self.connections
            Task {
                let answer = await reader?.answer(read, query: query, budget: budget) ?? .failed("this node serves no reads")
                connections.send(ReadCodec.answer(id: id, answer), to: address)
            }
        case .readAnswer:
            let (id, answer) = try ReadCodec.decodeAnswer(frame.payload, max: config.maxFrameBytes)
            asks.withLockedValue { $0.answer(id, from: peer) }?.resume(returning: answer)
        default:
            break
        }
    }

    /// Asks whose member did not answer in time end with nothing: the read names it as missing.
    func expireAsks(now monotonic: Int64) {
        for w in asks.withLockedValue({ $0.expire(now: monotonic) }) { w.resume(returning: nil) }
    }
}
