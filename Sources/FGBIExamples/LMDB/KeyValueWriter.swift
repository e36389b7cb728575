/// Applies a ``KeyValueHistory`` to an ``LMDBEnvironment``, one transaction per call, through a
/// ``TransactionGate``. Allocates nothing per transaction.
public final class KeyValueWriter {
    public let environment: LMDBEnvironment
    public let history: KeyValueHistory
    private let gate: TransactionGate?
    private let value = UnsafeMutableRawBufferPointer.allocate(
        byteCount: KeyValueHistory.maximumValueLength, alignment: 8)
    /// The last transaction committed (0 before the first).
    public private(set) var committed: UInt64

    /// A writer that continues after transaction `committed` (0 for a new database).
    public init(environment: LMDBEnvironment, history: KeyValueHistory, gate: TransactionGate?, committed: UInt64 = 0) {
        self.environment = environment
        self.history = history
        self.gate = gate
        self.committed = committed
    }

    deinit { value.deallocate() }

    /// Runs and commits the next transaction; returns its number.
    @discardableResult
    public func commitNext() throws(LMDBError) -> UInt64 {
        let number = committed + 1
        gate?.enter()
        defer { gate?.leave() }
        try environment.withTransaction { transaction throws(LMDBError) in
            do {
                try history.forEachOperation(in: number) { operation in
                    switch operation {
                    case .put(let key, let version):
                        let length = KeyValueHistory.writeValue(key: key, version: version, into: value)
                        try put(transaction, key: key, value: UnsafeRawBufferPointer(rebasing: value[0..<length]))
                    case .delete(let key):
                        var encoded = KeyValueHistory.encode(key: key)
                        _ = try withUnsafeBytes(of: &encoded) { try environment.delete(transaction, key: $0) }
                    }
                }
            } catch let error as LMDBError {
                throw error
            } catch {
                throw LMDBError(operation: "transaction \(number)", code: -1)
            }
            var progress = number.littleEndian
            try withUnsafeBytes(of: &progress) { bytes throws(LMDBError) in
                try put(transaction, key: KeyValueHistory.progressKey, value: bytes)
            }
        }
        committed = number
        return number
    }

    private func put(_ transaction: OpaquePointer, key: UInt64, value: UnsafeRawBufferPointer) throws(LMDBError) {
        var encoded = KeyValueHistory.encode(key: key)
        try withUnsafeBytes(of: &encoded) { keyBytes throws(LMDBError) in
            try environment.put(transaction, key: keyBytes, value: value)
        }
    }
}
