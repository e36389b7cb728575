import CSupport

#if canImport(Glibc)
import Glibc
#endif

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
/// Each entry keeps one stored copy of the content (in a memory budget, oldest evicted first) and the
/// location where the backup holds it, so a later block with the same hash is compared bitwise against
/// immutable bytes (the guest may be running again) and, when identical, sent as a reference.
///
/// The invariants that make references exact:
/// - an entry tagged with location L exists only while the backup's content at L is its stored copy:
///   when L changes, ``takePrevious(at:hash:)`` retires the entry (handing its bytes out once, as the base
///   for a difference);
/// - an entry added during epoch E describes content that exists only once epoch E is applied: a match on it
///   during E is a copy of that earlier block of the same epoch (``Match/copyEpoch(_:)``), from epoch E+1 on
///   a copy from L (``Match/copy(_:)``).
///
/// The table is open addressing with linear probing and backward-shift deletion, one 32-byte entry per
/// probe step, and ``prefetch(hash:)`` lets the encoder hide the memory latency of lookups. Allocates only
/// at creation.
final class ContentIndex {
    private struct Entry {
        var key: UInt64
        var location: UInt64
        var epoch: UInt64
        /// Store slot + 1; 0 marks an empty entry.
        var slotPlusOne: UInt32
        var ordinal: UInt32
    }

    /// What a changed block's new content matched.
    enum Match: Equatable {
        /// Nothing with this key.
        case none
        /// Identical to what the backup held at this location before this epoch.
        case copy(BlockLocation)
        /// Identical to the block with this ordinal earlier in this epoch.
        case copyEpoch(Int)
        /// The key matched different bytes: a hash (or key) collision, never shared.
        case collision
    }

    let keying: IndexKeying
    private let blockSize: Int
    private let entries: UnsafeMutablePointer<Entry>
    private let mask: Int
    /// Stored copies: `slotCount` blocks, and for each the key of the entry that owns it (or none).
    private let storage: UnsafeMutableRawPointer
    private let slotOwner: UnsafeMutablePointer<UInt64>
    private let slotUsed: UnsafeMutablePointer<Bool>
    private let slotCount: Int
    /// The mutable counters, behind a pointer: a class's `var`s cost an exclusivity check per access.
    private struct Counters {
        var hand = 0
        var epoch: UInt64 = 0
        var entries = 0
        var evictions = 0
    }
    private let counters: UnsafeMutablePointer<Counters>

    var entryCount: Int { counters.pointee.entries }
    var evictions: Int { counters.pointee.evictions }

    init(blockSize: Int, budgetBytes: Int, keying: IndexKeying) {
        self.keying = keying
        self.blockSize = blockSize
        slotCount = max(budgetBytes / blockSize, 1)
        var capacity = 16
        while capacity < slotCount * 2 { capacity <<= 1 }
        mask = capacity - 1
        entries = .allocate(capacity: capacity)
        entries.initialize(repeating: Entry(key: 0, location: 0, epoch: 0, slotPlusOne: 0, ordinal: 0), count: capacity)
        storage = .allocate(byteCount: slotCount * blockSize, alignment: 64)
        slotOwner = .allocate(capacity: slotCount)
        slotOwner.initialize(repeating: 0, count: slotCount)
        slotUsed = .allocate(capacity: slotCount)
        slotUsed.initialize(repeating: false, count: slotCount)
        counters = .allocate(capacity: 1)
        counters.initialize(to: Counters())
    }

    deinit {
        entries.deallocate()
        storage.deallocate()
        slotOwner.deallocate()
        slotUsed.deallocate()
        counters.deallocate()
    }

    /// Bytes held: stored copies, table and bookkeeping.
    var metadataBytes: Int { slotCount * (blockSize + 9) + (mask + 1) * MemoryLayout<Entry>.stride }

    /// Starts epoch `number`: entries added from now on are this epoch's.
    func beginEpoch(_ number: UInt64) { counters.pointee.epoch = number &+ 1 }  // stored + 1 so 0 never matches

