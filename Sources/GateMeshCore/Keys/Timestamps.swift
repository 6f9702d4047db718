/// RFC 3339 times to and from Unix milliseconds, without Foundation. Pure.
public enum Timestamps {
    /// `2027-01-31T00:00:00Z`, `2027-01-31T00:00:00.250+02:00` or a date `2027-01-31` (midnight
    /// UTC); nil for anything else or a time outside years 1970 to 9999.
    public static func unixMs(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func digits(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= b.count else { return nil }
            var v = 0
            for i in at..<(at + n) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                v = v * 10 + Int(b[i] - 0x30)
            }
            return v
        }
        guard let year = digits(0, 4), b.count >= 10, b[4] == UInt8(ascii: "-"), let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
              let day = digits(8, 2), year >= 1970, (1...12).contains(month) else { return nil }
        let daysIn = [31, year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...daysIn[month - 1]).contains(day) else { return nil }
        var ms = Int64(daysFromCivil(year, month, day)) * 86_400_000
        if b.count == 10 { return ms }
        guard b.count >= 20, b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
              let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
              let second = digits(17, 2), hour < 24, minute < 60, second < 61 else { return nil }
        ms += Int64(hour * 3_600_000 + minute * 60_000 + second * 1000)
        var i = 19
        if b[i] == UInt8(ascii: ".") {
            i += 1
            var fraction = 0, places = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if places < 3 { fraction = fraction * 10 + Int(b[i] - 0x30); places += 1 }
                i += 1
            }
            guard places > 0 else { return nil }
            while places < 3 { fraction *= 10; places += 1 }
            ms += Int64(fraction)
        }
        guard i < b.count else { return nil }
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            return i + 1 == b.count ? ms : nil
        }
        guard b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-"), i + 6 == b.count, let oh = digits(i + 1, 2),
              b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2), oh < 24, om < 60 else { return nil }
        let offset = Int64(oh * 3_600_000 + om * 60_000)
        return b[i] == UInt8(ascii: "+") ? ms - offset : ms + offset
    }

    /// `2027-01-31T00:00:00.000Z`.
    public static func iso(_ ms: Int64) -> String {
        let days = Int(ms >= 0 ? ms / 86_400_000 : (ms - 86_399_999) / 86_400_000)
        let rest = Int(ms - Int64(days) * 86_400_000)
        let (y, m, d) = civilFromDays(days)
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rest / 3_600_000, 2)):\(pad(rest / 60_000 % 60, 2)):\(pad(rest / 1000 % 60, 2)).\(pad(rest % 1000, 3))Z"
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
