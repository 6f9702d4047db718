/// Finds the elements of a JSON array of objects as it streams in (Google's
/// `streamGenerateContent` without `alt=sse`), without parsing them.
///
/// Contract: bytes may arrive split anywhere; each top-level object is reported once, complete,
/// in order. Strings and escapes are respected, so braces inside strings do not count. An element
/// larger than `maxElementBytes` is skipped.
public struct JSONArrayScanner: Sendable {
    public let maxElementBytes: Int
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var element: [UInt8] = []
    private var tooLarge = false

    public init(maxElementBytes: Int = 4 << 20) {
        self.maxElementBytes = maxElementBytes
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>, onElement: ([UInt8]) -> Void) {
        for byte in bytes {
            if depth == 0 {
                if byte == UInt8(ascii: "{") {
                    depth = 1
                    element.removeAll(keepingCapacity: true)
                    element.append(byte)
                    tooLarge = false
                }
                continue
            }
            if element.count < maxElementBytes { element.append(byte) } else { tooLarge = true }
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 && !tooLarge { onElement(element) }
            default: break
            }
        }
    }
}
