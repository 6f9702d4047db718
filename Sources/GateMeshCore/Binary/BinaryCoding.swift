/// The field encoding of every binary format of the node: peer frames' payloads and the
/// reservation journal. Shared here so the pure targets below the cluster can use it too.

/// Writes the fields of a payload: unsigned varints, zig-zag signed varints, length-prefixed
/// strings and bytes.
public struct BinaryWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    /// Room for `capacity` bytes up front (a frame of known rough size grows without copies).
    public init(capacity: Int) { bytes.reserveCapacity(capacity) }

    public mutating func uint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func int(_ v: Int64) { uint(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }

    public mutating func string(_ s: String) {
        let utf8 = s.utf8
        uint(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    public mutating func byte(_ b: UInt8) { bytes.append(b) }

    /// Overwrites the byte at `index` (a header filled in once its payload is written).
    public mutating func set(_ b: UInt8, at index: Int) { bytes[index] = b }

    /// Length-prefixed bytes.
    public mutating func blob(_ b: [UInt8]) {
        uint(UInt64(b.count))
        bytes += b
    }
}

public struct DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads what `BinaryWriter` wrote; every read is bounds-checked and fails cleanly.
public struct BinaryReader: Sendable {
    let bytes: [UInt8]
    var index = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var atEnd: Bool { index == bytes.count }
    /// Bytes not read yet: a length read from the input is checked against it before anything is
    /// reserved for it.
    public var remaining: Int { bytes.count - index }

    public mutating func uint() throws(DecodeError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < bytes.count else { throw DecodeError("truncated number") }
            guard shift < 64 else { throw DecodeError("number too long") }
            let b = bytes[index]
            index += 1
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
        }
    }

    public mutating func int() throws(DecodeError) -> Int64 {
        let u = try uint()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    public mutating func count(max: Int) throws(DecodeError) -> Int {
        let n = try uint()
        guard n <= UInt64(max) else { throw DecodeError("count \(n) over the maximum \(max)") }
        return Int(n)
    }

    public mutating func string(max: Int = 4096) throws(DecodeError) -> String {
        let n = try count(max: max)
        guard bytes.count - index >= n else { throw DecodeError("truncated string") }
        defer { index += n }
        return String(decoding: bytes[index..<index + n], as: UTF8.self)
    }

    /// Length-prefixed bytes, at most `max` of them.
    public mutating func blob(max: Int) throws(DecodeError) -> [UInt8] {
        let n = try count(max: max)
        guard bytes.count - index >= n else { throw DecodeError("truncated bytes") }
        defer { index += n }
        return Array(bytes[index..<index + n])
    }

    public mutating func byte() throws(DecodeError) -> UInt8 {
        guard index < bytes.count else { throw DecodeError("truncated byte") }
        defer { index += 1 }
        return bytes[index]
    }
}
