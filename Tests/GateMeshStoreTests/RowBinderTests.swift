import Foundation
import GRDB
@testable import GateMeshStore
import Testing

@Suite struct RowBinderTests {
    @Test func rowsRoundTripThroughTheReusedBuffer() throws {
        let db = try DatabaseQueue()
        try db.write { db in
            try db.execute(sql: "CREATE TABLE t (a TEXT, b INTEGER, c TEXT, d BLOB, e INTEGER)")
            var row = RowBinder()
            let rows: [(String?, Int?, String?, [UInt8]?, Int64?)] = [
                ("a long first value that fills the buffer", 1, "é ☃ 𝄞", [0, 1, 2, 255], Int64.max),
                ("", nil, nil, [], -1),
                (nil, 0, "x", nil, nil),
            ]
            for r in rows {
                let statement = try db.cachedStatement(sql: "INSERT INTO t VALUES (?, ?, ?, ?, ?)")
                row.start()
                row.text(r.0); row.int(r.1); row.text(r.2); row.blob(r.3); row.int(r.4)
                try row.execute(statement, db: db)
            }
            let read = try Row.fetchAll(db, sql: "SELECT a, b, c, d, e, typeof(a) AS ta, typeof(d) AS td FROM t ORDER BY rowid")
            #expect(read.count == 3)
            #expect(read[0]["a"] as String? == "a long first value that fills the buffer")
            #expect(read[0]["b"] as Int? == 1)
            #expect(read[0]["c"] as String? == "é ☃ 𝄞")
            #expect((read[0]["d"] as Data?).map { [UInt8]($0) } == [0, 1, 2, 255])
            #expect(read[0]["e"] as Int64? == Int64.max)
            // Empty text and blobs stay empty, not NULL.
            #expect(read[1]["ta"] as String? == "text" && read[1]["a"] as String? == "")
            #expect(read[1]["td"] as String? == "blob")
            #expect(read[1]["b"] as Int? == nil && read[1]["c"] as String? == nil)
            #expect(read[2]["ta"] as String? == "null" && read[2]["c"] as String? == "x" && read[2]["d"] as Data? == nil)
        }
    }

    @Test func aWrongNumberOfValuesOrAFailedStepIsAnErrorAndLeavesTheStatementUsable() throws {
        let db = try DatabaseQueue()
        try db.write { db in
            try db.execute(sql: "CREATE TABLE t (a TEXT NOT NULL UNIQUE)")
            let statement = try db.cachedStatement(sql: "INSERT INTO t VALUES (?)")
            var row = RowBinder()
            row.start(); row.text("x"); row.text("y")
            #expect(throws: DatabaseError.self) { try row.execute(statement, db: db) }
            row.start(); row.text("x")
            try row.execute(statement, db: db)
            #expect(throws: DatabaseError.self) { try row.execute(statement, db: db) }  // UNIQUE
            row.start(); row.text("z")
            try row.execute(statement, db: db)
            #expect(try String.fetchAll(db, sql: "SELECT a FROM t ORDER BY a") == ["x", "z"])
        }
    }
}
