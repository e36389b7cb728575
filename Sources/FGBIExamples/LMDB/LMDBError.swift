import CLMDB

/// A failed LMDB call: the operation, LMDB's return code and its message (`mdb_strerror`).
public struct LMDBError: Error, CustomStringConvertible, Equatable {
    /// What was being done, e.g. `mdb_env_open(/dev/shm/db)`.
    public var operation: String
    /// LMDB's return code: an errno value or one of its own (MDB_MAP_FULL, MDB_CORRUPTED, ...).
    public var code: Int32

    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        let message = String(cString: mdb_strerror(code))
        var hint = ""
        switch code {
        case MDB_MAP_FULL: hint = ": the database is larger than its map; give a larger --map-mib"
        case MDB_INVALID, MDB_CORRUPTED: hint = ": the file is not an intact LMDB database"
        case MDB_VERSION_MISMATCH: hint = ": the file was written by another LMDB version"
        default: break
        }
        return "\(operation): \(message) (\(code))\(hint)"
    }

    /// Throws an ``LMDBError`` when `code` is not `MDB_SUCCESS`.
    @inline(__always)
    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
        if code != MDB_SUCCESS { throw LMDBError(operation: operation(), code: code) }
    }
}
