import GRDB
import GRDBSQLite

/// Binds one row's values to a prepared statement and runs it, with the row's text and blobs
/// copied once into a buffer reused from row to row (SQLite reads them in place, `SQLITE_STATIC`).
/// GRDB's `StatementArguments` would copy each value, each string into its own array: for the
/// request log's 29 columns, a dozen allocations a row.
struct RowBinder {
    private enum Value {
        case null
        case int(Int64)
        case text(Range<Int>)
        case blob(Range<Int>)
    }

    private var values: [Value] = []
    private var bytes: [UInt8] = []

    /// Begins a row.
    mutating func start() {
        values.removeAll(keepingCapacity: true)
        // Keep the buffer's memory between rows, unless one row made it large.
        bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 20)
    }

    mutating func int(_ value: Int?) { values.append(value.map { .int(Int64($0)) } ?? .null) }
    mutating func int(_ value: Int64?) { values.append(value.map { .int($0) } ?? .null) }

    mutating func text(_ value: String?) {
        guard var value else { return values.append(.null) }
        let start = bytes.count
        value.withUTF8 { bytes.append(contentsOf: $0) }
        values.append(.text(start..<bytes.count))
    }

    mutating func blob(_ value: [UInt8]?) {
        guard let value else { return values.append(.null) }
        let start = bytes.count
        bytes.append(contentsOf: value)
        values.append(.blob(start..<bytes.count))
    }

    /// Binds the row's values to `statement`'s parameters in order and steps it to the end.
    func execute(_ statement: Statement, db: Database) throws {
        let s = statement.sqliteStatement
        guard values.count == Int(sqlite3_bind_parameter_count(s)) else {
            throw DatabaseError(resultCode: .SQLITE_RANGE, message: "\(values.count) values for \(sqlite3_bind_parameter_count(s)) parameters",
                                sql: statement.sql)
        }
        try bytes.withUnsafeBufferPointer { buffer in
            // A non-null pointer for empty text and blobs (SQLite reads a null one as NULL).
            let base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
            defer {
                sqlite3_reset(s)
                sqlite3_clear_bindings(s)
            }
            sqlite3_reset(s)
            for (i, value) in values.enumerated() {
                let index = Int32(i + 1)
                let code: Int32
                switch value {
                case .null: code = sqlite3_bind_null(s, index)
                case .int(let n): code = sqlite3_bind_int64(s, index, n)
                case .text(let r):
                    code = (base + r.lowerBound).withMemoryRebound(to: CChar.self, capacity: max(r.count, 1)) {
                        sqlite3_bind_text(s, index, $0, Int32(r.count), nil)
                    }
                case .blob(let r): code = sqlite3_bind_blob(s, index, base + r.lowerBound, Int32(r.count), nil)
                }
                guard code == SQLITE_OK else { throw Self.error(code, db: db, statement: statement) }
            }
            var code = sqlite3_step(s)
            while code == SQLITE_ROW { code = sqlite3_step(s) }
            guard code == SQLITE_DONE else { throw Self.error(code, db: db, statement: statement) }
        }
    }

    private static func error(_ code: Int32, db: Database, statement: Statement) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: db.lastErrorMessage, sql: statement.sql)
    }
}
