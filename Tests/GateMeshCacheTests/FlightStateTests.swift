import GateMeshCache
import Testing

/// One key's single flight, driven by hand. Waiters and answers are plain values.
@Suite struct FlightStateTests {
    @Test func theEndWakesEveryWaiterOnceWithTheAnswer() {
        var f = FlightState<String, Int>()
        let a = f.newWaiter(), b = f.newWaiter()
        guard case .later = f.wait(a, "a", cancelled: false), case .later = f.wait(b, "b", cancelled: false) else {
            Issue.record("a waiter did not wait"); return
        }
        #expect(f.waiting == 2)
        #expect(Set(f.complete(42)) == ["a", "b"])
        // Only the first end counts.
        #expect(f.complete(7).isEmpty && f.result == 42)
        // A waiter that comes after the end gets the answer at once.
        guard case .now(let answer) = f.wait(f.newWaiter(), "late", cancelled: false) else { Issue.record("the late waiter waits"); return }
        #expect(answer == 42)
    }

    @Test func aFlightWithoutAnAnswerSendsEachWaiterToFetchOnItsOwn() {
        var f = FlightState<String, Int>()
        _ = f.wait(f.newWaiter(), "a", cancelled: false)
        #expect(f.complete(nil) == ["a"] && f.done && f.result == nil)
    }

    @Test func aWaiterWhoseAskerGaveUpLeavesWithNothing() {
        var f = FlightState<String, Int>()
        let a = f.newWaiter()
        _ = f.wait(a, "a", cancelled: false)
        #expect(f.cancel(a) == "a" && f.cancel(a) == nil)
        // Cancelled before it waited: it does not wait at all.
        guard case .now(nil) = f.wait(f.newWaiter(), "b", cancelled: true) else { Issue.record("a cancelled waiter waits"); return }
        #expect(f.waiting == 0 && f.complete(1).isEmpty)
    }
}
