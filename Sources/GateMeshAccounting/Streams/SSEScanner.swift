/// Splits a server-sent event stream into events, incrementally, as bytes arrive.
///
/// Contract: `feed` may be given any split of the stream (a line or an event across several
/// chunks); every complete event is reported once, in order, with its raw bytes (terminator
/// included), as soon as its terminating blank line arrives. Lines end in LF, CRLF or CR, as the
/// SSE spec allows; after a bare CR the scanner waits for the next byte to see whether an LF
/// belongs to it. A line longer than `maxLineBytes` is skipped, so a hostile stream cannot grow
/// memory without bound (its raw bytes are still passed on).
public struct SSEScanner: Sendable {
    public struct Event: Sendable, Equatable {
        public var name: String?
        /// The `data:` lines joined with `\n`, as the spec says.
        public var data: [UInt8]
        /// The event's raw bytes, from its first line to its blank line's terminator.
        public var raw: [UInt8]

        public var dataString: String { String(decoding: data, as: UTF8.self) }
    }

    public let maxLineBytes: Int
    /// Keep each event's raw bytes (needed only to rewrite a stream).
    public let keepsRaw: Bool
    private var line: [UInt8] = []
    private var lineTooLong = false
    private var afterCR = false
    private var dispatchAfterCR = false
    private var eventName: String?
    private var data: [UInt8] = []
    private var hasData = false
    private var raw: [UInt8] = []
    private var sawBytes = false

    public init(maxLineBytes: Int = 1 << 20, keepsRaw: Bool = true) {
        self.maxLineBytes = maxLineBytes
        self.keepsRaw = keepsRaw
    }

    /// Feeds the next bytes; calls `onEvent` for every event they complete.
    public mutating func feed(_ bytes: some Collection<UInt8>, onEvent: (Event) -> Void) {
        if let raw = bytes as? UnsafeRawBufferPointer {
            feed(raw, onEvent: onEvent)
            return
        }
        let handled: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            feed(UnsafeRawBufferPointer(buffer), onEvent: onEvent)
        }
        if handled == nil {
            Array(bytes).withUnsafeBytes { feed($0, onEvent: onEvent) }
        }
    }

    /// Feeds the next bytes; calls `onEvent` for every event they complete.
    public mutating func feed(_ p: UnsafeRawBufferPointer, onEvent: (Event) -> Void) {
        let n = p.count
        var i = 0
        while i < n {
            if afterCR {
                afterCR = false
                if p[i] == UInt8(ascii: "\n") {
                    if keepsRaw { raw.append(p[i]) }
                    i += 1
                    if dispatchAfterCR { dispatch(onEvent) }
                    continue
                }
                if dispatchAfterCR { dispatch(onEvent) }
            }
            // The run of line content up to the next CR or LF.
            var j = i
            while j < n, p[j] != UInt8(ascii: "\n"), p[j] != UInt8(ascii: "\r") { j += 1 }
            if j > i {
                sawBytes = true
                let room = maxLineBytes - line.count
                if room >= j - i {
                    line.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[i..<j]))
                } else {
                    if room > 0 { line.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[i..<(i + room)])) }
                    lineTooLong = true
                }
                if keepsRaw { raw.append(contentsOf: UnsafeRawBufferPointer(rebasing: p[i..<j])) }
            }
            guard j < n else { return }
            sawBytes = true
            if keepsRaw { raw.append(p[j]) }
            if p[j] == UInt8(ascii: "\n") {
                if endLine() { dispatch(onEvent) }
            } else {
                afterCR = true
                dispatchAfterCR = endLine()
            }
            i = j + 1
        }
    }

    /// Ends the stream: an event whose blank line ended in a bare CR is reported now. Bytes of an
    /// unterminated event are dropped (per the spec, an incomplete event is not dispatched).
    public mutating func finish(onEvent: (Event) -> Void) {
        if afterCR && dispatchAfterCR { dispatch(onEvent) }
        afterCR = false
        dispatchAfterCR = false
    }


    /// The raw bytes of an event that never got its blank line (kept only with `keepsRaw`), taken
    /// out of the scanner: what a rewriter must still pass on when the stream ends.
    public mutating func takeUnterminated() -> [UInt8] {
        defer { raw.removeAll(); line.removeAll(); data.removeAll(); hasData = false; eventName = nil; sawBytes = false }
        return raw
    }

    /// Ends the current line; returns true when it was the blank line that ends an event.
    private mutating func endLine() -> Bool {
        defer {
            line.removeAll(keepingCapacity: true)
            lineTooLong = false
        }
        if line.isEmpty && !lineTooLong { return true }
        if lineTooLong || line.first == UInt8(ascii: ":") { return false }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let field = line[..<colon]
        var value = colon < line.endIndex ? line[(colon + 1)...] : []
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            eventName = String(decoding: value, as: UTF8.self)
        }
        return false
    }

    /// Reports the event (an empty one for stray blank lines and comments, so that `raw` covers
    /// every byte of the stream) and starts the next.
    private mutating func dispatch(_ onEvent: (Event) -> Void) {
        dispatchAfterCR = false
        if sawBytes {
            onEvent(Event(name: eventName, data: data, raw: raw))
        }
        sawBytes = false
        eventName = nil
        data.removeAll(keepingCapacity: true)
        hasData = false
        raw.removeAll(keepingCapacity: true)
    }
}
