import CLMDB
import FGBIBench
import Foundation

/// An LMDB environment with one unnamed database, opened on a single file (MDB_NOSUBDIR).
///
/// With ``Options/writeMap`` LMDB maps the whole file read-write and shared (`MAP_SHARED`), ftruncates it to
/// the map size, and makes every change, data pages and meta pages alike, by storing into that map: the map
/// is then exactly the database, and a copy of its bytes taken between two transactions is a database LMDB
/// opens. That is what lets FGBI replicate it as an adopted ``GuestMemory`` region (``mapAddress``,
/// ``mapLength``). Without write-map LMDB writes pages with `pwrite`, which no page-table tracker sees.
public final class LMDBEnvironment: @unchecked Sendable {
    /// How to open the environment.
    public struct Options: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// MDB_WRITEMAP: a writable shared map; the configuration FGBI replicates.
        public static let writeMap = Options(rawValue: UInt32(MDB_WRITEMAP))
        /// MDB_NOSYNC: no msync at commit (the file is on tmpfs, or replication is the durability).
        public static let noSync = Options(rawValue: UInt32(MDB_NOSYNC))
        /// MDB_RDONLY: read-only.
        public static let readOnly = Options(rawValue: UInt32(MDB_RDONLY))
        /// MDB_NOLOCK: no lock file (a single process that does its own locking, e.g. a verifier).
        public static let noLock = Options(rawValue: UInt32(MDB_NOLOCK))
    }

    private let environment: OpaquePointer
    private var database: MDB_dbi
    /// The database file.
    public let path: String

    /// Opens (creating if needed) the database file at `path` with a map of `mapBytes`.
    ///
    /// - Throws: ``LMDBError`` naming the failed call.
    public init(path: String, mapBytes: Int, options: Options) throws(LMDBError) {
        self.path = path
        var database: MDB_dbi = 0
        var created: OpaquePointer?
        try LMDBError.check(mdb_env_create(&created), "mdb_env_create")
        guard let environment = created else { throw LMDBError(operation: "mdb_env_create", code: ENOMEM_CODE) }
        do {
            try LMDBError.check(mdb_env_set_mapsize(environment, mapBytes), "mdb_env_set_mapsize(\(mapBytes))")
            let flags = options.rawValue | UInt32(MDB_NOSUBDIR) | UInt32(MDB_NOTLS)
            try LMDBError.check(mdb_env_open(environment, path, flags, 0o600), "mdb_env_open(\(path))")
            var transaction: OpaquePointer?
            let readOnly = options.contains(.readOnly)
            try LMDBError.check(
                mdb_txn_begin(environment, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &transaction), "mdb_txn_begin")
            let opened = mdb_dbi_open(transaction, nil, 0, &database)
            if opened != MDB_SUCCESS || readOnly {
                mdb_txn_abort(transaction)
            } else {
                try LMDBError.check(mdb_txn_commit(transaction), "mdb_txn_commit(mdb_dbi_open)")
            }
            try LMDBError.check(opened, "mdb_dbi_open")
        } catch {
            mdb_env_close(environment)
            throw error
        }
        self.environment = environment
        self.database = database
    }

    deinit {
        mdb_env_close(environment)
    }

    private func info() -> MDB_envinfo {
        var info = MDB_envinfo()
        mdb_env_info(environment, &info)
        return info
    }

    /// The first byte of the database's memory map, found in /proc/self/maps (LMDB reports the address only
    /// for a fixed map): the shared mapping of this file as long as the map. Nil when there is none.
    public func locateMap() throws -> UnsafeMutableRawPointer? {
        let file = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let mappings = try ProcessMemoryMap.read(pid: getpid())
        let length = UInt64(mapLength)
        guard
            let map = mappings.first(where: {
                $0.name == file && $0.end - $0.start == length && $0.permissions.hasSuffix("s")
            })
        else {
            return nil
        }
        return UnsafeMutableRawPointer(bitPattern: UInt(map.start))
    }

    /// The map's length in bytes (the file's length with ``Options/writeMap``).
    public var mapLength: Int { info().me_mapsize }

    /// The bytes of the map the database has ever used: its pages up to the highest page number in use,
    /// free ones included (LMDB reuses freed pages; the file's tail beyond is untouched).
    public var usedBytes: Int { (info().me_last_pgno + 1) * Int(sysconf(Int32(_SC_PAGESIZE))) }

    /// The id of the last committed write transaction (LMDB's own count).
    public var lastTransactionID: Int { info().me_last_txnid }

    /// Runs `body` in a transaction and commits it (a read-only one is ended instead); on a throw it is
    /// aborted and nothing it did is kept.
    public func withTransaction<Result>(
        readOnly: Bool = false,
        _ body: (OpaquePointer) throws(LMDBError) -> Result
    ) throws(LMDBError) -> Result {
        var transaction: OpaquePointer?
        try LMDBError.check(
            mdb_txn_begin(environment, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &transaction), "mdb_txn_begin")
        guard let transaction else { throw LMDBError(operation: "mdb_txn_begin", code: ENOMEM_CODE) }
        let result: Result
        do {
            result = try body(transaction)
        } catch {
            mdb_txn_abort(transaction)
            throw error
        }
        if readOnly {
            mdb_txn_abort(transaction)
        } else {
            try LMDBError.check(mdb_txn_commit(transaction), "mdb_txn_commit")
        }
        return result
    }

    /// Stores `value` under `key` in `transaction`.
    public func put(_ transaction: OpaquePointer, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)
        throws(LMDBError)
    {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_put(transaction, database, &k, &v, 0), "mdb_put")
    }

    /// Deletes `key` in `transaction`; false when it was not there.
    @discardableResult
    public func delete(_ transaction: OpaquePointer, key: UnsafeRawBufferPointer) throws(LMDBError) -> Bool {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(transaction, database, &k, nil)
        if rc == MDB_NOTFOUND { return false }
        try LMDBError.check(rc, "mdb_del")
        return true
    }

    /// Calls `body` with every key and value in key order, inside `transaction`. The buffers are valid
    /// only during the call.
    public func forEach(
        _ transaction: OpaquePointer,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(transaction, database, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val()
        var value = MDB_val()
        var rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
        while rc == MDB_SUCCESS {
            try body(
                UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size),
                UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try LMDBError.check(rc, "mdb_cursor_get") }
    }

    /// The number of entries (from the database's statistics).
    public func count(_ transaction: OpaquePointer) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(transaction, database, &stat), "mdb_stat")
        return stat.ms_entries
    }
}

/// ENOMEM, for the "LMDB returned success and no handle" case that cannot happen but must not crash.
private let ENOMEM_CODE: Int32 = 12
