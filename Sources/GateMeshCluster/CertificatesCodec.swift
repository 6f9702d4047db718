import GateMeshCore

/// The payloads of `certificateAsk` (member names) and `certificates` (DER certificates) frames.
/// Bounded like every peer payload: a hostile one is a `DecodeError`.
public enum CertificatesCodec {
    /// Names in one ask; certificates in one answer; bytes of one certificate.
    public static let maxNames = 1024
    public static let maxCertificates = 1024
    public static let maxCertificateBytes = 16 * 1024

    /// Asks for `names`, in frames of at most `maxNames` each.
    public static func asks(_ names: [String]) -> [Frame] {
        stride(from: 0, to: names.count, by: maxNames).map { start in
            var w = BinaryWriter()
            let part = names[start..<min(names.count, start + maxNames)]
            w.uint(UInt64(part.count))
            for n in part { w.string(n) }
            return Frame(kind: .certificateAsk, payload: w.bytes)
        }
    }

    public static func decodeAsk(_ bytes: [UInt8]) throws(DecodeError) -> [String] {
        var r = BinaryReader(bytes)
        let n = try r.count(max: maxNames)
        var out: [String] = []
        for _ in 0..<n { out.append(try r.string(max: MembershipCodec.maxString)) }
        guard r.atEnd else { throw DecodeError("trailing bytes after a certificate ask") }
        return out
    }

    /// `certificates` in frames whose payloads stay under `budget` bytes (one certificate over it
    /// still travels, alone).
    public static func answers(_ certificates: [[UInt8]], budget: Int) -> [Frame] {
        var frames: [Frame] = []
        var part: [[UInt8]] = []
        var size = 0
        func flush() {
            guard !part.isEmpty else { return }
            var w = BinaryWriter()
            w.uint(UInt64(part.count))
            for c in part { w.blob(c) }
            frames.append(Frame(kind: .certificates, payload: w.bytes))
            part.removeAll()
            size = 0
        }
        for c in certificates where c.count <= maxCertificateBytes {
            if !part.isEmpty, size + c.count + 3 > budget || part.count == maxCertificates { flush() }
            part.append(c)
            size += c.count + 3
        }
        flush()
        return frames
    }

    public static func decodeAnswer(_ bytes: [UInt8]) throws(DecodeError) -> [[UInt8]] {
        var r = BinaryReader(bytes)
        let n = try r.count(max: maxCertificates)
        var out: [[UInt8]] = []
        for _ in 0..<n { out.append(try r.blob(max: maxCertificateBytes)) }
        guard r.atEnd else { throw DecodeError("trailing bytes after certificates") }
        return out
    }
}
