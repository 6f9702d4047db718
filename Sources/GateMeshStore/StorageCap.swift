import GateMeshAccounting

/// The arithmetic of `storage.max_bytes`. Pure.
///
/// The cap counts the database file and its WAL. Under a cap the writer keeps each apart:
/// - the WAL holds at most `walBudget(cap)` (a tenth of the cap): rows are written in
///   transactions whose pages fit in it (`walBytes`), with a checkpoint that empties the WAL after
///   each; a row that alone would not fit is not written;
/// - the file stays at most `fileCeiling(cap)`, the rest: before a transaction that would grow
///   the file past it, the oldest rows are deleted down to `target` (90 % of the ceiling), their
///   pages left free in the file for the new rows. The file is shrunk, a WAL budget of pages at a
///   time, only when it is itself past the ceiling (a cap lowered, a file from before it).
public enum StorageCap {
    /// What a row adds beyond its bodies, metadata and error (its other columns, the indexes' entries, page slack).
    public static let rowOverhead = 400

    /// A value's bytes in the file: one over 1 KiB spills to overflow pages of 4 096 bytes that
    /// hold 4 092 of it each, and takes them whole.
    public static func stored(_ n: Int) -> Int { n > 1024 ? (n + 4091) / 4092 * 4096 : n }

    /// A row's bytes in the file, estimated from what it holds.
    public static func estimatedBytes(_ r: RequestRecord) -> Int {
        rowOverhead + stored(r.requestBody?.count ?? 0) + stored(r.responseBody?.count ?? 0) + r.metadata.json.utf8.count
            + (r.error?.utf8.count ?? 0) + r.path.utf8.count
    }

    /// `stored`, in SQL, of `bytes` (an SQL expression of a number of bytes).
    static func storedSQL(_ bytes: String) -> String {
        "(CASE WHEN \(bytes) > 1024 THEN (\(bytes) + 4091) / 4092 * 4096 ELSE \(bytes) END)"
    }

    /// The row estimate, in SQL, for the rows already written.
    static let rowBytesSQL = "\(rowOverhead) + \(storedSQL("COALESCE(LENGTH(request_body), 0)")) + \(storedSQL("COALESCE(LENGTH(response_body), 0)")) + LENGTH(metadata) + COALESCE(LENGTH(error), 0) + LENGTH(path)"

    /// The most the WAL holds under `cap`.
    public static func walBudget(_ cap: Int) -> Int { cap / 10 }

    /// The most the file takes under `cap`.
    public static func fileCeiling(_ cap: Int) -> Int { cap - walBudget(cap) }

    /// Where deletes bring the file's pages in use down to.
    public static func target(_ cap: Int) -> Int { fileCeiling(cap) / 10 * 9 }

    /// What a transaction writing `incoming` bytes of rows puts in the WAL: their pages with their
    /// 24-byte frame headers, the b-tree, index and free-list pages it changes besides (16 pages
    /// allowed), and the WAL's header.
    public static func walBytes(_ incoming: Int) -> Int { incoming + incoming / 170 + 16 * 4096 + 32 }

    /// The rows' estimated bytes split into transactions that each fit in the WAL budget, as
    /// index ranges; `tooLarge` are rows that alone would not.
    public static func transactions(_ bytes: [Int], cap: Int) -> (ranges: [Range<Int>], tooLarge: [Int]) {
        var ranges: [Range<Int>] = [], tooLarge: [Int] = []
        var start = 0, sum = 0
        for (i, b) in bytes.enumerated() {
            if walBytes(b) > walBudget(cap) {
                tooLarge.append(i)
                continue
            }
            if i > start, walBytes(sum + b) > walBudget(cap) {
                ranges.append(start..<i)
                start = i
                sum = 0
            }
            sum += b
        }
        if start < bytes.count { ranges.append(start..<bytes.count) }
        return (ranges, tooLarge)
    }

    /// Writing `incoming` bytes would grow the file past its ceiling (free pages are taken first).
    public static func mustMakeRoom(size: NodeStore.Size, incoming: Int, cap: Int) -> Bool {
        size.fileBytes + max(0, incoming - size.freeBytes) > fileCeiling(cap)
    }

    /// The bytes of old rows to delete so that the pages in use, with `incoming`, are down to `target`.
    public static func bytesToDelete(size: NodeStore.Size, incoming: Int, cap: Int) -> Int {
        max(0, size.fileBytes - size.freeBytes + incoming - target(cap))
    }

    /// The file itself is past its ceiling: free pages must go back to the file system.
    public static func mustShrink(size: NodeStore.Size, cap: Int) -> Bool {
        size.fileBytes > fileCeiling(cap)
    }

    /// Pages given back per step of a shrink (each step's moves go through the WAL).
    public static func shrinkPages(_ cap: Int) -> Int { max(1, (walBudget(cap) - 16 * 4096) / 4200) }
}
