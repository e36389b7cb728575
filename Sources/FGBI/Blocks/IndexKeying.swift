/// How the content index turns a block hash into its lookup key. Tests force collisions with `lowBits`:
/// different contents then share keys, and every hit must be caught by the bitwise comparison.
public enum IndexKeying: Sendable, Equatable {
    /// The full 64-bit hash (production).
    case fullHash
    /// Only the low `bits` bits of the hash: forces collisions, for tests.
    case lowBits(Int)

    @inline(__always)
    func key(_ hash: UInt64) -> UInt64 {
        switch self {
        case .fullHash: return hash
        // Spread the few distinct keys over the table (the table expects well-mixed keys).
        case .lowBits(let bits): return (hash & ((1 << UInt64(bits)) - 1)) &* 0x9E37_79B9_7F4A_7C15
        }
    }
}
