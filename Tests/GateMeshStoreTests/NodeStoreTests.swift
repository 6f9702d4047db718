import Foundation
import GateMeshStore
import Testing

/// The node's own facts on a real file: what one run keeps, the next one reads.
@Suite final class NodeStoreTests {
    private let dir = NSTemporaryDirectory() + "gatemesh-nodestore-test-\(UUID().uuidString)"
    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// The cluster members ever seen outlive a restart (a `strict` budget's owners are picked
    /// among them), and a later set replaces an earlier one.
    @Test func theMembersSeenOutliveARestart() throws {
        do {
            let store = try NodeStore(dataDir: dir)
            #expect(try store.membersSeen().isEmpty)
            try store.saveMembersSeen(["id-a", "id-b", "id-c"])
            try store.saveMembersSeen(["id-a", "id-c", "id-d"])
        }
        let reopened = try NodeStore(dataDir: dir)
        #expect(try reopened.membersSeen() == ["id-a", "id-c", "id-d"])
        try reopened.saveMembersSeen([])
        #expect(try reopened.membersSeen().isEmpty)
    }
}
