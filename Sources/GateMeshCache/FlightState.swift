/// One fetch of one key that other requests for the same key wait on (single flight): who
/// waits, and the answer once there is one. The flight ends once (`complete`), with the answer to
/// store or with none (the leader failed, or its answer cannot be cached: each waiter then fetches
/// on its own). A waiter that comes after the end gets the answer at once; one whose asker gave up
/// leaves with none.
///
/// Pure: the shell keeps it behind a lock, holds whatever wakes a waiter (`Waiter`, a
/// continuation), and resumes the waiters it gets back.
public struct FlightState<Waiter, Answer> {
    public private(set) var done = false
    public private(set) var result: Answer?
    private var nextID = 0
    private var waiters: [Int: Waiter] = [:]

    public init() {}

    /// The id of a new waiter.
    public mutating func newWaiter() -> Int {
        nextID += 1
        return nextID
    }

    public enum Wait {
        /// Resume at once with this (the flight's answer, or nil).
        case now(Answer?)
        /// Resumed later, by `complete` or `cancel`.
        case later
    }

    /// Waiter `id` waits for the flight, unless it is over or the asker has given up already
    /// (`cancelled`).
    public mutating func wait(_ id: Int, _ waiter: Waiter, cancelled: Bool) -> Wait {
        if done { return .now(result) }
        if cancelled { return .now(nil) }
        waiters[id] = waiter
        return .later
    }

    /// The asker of waiter `id` gave up: the waiter, to resume with nil (nil when it was resumed).
    public mutating func cancel(_ id: Int) -> Waiter? {
        waiters.removeValue(forKey: id)
    }

    /// The flight ends with `answer` (nil: none to share): the waiters to resume with it. Only the
    /// first end counts; later ones return no waiters.
    public mutating func complete(_ answer: Answer?) -> [Waiter] {
        guard !done else { return [] }
        done = true
        result = answer
        defer { waiters = [:] }
        return Array(waiters.values)
    }

    public var waiting: Int { waiters.count }
}

extension FlightState: Sendable where Waiter: Sendable, Answer: Sendable {}