    @inline(__always)
    private func home(_ key: UInt64) -> Int { Int(truncatingIfNeeded: key ^ (key >> 29)) & mask }

    @inline(__always)
    private func slotBytes(_ slotPlusOne: UInt32) -> UnsafeMutableRawPointer { storage + (Int(slotPlusOne) - 1) * blockSize }

    /// Starts loading the table line `hash` will probe first.
    @inline(__always)
    func prefetch(hash: UInt64) {
        CSupport_prefetch(entries + home(keying.key(hash)))
    }

    /// Starts loading the table line of the entry that the `ahead`-th next addition will evict.
    @inline(__always)
    func prefetchEviction(ahead: Int) {
        let slot = (counters.pointee.hand + ahead) % slotCount
        if slotUsed[slot] { CSupport_prefetch(entries + home(slotOwner[slot])) }
    }

    /// The position of `key` in the table, if present.
    @inline(__always)
    private func position(of key: UInt64) -> Int? {
        var index = home(key)
        while entries[index].slotPlusOne != 0 {
            if entries[index].key == key { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Looks up a changed block's new content and compares it bitwise with the stored copy.
    @inline(__always)
    func match(hash: UInt64, bytes: UnsafeRawPointer) -> Match {
        guard let index = position(of: keying.key(hash)) else { return .none }
        let entry = entries[index]
        guard memcmp(slotBytes(entry.slotPlusOne), bytes, blockSize) == 0 else { return .collision }
        return entry.epoch == counters.pointee.epoch ? .copyEpoch(Int(entry.ordinal)) : .copy(BlockLocation(packed: entry.location))
    }

    /// Retires the entry holding `location`'s content before this epoch (its recorded `hash`), if this
    /// index holds it, and returns that content for use as a difference base. The bytes stay valid until
    /// the next ``add(hash:at:bytes:ordinal:)``.
    @inline(__always)
    func takePrevious(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer? {
        guard let index = position(of: keying.key(hash)), entries[index].location == location.packed,
              entries[index].epoch != counters.pointee.epoch else { return nil }
        let slotPlusOne = entries[index].slotPlusOne
        slotUsed[Int(slotPlusOne) - 1] = false
        delete(at: index)
        return UnsafeRawPointer(slotBytes(slotPlusOne))
    }

    /// Records that, once this epoch is applied, the backup holds `bytes` (hashing to `hash`) at `location`,
    /// the epoch's block number `ordinal`; nothing happens when the key is taken.
    @inline(__always)
    func add(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
        let key = keying.key(hash)
        guard position(of: key) == nil else { return }
        let slot = counters.pointee.hand
        counters.pointee.hand = slot + 1 == slotCount ? 0 : slot + 1
        if slotUsed[slot] {
            if let owner = position(of: slotOwner[slot]) { delete(at: owner) }
            counters.pointee.evictions += 1
        }
        slotUsed[slot] = true
        slotOwner[slot] = key
        (storage + slot * blockSize).copyMemory(from: bytes, byteCount: blockSize)
        var index = home(key)
        while entries[index].slotPlusOne != 0 { index = (index + 1) & mask }
        entries[index] = Entry(key: key, location: location.packed, epoch: counters.pointee.epoch,
                               slotPlusOne: UInt32(slot + 1), ordinal: UInt32(ordinal))
        counters.pointee.entries += 1
    }

    /// Backward-shift deletion: later entries of the probe run move up, so lookups need no tombstones.
    private func delete(at start: Int) {
        var hole = start
        var index = (start + 1) & mask
        while entries[index].slotPlusOne != 0 {
            let wanted = home(entries[index].key)
            if (index - wanted) & mask >= (index - hole) & mask {
                entries[hole] = entries[index]
                hole = index
            }
            index = (index + 1) & mask
        }
        entries[hole].slotPlusOne = 0
        counters.pointee.entries -= 1
    }
}
