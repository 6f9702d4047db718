/// A tick every `interval`, for housekeeping loops.
struct AsyncTimerSequence: AsyncSequence, Sendable {
    typealias Element = Void
    let interval: Duration
    static func seconds(_ n: Int64) -> AsyncTimerSequence { AsyncTimerSequence(interval: .seconds(n)) }

    struct AsyncIterator: AsyncIteratorProtocol {
        let interval: Duration
        mutating func next() async -> Void? {
            do { try await Task.sleep(for: interval) } catch { return nil }
            return ()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(interval: interval) }
}
