import Foundation
@testable import GateMeshLimits
@testable import GateMeshCore
import Testing

func ms(_ iso: String) -> Int64 {
    Int64(try! Date(iso, strategy: .iso8601).timeIntervalSince1970 * 1000)
}

@Suite struct WindowTests {
    let hour: Int64 = 3_600_000

    func day(_ tz: String, at iso: String) -> (Int64, Int64) {
        Window.calendarWindow(.day, timeZone: tz)!.span(at: ms(iso))
    }

    @Test func descriptionsKeepBucketsUnderASecond() {
        #expect(Window.sliding(lengthMs: 10_000, bucketMs: 100).description == "sliding 10s in 100ms buckets")
        #expect(Window.rolling(lengthMs: 86_400_000, bucketMs: 3_600_000).description == "rolling 86400s in 3600s buckets")
        #expect(Window.fixed(lengthMs: 1500).description == "fixed 1500ms")
    }

    @Test func utcDaysMonthsAndTheLeapDay() {
        let utcDay = Window.calendarWindow(.day, timeZone: "UTC")!
        #expect(utcDay.span(at: ms("2026-11-26T13:00:00Z")) == (ms("2026-11-26T00:00:00Z"), ms("2026-11-27T00:00:00Z")))
        let month = Window.calendarWindow(.month, timeZone: "UTC")!
        #expect(month.bucket(at: ms("2026-01-31T23:59:59Z")) + 0 == ms("2026-01-01T00:00:00Z"))
        #expect(month.bucket(at: ms("2026-01-31T23:59:59Z") + 999) == ms("2026-01-01T00:00:00Z"))
        #expect(month.bucket(at: ms("2026-02-01T00:00:00Z")) == ms("2026-02-01T00:00:00Z"))
        #expect(month.span(at: ms("2028-02-29T12:00:00Z")) == (ms("2028-02-01T00:00:00Z"), ms("2028-03-01T00:00:00Z")))
        #expect(utcDay.span(at: ms("2028-02-29T23:59:59Z")) == (ms("2028-02-29T00:00:00Z"), ms("2028-03-01T00:00:00Z")))
    }

    @Test func berlinDaysAcrossBothDaylightSavingChanges() {
        let spring = day("Europe/Berlin", at: "2026-03-29T12:00:00Z")
        #expect(spring == (ms("2026-03-28T23:00:00Z"), ms("2026-03-29T22:00:00Z")))
        #expect(spring.1 - spring.0 == 23 * hour)
        let autumn = day("Europe/Berlin", at: "2026-10-25T12:00:00Z")
        #expect(autumn == (ms("2026-10-24T22:00:00Z"), ms("2026-10-25T23:00:00Z")))
        #expect(autumn.1 - autumn.0 == 25 * hour)
        // The last millisecond of the long day still belongs to it; the next one starts Monday.
        let w = Window.calendarWindow(.day, timeZone: "Europe/Berlin")!
        #expect(w.bucket(at: ms("2026-10-25T23:00:00Z") - 1) == ms("2026-10-24T22:00:00Z"))
        #expect(w.bucket(at: ms("2026-10-25T23:00:00Z")) == ms("2026-10-25T23:00:00Z"))
    }

    @Test func newYorkDaysAcrossBothDaylightSavingChanges() {
        let spring = day("America/New_York", at: "2026-03-08T15:00:00Z")
        #expect(spring == (ms("2026-03-08T05:00:00Z"), ms("2026-03-09T04:00:00Z")))
        let autumn = day("America/New_York", at: "2026-11-01T15:00:00Z")
        #expect(autumn == (ms("2026-11-01T04:00:00Z"), ms("2026-11-02T05:00:00Z")))
        #expect(autumn.1 - autumn.0 == 25 * hour)
    }

    @Test func weeksStartOnTheConfiguredDay() {
        // 2026-11-26 is a Thursday.
        let iso = Window.calendarWindow(.week, timeZone: "UTC", weekStart: 2)!
        #expect(iso.span(at: ms("2026-11-26T10:00:00Z")) == (ms("2026-11-23T00:00:00Z"), ms("2026-11-30T00:00:00Z")))
        let sunday = Window.calendarWindow(.week, timeZone: "UTC", weekStart: 1)!
        #expect(sunday.span(at: ms("2026-11-26T10:00:00Z")) == (ms("2026-11-22T00:00:00Z"), ms("2026-11-29T00:00:00Z")))
        let berlinWeek = Window.calendarWindow(.week, timeZone: "Europe/Berlin")!
        #expect(berlinWeek.span(at: ms("2026-10-26T10:00:00Z")).0 == ms("2026-10-25T23:00:00Z"))
    }

    @Test func invalidCalendarsAreRefused() {
        #expect(Window.calendarWindow(.day, timeZone: "Mars/Olympus") == nil)
        #expect(Window.calendarWindow(.week, timeZone: "UTC", weekStart: 8) == nil)
    }

    @Test func rollingBucketsAgeOutWithoutUnderCounting() {
        let w = Window.rolling(lengthMs: 3 * hour, bucketMs: hour)
        let t = ms("2026-11-26T10:30:00Z")
        #expect(w.activeBuckets(at: t) == (w.bucket(at: t) - 3)...w.bucket(at: t))
        let oldest = w.activeBuckets(at: t).lowerBound  // 07:00-08:00, partly before 07:30
        #expect(!w.isExpired(bucket: oldest, at: t))
        #expect(w.bucketLeavesAt(oldest) == ms("2026-11-26T11:00:00Z") - 1)
        #expect(w.isExpired(bucket: oldest, at: ms("2026-11-26T11:00:00Z")))
    }

    @Test func fixedWindowsAlignToTheEpoch() {
        let w = Window.fixed(lengthMs: 60_000)
        #expect(w.span(at: ms("2026-11-26T10:30:42Z")) == (ms("2026-11-26T10:30:00Z"), ms("2026-11-26T10:31:00Z")))
        #expect(w.bucket(at: -1) == -1)
    }
}
