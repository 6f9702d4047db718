import GateMeshAccounting

/// Writing a translated answer: server-sent events, and the ids of the objects a translation
/// makes up (`chatcmpl-…`, `msg_…`, `call_…`).
enum StreamOut {
    /// Feeds `bytes` to `scanner` and translates each event it completes, in order.
    static func translate(_ bytes: [UInt8], _ scanner: inout SSEScanner, _ each: (SSEScanner.Event) -> [UInt8]) -> [UInt8] {
        var events: [SSEScanner.Event] = []
        scanner.feed(bytes) { events.append($0) }
        var out: [UInt8] = []
        for e in events { out += each(e) }
        return out
    }

    /// One event: `event:` (when named) and `data:` lines, and the blank line that ends it.
    static func sse(_ data: String, event: String? = nil) -> [UInt8] {
        var s = ""
        if let event { s += "event: \(event)\n" }
        s += "data: \(data)\n\n"
        return Array(s.utf8)
    }

    /// An id for a generated object, unique enough for clients: `prefix` and 24 random characters.
    static func id(_ prefix: String) -> String {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return prefix + String((0..<24).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
    }
}
