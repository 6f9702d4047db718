import GateMeshCache
import Testing

/// The key owner's leases, driven by hand with the time passed in. Flights are plain numbers.
@Suite struct CacheLeasesTests {
    @Test func anAnswerIsTakenOnlyUnderALeaseGivenToThatPeer() {
        var leases = CacheLeases<Int>(leaseMs: 1_000)
        guard case .granted(nil) = leases.grant("k", to: "b", flight: 1, now: 0) else { Issue.record("not granted"); return }
        // Another peer, or another key: no lease, the answer is dropped.
        #expect(leases.take("k", from: "c") == nil)
        #expect(leases.take("other", from: "b") == nil)
        #expect(leases.take("k", from: "b") == 1)
        // Once: a second answer under the same lease is dropped too.
        #expect(leases.take("k", from: "b") == nil && leases.count == 0)
    }

    @Test func aNewLeaseOfTheSamePeerAndKeyReplacesTheOld() {
        var leases = CacheLeases<Int>(leaseMs: 1_000)
        _ = leases.grant("k", to: "b", flight: 1, now: 0)
        guard case .granted(let replaced) = leases.grant("k", to: "b", flight: 2, now: 10) else { Issue.record("not granted"); return }
        #expect(replaced == 1)
        #expect(leases.take("k", from: "b") == 2)
    }

    @Test func aReleaseEndsTheLeaseOrIsRememberedForAMomentWhenItCameFirst() {
        var leases = CacheLeases<Int>(leaseMs: 1_000)
        _ = leases.grant("k", to: "b", flight: 1, now: 0)
        #expect(leases.release("k", from: "b", now: 5) == 1)
        // The peer gave up waiting and released before the owner's answer made the lease.
        #expect(leases.release("j", from: "b", now: 100) == nil)
        guard case .alreadyReleased = leases.grant("j", to: "b", flight: 2, now: 200) else { Issue.record("granted"); return }
        #expect(leases.count == 0)
        // Remembered only for a moment: a lease made later than that is granted.
        _ = leases.release("i", from: "b", now: 100)
        #expect(leases.expire(now: 100 + CacheLeases<Int>.earlyReleaseMs).isEmpty)
        guard case .granted = leases.grant("i", to: "b", flight: 3, now: 1_200) else { Issue.record("not granted"); return }
    }

    @Test func leasesEndWhenTheyRunOutOrTheirPeerIsGone() {
        var leases = CacheLeases<Int>(leaseMs: 1_000)
        _ = leases.grant("k1", to: "b", flight: 1, now: 0)
        _ = leases.grant("k2", to: "b", flight: 2, now: 500)
        _ = leases.grant("k3", to: "c", flight: 3, now: 0)
        #expect(leases.expire(now: 999).isEmpty)
        #expect(Set(leases.expire(now: 1_000)) == [1, 3])
        #expect(leases.memberGone("c").isEmpty)
        #expect(leases.memberGone("b") == [2])
        #expect(leases.count == 0)
    }
}
