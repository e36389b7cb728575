import FGBI

/// A deterministic write-heavy key-value history: transaction `t` (from 1) is a fixed list of puts and
/// deletes drawn from `seed` and `t` alone, so any process can regenerate exactly what the first `R`
/// transactions left in a database and compare it, key by key and byte by byte, with a replica.
///
/// Each transaction writes ``writesPerTransaction`` random keys (80% of them from a hot fifth of the key
/// space, as servers see), deletes one in ``deleteOneIn``, and stores its own number under ``progressKey``,
/// so a database says how many transactions it holds. A value's bytes follow from its key and version (the
/// transaction that wrote it): 16 to ``maximumValueLength`` bytes, starting with the key and version.
public struct KeyValueHistory: Sendable, Equatable {
    /// One change of a transaction.
    public enum Operation: Equatable, Sendable {
        /// Store the value of `key` at `version` (an insert or an update).
        case put(key: UInt64, version: UInt64)
        /// Remove `key` (which may be absent).
        case delete(key: UInt64)
    }

    /// The key under which each transaction stores its number; no workload key reaches it.
    public static let progressKey = UInt64.max
    /// The longest value.
    public static let maximumValueLength = 512
    /// The first bytes of a value: its key and version.
    static let valueHeaderLength = 16

    public let seed: UInt64
    /// Keys are 0..<keyCount.
    public let keyCount: Int
    public let writesPerTransaction: Int
    /// One write in this many is a delete.
    public let deleteOneIn: Int

    public init(seed: UInt64, keyCount: Int = 50_000, writesPerTransaction: Int = 8, deleteOneIn: Int = 10)
        throws(FGBIError)
    {
        guard keyCount >= 10, keyCount < 1 << 40 else {
            throw .invalidArgument("the key count must be between 10 and 2^40, not \(keyCount)")
        }
        guard (1...10_000).contains(writesPerTransaction) else {
            throw .invalidArgument("writes per transaction must be between 1 and 10000, not \(writesPerTransaction)")
        }
        guard deleteOneIn >= 2 else { throw .invalidArgument("deletes must be at most one write in two") }
        self.seed = seed
        self.keyCount = keyCount
        self.writesPerTransaction = writesPerTransaction
        self.deleteOneIn = deleteOneIn
    }

    /// Calls `body` with each operation of transaction `number` (from 1), in order.
    @inline(__always)
    public func forEachOperation(in number: UInt64, _ body: (Operation) throws -> Void) rethrows {
        var random = SeededRandom(seed: Self.mix(seed ^ Self.mix(number)))
        let hot = UInt64(max(keyCount / 5, 1))
        for _ in 0..<writesPerTransaction {
            let draw = random.next()
            let key = draw % 5 == 0 ? random.next() % UInt64(keyCount) : random.next() % hot
            if (draw >> 8) % UInt64(deleteOneIn) == 0 {
                try body(.delete(key: key))
            } else {
                try body(.put(key: key, version: number))
            }
        }
    }

    /// The length of the value of `key` at `version`.
    @inline(__always)
    public static func valueLength(key: UInt64, version: UInt64) -> Int {
        valueHeaderLength + Int(mix(key &* 31 &+ version) % UInt64(maximumValueLength - valueHeaderLength + 1))
    }

    /// Writes the value of `key` at `version` into `buffer` (at least ``maximumValueLength`` bytes) and
    /// returns its length.
    @inline(__always)
    public static func writeValue(key: UInt64, version: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = valueLength(key: key, version: version)
        buffer.storeBytes(of: key.littleEndian, toByteOffset: 0, as: UInt64.self)
        buffer.storeBytes(of: version.littleEndian, toByteOffset: 8, as: UInt64.self)
        var random = SeededRandom(seed: mix(key ^ mix(version)))
        var offset = valueHeaderLength
        while offset < length {
            var word = random.next()
            let n = min(8, length - offset)
            withUnsafeBytes(of: &word) {
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + n)]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: $0[0..<n]))
            }
            offset += n
        }
        return length
    }

    /// The 8-byte big-endian encoding of `key`, so LMDB's byte order is numeric order.
    @inline(__always)
    public static func encode(key: UInt64) -> UInt64 { key.bigEndian }

    /// SplitMix64's finaliser: spreads a number's bits over the whole word.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// What the first `transactions` transactions leave: the version of each present key.
    public func state(after transactions: UInt64) -> [UInt64: UInt64] {
        var versions: [UInt64: UInt64] = [:]
        versions.reserveCapacity(keyCount)
        var number: UInt64 = 1
        while number <= transactions {
            forEachOperation(in: number) { operation in
                switch operation {
                case .put(let key, let version): versions[key] = version
                case .delete(let key): versions[key] = nil
                }
            }
            number += 1
        }
        return versions
    }
}
