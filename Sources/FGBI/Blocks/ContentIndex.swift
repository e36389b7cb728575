import CSupport

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

/// Content hash to a block with that content, across every region of a primary: the FGBI paper's index.
///
/// Each entry keeps one stored copy of the content and the location where the backup holds it, so a later
/// block with the same hash can be compared bitwise against immutable bytes (the guest may be running
/// again) and, when identical, sent as a reference to that location. Entries live within a memory budget,
/// oldest evicted first. The invariant that makes references safe: an entry tagged with location L exists
/// only while the backup's content at L is the stored copy; ``retire(hash:at:)`` drops it when L changes.
final class ContentIndex {
    let keying: IndexKeying
    private let store: CopyStore

    init(blockSize: Int, budgetBytes: Int, keying: IndexKeying) {
        self.keying = keying
        store = CopyStore(slotSize: blockSize, budgetBytes: budgetBytes)
    }

    var metadataBytes: Int { store.totalBytes }
    var entries: Int { store.count }
    var evictions: Int { store.evictions }

    /// The entry whose key matches `hash`: a candidate to compare bitwise, not yet a match.
    @inline(__always)
    func candidate(for hash: UInt64) -> (bytes: UnsafeRawPointer, location: BlockLocation)? {
        guard let slot = store.find(keying.key(hash)) else { return nil }
        return (UnsafeRawPointer(store.bytes(slot)), BlockLocation(packed: store.tag(slot)))
    }

    /// The backup's current content at `location`, if this index holds it: the entry for the block's
    /// recorded hash, tagged with that very location.
    @inline(__always)
    func content(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer? {
        guard let slot = store.find(keying.key(hash)), store.tag(slot) == location.packed else { return nil }
        return UnsafeRawPointer(store.bytes(slot))
    }

    /// Drops the entry for `hash` if it points at `location`, whose content is changing.
    @inline(__always)
    func retire(hash: UInt64, at location: BlockLocation) {
        store.remove(keying.key(hash), ifTag: location.packed)
    }

    /// Records that the backup now holds `bytes` (hashing to `hash`) at `location`, unless an entry for the
    /// key exists already (its location serves as well).
    @inline(__always)
    func add(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer) {
        let key = keying.key(hash)
        guard store.find(key) == nil else { return }
        store.store(key, tag: location.packed, from: bytes)
    }
}
