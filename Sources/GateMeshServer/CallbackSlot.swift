import NIOConcurrencyHelpers

/// A callback installed after construction (the cluster wires itself into the limits service and
/// the peer transport this way) and read on hot paths, under a lock.
///
/// Why not a closure in a `NIOLockedValueBox` (or a `Mutex`): reading it with
/// `withLockedValue { $0 }` passes the closure as a generic `inout`, and the write-back wraps the
/// stored closure in a new pair of reabstraction thunks on every read (swiftlang/swift#91348, in
/// Swift 6.3, debug and release builds alike). Memory grows by about 100 bytes per read, and calling
/// the closure after enough reads runs through one thunk frame per earlier read until the stack
/// overflows. One read per settled request made a node in a cluster grow by ~100 bytes a request
/// (`docs/benchmarks.md`, the soak). A struct around the closure is not reabstracted, so the
/// stored value stays what was set.
public final class CallbackSlot<Argument, Result>: Sendable {
    struct Wrapped: Sendable {
        let call: @Sendable (Argument) -> Result
    }

    private let box = NIOLockedValueBox<Wrapped?>(nil)

    public init() {}

    /// Installs `call` (nil removes it).
    public func set(_ call: (@Sendable (Argument) -> Result)?) {
        let wrapped = call.map(Wrapped.init)
        box.withLockedValue { $0 = wrapped }
    }

    /// The callback as set, or nil.
    public var current: (@Sendable (Argument) -> Result)? {
        box.withLockedValue { $0 }?.call
    }
}
