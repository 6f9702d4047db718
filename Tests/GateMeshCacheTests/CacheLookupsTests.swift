import GateMeshCache
import Testing

/// The asking side's lookups, driven by hand with the time passed in. Waiters are plain numbers.
@Suite struct CacheLookupsTests {
    func lookups() -> CacheLookups<Int> { CacheLookups(ownerTimeoutMs: 300, pendingMs: 10_000) }

    @Test func anAnswerWakesItsLookupOnceAndALateOneIsDropped() {
        var l = lookups()
        let a = l.nextID(), b = l.nextID()
        #expect(a != b)
        l.start(a, owner: "n2", waiter: 1, now: 0)
        l.start(b, owner: "n2", waiter: 2, now: 0)
        #expect(l.answer(a, pending: false, now: 10) == 1)
        #expect(l.answer(a, pending: false, now: 11) == nil)
        #expect(l.waiting.count == 1)
    }

    @Test func anOwnerThatDoesNotAnswerInTimeIsAMiss() {
        var l = lookups()
        let id = l.nextID()
        l.start(id, owner: "n2", waiter: 7, now: 1_000)
        #expect(l.expire(now: 1_299).isEmpty)
        #expect(l.expire(now: 1_300) == [7])
        // The answer after the miss finds nobody.
        #expect(l.answer(id, pending: false, now: 1_301) == nil)
    }

    @Test func waitForAnotherNodesFetchExtendsTheLookupUpToItsBound() {
        var l = lookups()
        let id = l.nextID()
        l.start(id, owner: "n2", waiter: 3, now: 0)
        // "Pending": the owner's answer comes later, with the fetch's result.
        #expect(l.answer(id, pending: true, now: 100) == nil)
        #expect(l.expire(now: 5_000).isEmpty && l.waiting[id]?.pending == true)
        #expect(l.answer(id, pending: false, now: 6_000) == 3)

        let late = l.nextID()
        l.start(late, owner: "n2", waiter: 4, now: 0)
        _ = l.answer(late, pending: true, now: 100)
        #expect(l.expire(now: 10_099).isEmpty)
        #expect(l.expire(now: 10_100) == [4])
    }

    @Test func aGoneOwnerOrAnAskerThatGivesUpEndsItsLookups() {
        var l = lookups()
        let (a, b, c) = (l.nextID(), l.nextID(), l.nextID())
        l.start(a, owner: "n2", waiter: 1, now: 0)
        l.start(b, owner: "n3", waiter: 2, now: 0)
        l.start(c, owner: "n2", waiter: 3, now: 0)
        #expect(Set(l.ownerGone("n2")) == [1, 3])
        #expect(l.cancel(b) == 2 && l.cancel(b) == nil)
        #expect(l.waiting.isEmpty)
    }
}
