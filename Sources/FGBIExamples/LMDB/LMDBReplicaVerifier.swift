import FGBI
import Foundation

/// Checks a database file a backup wrote on failover against the history that produced it: LMDB must
/// open it, it must hold exactly what the first `R` transactions left (every key, every value byte, no
/// other key), and `R` must reach the last transaction the primary acknowledged.
public enum LMDBReplicaVerifier {
    /// What a verified replica holds.
    public struct Report: Sendable, Equatable {
        /// The transactions the replica holds (its progress key).
        public var transactions: UInt64
        /// Keys present, the progress key excluded.
        public var keys: Int
        /// LMDB's own id of its last committed write transaction.
        public var lmdbTransactionID: Int
        /// The bytes of the map the database has used (``LMDBEnvironment/usedBytes``).
        public var usedBytes = 0
    }

    /// Why a replica failed verification.
    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens the database at `path` read-only, compares it with `history` and checks it holds at least
    /// `acknowledged` transactions; then opens it read-write and commits a transaction, as a program taking
    /// over would. `path` is changed by that last step (pass a copy to keep the image).
    ///
    /// - Throws: ``LMDBError`` when LMDB cannot open or read it, ``Mismatch`` when its content differs.
    public static func verify(path: String, mapBytes: Int, history: KeyValueHistory, acknowledged: UInt64) throws
        -> Report
    {
        var report = try compare(path: path, mapBytes: mapBytes, history: history)
        guard report.transactions >= acknowledged else {
            throw Mismatch(
                description:
                    "the replica holds \(report.transactions) transactions, but \(acknowledged) were acknowledged")
        }
        // Take over: a write transaction must commit on the replica.
        let environment = try LMDBEnvironment(path: path, mapBytes: mapBytes, options: [.writeMap, .noSync])
        let writer = KeyValueWriter(
            environment: environment, history: history, gate: nil, committed: report.transactions)
        try writer.commitNext()
        report.lmdbTransactionID = environment.lastTransactionID
        return report
    }

    /// Compares the database at `path` with `history`, read-only.
    public static func compare(path: String, mapBytes: Int, history: KeyValueHistory) throws -> Report {
        let environment = try LMDBEnvironment(path: path, mapBytes: mapBytes, options: [.readOnly, .noLock])
        return try environment.withTransaction(readOnly: true) {
            transaction throws(LMDBError) -> Result<Report, Error> in
            Result { try compare(environment, transaction, history: history) }
        }.get()
    }

    private static func compare(_ environment: LMDBEnvironment, _ transaction: OpaquePointer, history: KeyValueHistory)
        throws -> Report
    {
        // Find the progress key first: it is the last key in order.
        var transactions: UInt64?
        var found = 0
        var expected: [UInt64: UInt64] = [:]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: KeyValueHistory.maximumValueLength, alignment: 8)
        defer { buffer.deallocate() }
        var entries: [(key: UInt64, value: [UInt8])] = []
        try environment.forEach(transaction) { key, value in
            guard key.count == 8 else { throw Mismatch(description: "a key of \(key.count) bytes; every key has 8") }
            let decoded = UInt64(bigEndian: key.loadUnaligned(as: UInt64.self))
            if decoded == KeyValueHistory.progressKey {
                guard value.count == 8 else {
                    throw Mismatch(description: "the progress value has \(value.count) bytes, not 8")
                }
                transactions = UInt64(littleEndian: value.loadUnaligned(as: UInt64.self))
            } else {
                entries.append((decoded, Array(value)))
            }
        }
        guard let transactions else {
            guard entries.isEmpty else { throw Mismatch(description: "\(entries.count) keys but no progress key") }
            return Report(
                transactions: 0, keys: 0, lmdbTransactionID: environment.lastTransactionID,
                usedBytes: environment.usedBytes)
        }
        expected = history.state(after: transactions)
        for (key, value) in entries {
            guard let version = expected[key] else {
                throw Mismatch(
                    description: "key \(key) is present, but the first \(transactions) transactions leave it absent")
            }
            let length = KeyValueHistory.writeValue(key: key, version: version, into: buffer)
            guard value.count == length,
                value.withUnsafeBytes({ memcmp($0.baseAddress!, buffer.baseAddress!, length) == 0 })
            else {
                let stored =
                    value.count >= 16
                    ? value.withUnsafeBytes {
                        UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                    } : 0
                throw Mismatch(
                    description:
                        """
                        key \(key) holds \(value.count) bytes (version \(stored)); transaction \(transactions) \
                        leaves version \(version), \(length) bytes
                        """
                )
            }
            found += 1
        }
        guard found == expected.count else {
            let missing = expected.keys.filter { key in !entries.contains { $0.key == key } }.prefix(3)
            throw Mismatch(
                description:
                    """
                    \(expected.count - found) keys missing after transaction \(transactions) (e.g. \
                    \(missing.map(String.init).joined(separator: ", ")))
                    """
            )
        }
        return Report(
            transactions: transactions, keys: found, lmdbTransactionID: environment.lastTransactionID,
            usedBytes: environment.usedBytes)
    }
}
