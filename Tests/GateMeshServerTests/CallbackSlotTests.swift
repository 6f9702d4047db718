import Foundation
import GateMeshServer
import Testing

/// A callback read many times stays the closure that was set (swiftlang/swift#91348: a closure
/// read out of a lock box as `withLockedValue { $0 }` is wrapped in two more reabstraction thunks
/// per read, so memory grows per read and a call runs through all of them).
@Suite struct CallbackSlotTests {
    /// How far below the caller's frame the callback runs: a few frames, however often it was read.
    static func callDepth(_ call: @Sendable (UInt) -> UInt) -> UInt {
        var here = 0
        let top = withUnsafeMutablePointer(to: &here) { UInt(bitPattern: $0) }
        return top &- call(0)
    }

    @Test func readingACallbackDoesNotDeepenIt() {
        let slot = CallbackSlot<UInt, UInt>()
        slot.set { _ in
            var there = 0
            return withUnsafeMutablePointer(to: &there) { UInt(bitPattern: $0) }
        }
        let before = Self.callDepth(slot.current!)
        for _ in 0..<20_000 { _ = slot.current }
        let after = Self.callDepth(slot.current!)
        // The slot's contract. (A generic slot holding the bare closure passes this too: the thunks
        // come from reading a concretely typed closure out of a box, which is what
        // `NoClosureInLockBoxTests` keeps out of the sources.)
        #expect(after <= before + 1024, "the call went \(after - before) bytes deeper after 20,000 reads")
    }

    @Test func setReplacesAndClears() {
        let slot = CallbackSlot<Int, Int>()
        #expect(slot.current == nil)
        slot.set { $0 + 1 }
        #expect(slot.current?(1) == 2)
        slot.set { $0 * 10 }
        #expect(slot.current?(2) == 20)
        slot.set(nil)
        #expect(slot.current == nil)
    }
}

/// No source keeps a bare closure in a lock box: it would be read as `withLockedValue { $0 }`,
/// which deepens the stored closure on every read. Callbacks go in a `CallbackSlot`.
@Suite struct NoClosureInLockBoxTests {
    @Test func sourcesKeepCallbacksInSlots() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources")
        let pattern = try Regex(#"(NIOLockedValueBox|Mutex|NIOLoopBoundBox|LockedValueBox)<\s*\(?\s*(@Sendable\s*)?\((\([^()]*\)|[^()])*\)\s*(async\s*)?(throws\s*)?->"#)
        var found: [String] = []
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        while let file = files?.nextObject() as? URL {
            guard file.pathExtension == "swift" else { continue }
            let text = try String(contentsOf: file, encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where line.contains(pattern) {
                found.append("\(file.path.dropFirst(root.path.count + 1)):\(n + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        #expect(found.isEmpty, "closures kept in lock boxes (use CallbackSlot):\n\(found.joined(separator: "\n"))")
    }
}
