import Foundation
import Testing

/// Runs a test (or each test of a suite) on a thread of its own instead of on Swift's cooperative
/// pool. For tests that compute for seconds without a suspension point (simulations).
///
/// On the pool (one thread per core: two on CI) a few of them held every thread for minutes, and
/// every other test of the process waited: a whole run's tests reported "passed after 225 s", and a peer-link test whose polls
/// could not run saw its deadline pass (a CI run failed so). On threads of their own, the
/// simulations share the cores with everything else, as the kernel schedules them, and the pool
/// stays free for the tests that wait on sockets and clocks.
///
/// The test still runs in its own task (`withTaskExecutorPreference`), so `#expect` knows which
/// test it belongs to.
public struct OwnThread: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else { return try await function() }
        let executor = ThreadExecutor(name: test.name)
        defer { executor.stop() }
        try await withTaskExecutorPreference(executor) { try await function() }
    }
}

extension Trait where Self == OwnThread {
    /// Each test of the suite runs on a thread of its own (`OwnThread`).
    public static var onOwnThread: Self { OwnThread() }
}

/// A task executor with one thread, which ends once `stop()` is called and no job waits.
public final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var jobs: [UnownedJob] = []
    private var stopped = false

    public init(name: String) {
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
