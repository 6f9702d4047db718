import Foundation

/// The time window a limit counts over, and how it is cut into buckets (the unit the replicated
/// counters are kept in). Times are Unix milliseconds; every function is pure.
///
/// - `calendar`: the current day, week or month in an IANA time zone, daylight-saving changes
///   included (a Berlin day in March is 23 hours long). One bucket per period.
/// - `rolling`: the last `length`, kept in buckets of `bucket`. The oldest bucket counts whole
///   while any of it is inside the window, so the sum never under-counts (it may over-count by
///   at most one bucket's worth: choose the bucket size for the precision you need).
/// - `fixed`: epoch-aligned periods of `length` (rate limits: "60 per minute, resetting on the minute").
/// - `sliding`: like rolling, for rate limits.
public enum Window: Sendable, Hashable, CustomStringConvertible {
    public enum Period: String, Sendable, Hashable { case day, week, month }

    case calendar(Period, timeZone: String, weekStart: Int)
    case rolling(lengthMs: Int64, bucketMs: Int64)
    case fixed(lengthMs: Int64)
    case sliding(lengthMs: Int64, bucketMs: Int64)

    /// A calendar window; `weekStart` is 1 for Sunday … 7 for Saturday (ISO weeks start on 2, Monday).
    /// Returns nil for an unknown time zone or a week start outside 1...7.
    public static func calendarWindow(_ period: Period, timeZone: String, weekStart: Int = 2) -> Window? {
        guard TimeZone(identifier: timeZone) != nil, (1...7).contains(weekStart) else { return nil }
        return .calendar(period, timeZone: timeZone, weekStart: weekStart)
    }

    public var description: String {
        switch self {
        case .calendar(let p, let tz, let ws): return "calendar \(p.rawValue) in \(tz)" + (p == .week ? " (week starts on day \(ws))" : "")
        case .rolling(let l, let b): return "rolling \(Self.seconds(l)) in \(Self.seconds(b)) buckets"
        case .fixed(let l): return "fixed \(Self.seconds(l))"
        case .sliding(let l, let b): return "sliding \(Self.seconds(l)) in \(Self.seconds(b)) buckets"
        }
    }

    /// Whole seconds as `60s`, anything else in milliseconds (`100ms`, `1500ms`).
    static func seconds(_ ms: Int64) -> String { ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms" }

    /// The longest the window can reach back (a calendar month, with a daylight-saving hour to spare).
    public var maxLengthMs: Int64 {
        switch self {
        case .calendar(let p, _, _): return (p == .day ? 1 : p == .week ? 7 : 31) * 86_400_000 + 3_600_000
        case .rolling(let l, let b), .sliding(let l, let b): return l + b
        case .fixed(let l): return l
        }
    }

    /// The bucket that holds `ms`: for calendar windows the period's start (Unix ms), otherwise
    /// the bucket's index since the epoch.
    public func bucket(at ms: Int64) -> Int64 {
        switch self {
        case .calendar:
            return period(at: ms).start
        case .rolling(_, let b), .sliding(_, let b):
            return Self.floorDiv(ms, b)
        case .fixed(let l):
            return Self.floorDiv(ms, l)
        }
    }

    /// The buckets that count toward the window at `ms`, oldest first.
    public func activeBuckets(at ms: Int64) -> ClosedRange<Int64> {
        switch self {
        case .calendar, .fixed:
            let b = bucket(at: ms)
            return b...b
        case .rolling(let l, let b), .sliding(let l, let b):
            let newest = Self.floorDiv(ms, b)
            let oldest = Self.floorDiv(ms - l + 1, b)
            return min(oldest, newest)...newest
        }
    }

    /// True when `bucket` can no longer count toward the window at or after `ms` (safe to drop).
    public func isExpired(bucket: Int64, at ms: Int64) -> Bool {
        bucket < activeBuckets(at: ms).lowerBound
    }

    /// When `bucket` stops counting (Unix ms): the period's end for calendar and fixed windows, or
    /// the moment its last millisecond leaves a rolling window.
    public func bucketLeavesAt(_ bucket: Int64) -> Int64 {
        switch self {
        case .calendar:
            return period(at: bucket).end
        case .fixed(let l):
            return (bucket + 1) * l
        case .rolling(let l, let b), .sliding(let l, let b):
            return (bucket + 1) * b + l - 1
        }
    }

    /// The start and end of the window as reported to operators at `ms`.
    public func span(at ms: Int64) -> (start: Int64, end: Int64) {
        switch self {
        case .calendar:
            let p = period(at: ms)
            return (p.start, p.end)
        case .fixed(let l):
            let b = Self.floorDiv(ms, l)
            return (b * l, (b + 1) * l)
        case .rolling(let l, _), .sliding(let l, _):
            return (ms - l, ms)
        }
    }

    /// The calendar period holding `ms`. MUST be called on a calendar window.
    func period(at ms: Int64) -> (start: Int64, end: Int64) {
        guard case .calendar(let unit, let tz, let weekStart) = self else { preconditionFailure("not a calendar window") }
        let cache = PeriodCache.shared
        if let hit = cache.lookup(self, ms) { return hit }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: tz) ?? .gmt
        calendar.firstWeekday = weekStart
        calendar.minimumDaysInFirstWeek = 4
        let date = Date(timeIntervalSince1970: Double(ms) / 1000)
        let component: Calendar.Component = unit == .day ? .day : unit == .week ? .weekOfYear : .month
        guard let interval = calendar.dateInterval(of: component, for: date) else { return (ms, ms + 86_400_000) }
        let result = (Int64((interval.start.timeIntervalSince1970 * 1000).rounded()), Int64((interval.end.timeIntervalSince1970 * 1000).rounded()))
        cache.store(self, result)
        return result
    }

    public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// Remembers each calendar window's current period, so the hot path computes a period once per
/// period rather than once per request.
final class PeriodCache: @unchecked Sendable {
    static let shared = PeriodCache()
    private let lock = NSLock()
    private var periods: [Window: (start: Int64, end: Int64)] = [:]

    func lookup(_ window: Window, _ ms: Int64) -> (start: Int64, end: Int64)? {
        lock.lock()
        defer { lock.unlock() }
        guard let p = periods[window], p.start <= ms, ms < p.end else { return nil }
        return p
    }

    func store(_ window: Window, _ period: (start: Int64, end: Int64)) {
        lock.lock()
        periods[window] = period
        lock.unlock()
    }
}
