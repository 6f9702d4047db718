import GateMeshCluster
import GateMeshCore

extension FuzzTargets {
    /// `.membership` payloads: whatever decodes re-encodes to something that decodes the same.
    public static let membership = FuzzTarget(
        name: "membership",
        summary: "MembershipCodec decode → encode → decode",
        run: { data in
            guard let envelope = try? MembershipCodec.decode(data) else { return }
            let again = try? MembershipCodec.decode(MembershipCodec.encode(envelope))
            FuzzCheck.require(again == envelope, "a membership envelope does not survive encode → decode")
        },
        seeds: {
            let a = Membership.Info(name: "a", address: "10.0.0.1:7946", region: "eu", id: "a1")
            let b = Membership.Info(name: "b", address: "[::1]:7946")
            let up = Membership.Update(info: b, state: .alive, incarnation: 3, signature: Array(repeating: 0x30, count: 70))
            let messages: [Membership.Message] = [
                .ping(seq: 1, target: "b"), .ping(seq: 0, target: ""), .ack(seq: 1 << 40, of: "b"), .nack(seq: 5), .pingRequest(seq: 9, target: b), .sync(members: [up], reply: false), .sync(members: [], reply: true), .recordsAsk(names: ["b", "c"]),
            ]
            return messages.map { MembershipCodec.encode(.init(from: a, incarnation: 1, signature: [1, 2, 3], message: $0, updates: [up])) }
                + [MembershipCodec.encode(membershipSample)]
        }
    )

    static let membershipSample = Membership.Envelope(
        from: .init(name: "node-1", address: "127.0.0.1:7001", region: "us", id: "01"), incarnation: 7, message: .ping(seq: 2, target: "node-2"),
        updates: [Membership.State.alive, .suspect, .dead, .left].map {
            .init(info: .init(name: "n\($0.rawValue)", address: "h:1"), state: $0, incarnation: 1, accuser: $0 == .suspect ? "node-1" : "")
        }
    )
}
