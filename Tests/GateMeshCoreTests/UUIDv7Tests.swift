import GateMeshCore
import Testing

@Suite struct UUIDv7Tests {
    @Test func theLayoutOfRFC9562() {
        // RFC 9562 appendix A.6's example: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F.
        #expect(UUIDv7.make(unixMillis: 0x017F_22E2_79B0, randomHigh: 0xCC3, randomLow: 0x18C4_DC0C_0C07_398F)
                == "017f22e2-79b0-7cc3-98c4-dc0c0c07398f")
        let a = UUIDv7.make(unixMillis: 1_700_000_000_000)
        let b = UUIDv7.make(unixMillis: 1_700_000_000_001)
        #expect(a.count == 36 && a < b && a != UUIDv7.make(unixMillis: 1_700_000_000_000))
        #expect(Array(a.utf8)[14] == UInt8(ascii: "7"))
        #expect([UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(Array(a.utf8)[19]))
    }
}
