import Foundation

/// The value of a guest's `primary` key, and of its `committed` key after a promotion (JSON).
public struct PrimaryRecord: Codable, Sendable, Equatable {
    /// The node's name (``EtcdPrimaryLease`` and ``EtcdFailoverArbiter`` are given one).
    public var node: String
    /// The fencing term granted to it.
    public var term: UInt64
    /// For a promoted backup: the last committed epoch it took over at.
    public var epoch: UInt64?

    public init(node: String, term: UInt64, epoch: UInt64? = nil) {
        self.node = node
        self.term = term
        self.epoch = epoch
    }

    var encoded: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// - Throws: ``CoordinationError/malformedRecord(_:_:)`` when the bytes are not a record.
    static func decode(_ bytes: [UInt8], key: String) throws(CoordinationError) -> PrimaryRecord {
        do {
            return try JSONDecoder().decode(PrimaryRecord.self, from: Data(bytes))
        } catch {
            throw .malformedRecord(key, String(decoding: bytes.prefix(200), as: UTF8.self))
        }
    }
}

/// The value of a guest's `term` key: the newest term granted, as decimal text.
enum TermValue {
    static func decode(_ bytes: [UInt8], key: String) throws(CoordinationError) -> UInt64 {
        guard let term = UInt64(String(decoding: bytes, as: UTF8.self)) else {
            throw .malformedRecord(key, String(decoding: bytes.prefix(40), as: UTF8.self))
        }
        return term
    }

    static func encode(_ term: UInt64) -> [UInt8] { Array(String(term).utf8) }
}
