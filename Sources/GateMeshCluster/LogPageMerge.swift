/// Pages of the request log from several nodes, made into one page of the cluster's log.
///
/// Log ids are UUIDv7: their text orders rows by time on every node, and a page is the rows
/// whose id is below a cursor, newest first. So one cursor, the id of the last row shown, pages
/// through every node's log at once: each node is asked for `limit` rows below it, and the page
/// is the newest `limit` of all. A node that sent fewer rows than it holds below the cursor (its
/// answer had to fit in a frame) sets a frontier: no row older than its last is shown, since
/// rows of its that it did not send may come before. Pure.
public enum LogPageMerge {
    public struct Page<Row> {
        /// Newest first, with their log ids.
        public var rows: [(id: String, row: Row)]
        /// The node holds more rows past the last one sent.
        public var more: Bool

        public init(rows: [(id: String, row: Row)], more: Bool) {
            self.rows = rows
            self.more = more
        }
    }

    /// The newest `limit` rows of all pages, and the cursor of the next page (nil when none
    /// follows).
    public static func merge<Row>(_ pages: [Page<Row>], limit: Int) -> (rows: [Row], nextCursor: String?) {
        let frontier = pages.filter(\.more).compactMap { $0.rows.last?.id }.max()
        let all = pages.flatMap(\.rows).sorted { $0.id > $1.id }
        var taken = all.prefix(limit)
        if let frontier { taken = taken.prefix { $0.id >= frontier } }
        let more = taken.count < all.count || pages.contains(where: \.more)
        return (taken.map(\.row), more ? taken.last?.id : nil)
    }
}
