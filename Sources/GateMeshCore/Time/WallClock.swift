import Foundation

/// The wall clock in Unix milliseconds: what log rows, spans, leases and windows are stamped
/// with (the monotonic clock measures durations).
public enum WallClock {
    @inline(__always)
    public static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
