import CGateMeshCurl

/// One allocation that holds what libcurl reads from a transfer's request for as long as the
/// transfer runs: its error buffer and its header lines as a `curl_slist` (nodes and text).
///
/// libcurl only reads a `CURLOPT_HTTPHEADER` list and never frees it, so the list can be laid out
/// by hand: `curl_slist_append` costs two allocations per line (its node and a copy of the text),
/// and the Swift string of each line one more; this costs one for the whole request.
struct RequestBlock {
    /// The block; `deallocate()` it once the easy handle has left the multi handle.
    let raw: UnsafeMutableRawPointer
    /// `CURL_ERROR_SIZE + 1` bytes, zeroed.
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// The first line, or nil for none.
    let headers: UnsafeMutablePointer<curl_slist>?

    /// `fields` as `name: value` lines (`name;` for an empty value: libcurl sends it empty), then
    /// each of `lines` as it is.
    init(fields: [(name: String, value: String)], lines: [StaticString]) {
        let errorBytes = Int(CURL_ERROR_SIZE) + 1
        let nodesAt = (errorBytes + 15) & ~15
        let count = fields.count + lines.count
        let textAt = nodesAt + count * MemoryLayout<curl_slist>.stride
        var textBytes = 0
        for (name, value) in fields { textBytes += name.utf8.count + (value.isEmpty ? 2 : 3 + value.utf8.count) }
        for line in lines { textBytes += line.utf8CodeUnitCount + 1 }
        raw = UnsafeMutableRawPointer.allocate(byteCount: textAt + textBytes, alignment: 16)
        errorBuffer = raw.bindMemory(to: CChar.self, capacity: errorBytes)
        errorBuffer.initialize(repeating: 0, count: errorBytes)
        guard count > 0 else {
            headers = nil
            return
        }
        let nodes = (raw + nodesAt).bindMemory(to: curl_slist.self, capacity: count)
        var text = (raw + textAt).bindMemory(to: CChar.self, capacity: textBytes)
        var index = 0
        func append(_ write: (inout UnsafeMutablePointer<CChar>) -> Void) {
            let start = text
            write(&text)
            text.pointee = 0
            text += 1
            (nodes + index).initialize(to: curl_slist(data: start, next: index + 1 < count ? nodes + index + 1 : nil))
            index += 1
        }
        func copy(_ bytes: some Sequence<UInt8>, to p: inout UnsafeMutablePointer<CChar>) {
            for b in bytes {
                p.pointee = CChar(bitPattern: b)
                p += 1
            }
        }
        for (name, value) in fields {
            append { p in
                copy(name.utf8, to: &p)
                if value.isEmpty {
                    p.pointee = CChar(UInt8(ascii: ";"))
                    p += 1
                } else {
                    copy(": ".utf8, to: &p)
                    copy(value.utf8, to: &p)
                }
            }
        }
        for line in lines {
            append { p in copy(UnsafeBufferPointer(start: line.utf8Start, count: line.utf8CodeUnitCount), to: &p) }
        }
        headers = nodes
    }
}
