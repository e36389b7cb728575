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
/// The table is open addressing with linear probing and backward-shift deletion, laid out for the cache:
/// each entry is 8 bytes (32 bits of the key, which also give its home, and the slot of its stored copy), so
/// the table for 1 M stored copies is 16 MiB rather than the 64 MiB a full entry per probe step would take,
/// and a probe that misses reads nothing else. The rest of an entry (full key, location, epoch, ordinal)
/// lives with its stored copy, read only when the 32 bits match and, for evictions, in the order the copies
/// were stored. ``prefetch(hash:)`` lets the encoder hide the memory latency of lookups. One bit per block
/// of the regions says whether a stored copy holds that location's content, so the changed block of a
/// location with none (most of them when the written set outgrows the budget) costs no probe for it.
/// Allocates only at creation.
final class ContentIndex {
    /// One probe step: the key's 32 bits that pick its home, and the stored copy's slot + 1 (0: empty).
    private struct Entry {
        var fragment: UInt32
        var slotPlusOne: UInt32
    }

    /// What the index knows of one stored copy.
    private struct Slot {
        var key: UInt64
        var location: UInt64
        /// The epoch (+ 1) that added it.
        var epoch: UInt64
        var ordinal: UInt32
        var used: Bool
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
    /// Stored copies: `slotCount` blocks, and what the index knows of each.
    private let storage: UnsafeMutableRawPointer
    private let slots: UnsafeMutablePointer<Slot>
    private let slotCount: Int
    /// The mutable counters, behind a pointer: a class's `var`s cost an exclusivity check per access.
    private struct Counters {
        var hand = 0
        var epoch: UInt64 = 0
        var entries = 0
        var evictions = 0
    }
    private let counters: UnsafeMutablePointer<Counters>
    /// One bit per block of the regions: a stored copy holds this location's content (empty: not tracked,
    /// every location probed). Read in the capture's order, so sequentially.
    private let held: UnsafeMutablePointer<UInt64>
    private let heldBits: Int
    /// Where each region's bits start in `held`.
    private let regionBitOffsets: [Int]

    var entryCount: Int { counters.pointee.entries }
    var evictions: Int { counters.pointee.evictions }

    /// An index of `budgetBytes / blockSize` stored copies. `regionBlocks` (blocks per region) sizes the
    /// per-location bits; empty leaves them out.
    init(blockSize: Int, budgetBytes: Int, keying: IndexKeying, regionBlocks: [Int] = []) {
        self.keying = keying
        self.blockSize = blockSize
        slotCount = max(budgetBytes / blockSize, 1)
        var capacity = 16
        while capacity < slotCount * 2 { capacity <<= 1 }
        precondition(capacity <= 1 << 32, "a content index of \(slotCount) copies")
        mask = capacity - 1
        entries = HugePageMemory.allocate(Entry.self, capacity: capacity)
        entries.initialize(repeating: Entry(fragment: 0, slotPlusOne: 0), count: capacity)
        storage = .allocate(byteCount: slotCount * blockSize, alignment: 64)
        slots = .allocate(capacity: slotCount)
        slots.initialize(repeating: Slot(key: 0, location: 0, epoch: 0, ordinal: 0, used: false), count: slotCount)
        counters = .allocate(capacity: 1)
        counters.initialize(to: Counters())
        var offsets: [Int] = []
        var bits = 0
        for blocks in regionBlocks {
            offsets.append(bits)
            bits += (blocks + 63) & ~63
        }
        regionBitOffsets = offsets
        heldBits = bits
        held = .allocate(capacity: max(bits / 64, 1))
        held.initialize(repeating: 0, count: max(bits / 64, 1))
    }

    deinit {
        entries.deallocate()
        storage.deallocate()
        slots.deallocate()
        counters.deallocate()
        held.deallocate()
    }

    /// Bytes held: stored copies, table and bookkeeping.
    var metadataBytes: Int {
        slotCount * (blockSize + MemoryLayout<Slot>.stride) + (mask + 1) * MemoryLayout<Entry>.stride + heldBits / 8
    }

    /// The bit of `location` in `held`, if locations are tracked.
    @inline(__always)
    private func heldBit(_ location: UInt64) -> Int? {
        guard heldBits > 0 else { return nil }
        return regionBitOffsets[Int(location >> 40)] + Int(location & (BlockLocation.maxBlocksPerRegion - 1))
    }

    @inline(__always)
    private func setHeld(_ location: UInt64, _ value: Bool) {
        guard let bit = heldBit(location) else { return }
        if value { held[bit >> 6] |= 1 << UInt64(bit & 63) } else { held[bit >> 6] &= ~(1 << UInt64(bit & 63)) }
    }

    /// Starts epoch `number`: entries added from now on are this epoch's.
    func beginEpoch(_ number: UInt64) { counters.pointee.epoch = number &+ 1 }  // stored + 1 so 0 never matches

    /// The 32 bits of `key` an entry keeps; their low bits are its home.
    @inline(__always)
    private func fragment(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key ^ (key >> 29)) }

    @inline(__always)
    private func home(_ fragment: UInt32) -> Int { Int(fragment) & mask }

    @inline(__always)
    private func slotBytes(_ slotPlusOne: UInt32) -> UnsafeMutableRawPointer { storage + (Int(slotPlusOne) - 1) * blockSize }

    /// Starts loading the table line `hash` will probe first.
    @inline(__always)
    func prefetch(hash: UInt64) {
        CSupport_prefetch(entries + home(fragment(keying.key(hash))))
    }

    /// Starts loading the table line of the entry that the `ahead`-th next addition will evict.
    @inline(__always)
    func prefetchEviction(ahead: Int) {
        let slot = (counters.pointee.hand + ahead) % slotCount
        if slots[slot].used { CSupport_prefetch(entries + home(fragment(slots[slot].key))) }
    }

    /// The position of `key` in the table, if present.
    @inline(__always)
    private func position(of key: UInt64) -> Int? {
        let wanted = fragment(key)
        var index = home(wanted)
        while entries[index].slotPlusOne != 0 {
            if entries[index].fragment == wanted && slots[Int(entries[index].slotPlusOne) - 1].key == key { return index }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Looks up a changed block's new content and compares it bitwise with the stored copy.
    @inline(__always)
    func match(hash: UInt64, bytes: UnsafeRawPointer) -> Match {
        guard let index = position(of: keying.key(hash)) else { return .none }
        let slotPlusOne = entries[index].slotPlusOne
        guard memcmp(slotBytes(slotPlusOne), bytes, blockSize) == 0 else { return .collision }
        let slot = slots[Int(slotPlusOne) - 1]
        return slot.epoch == counters.pointee.epoch ? .copyEpoch(Int(slot.ordinal)) : .copy(BlockLocation(packed: slot.location))
    }

    /// Retires the entry holding `location`'s content before this epoch (its recorded `hash`), if this
    /// index holds it, and returns that content for use as a difference base. The bytes stay valid until
    /// the next ``add(hash:at:bytes:ordinal:)``.
    @inline(__always)
    func takePrevious(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer? {
        if let bit = heldBit(location.packed), held[bit >> 6] & (1 << UInt64(bit & 63)) == 0 { return nil }
        guard let index = position(of: keying.key(hash)) else { return nil }
        let slotPlusOne = entries[index].slotPlusOne
        let slot = Int(slotPlusOne) - 1
        guard slots[slot].location == location.packed, slots[slot].epoch != counters.pointee.epoch else { return nil }
        slots[slot].used = false
        setHeld(location.packed, false)
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
        if slots[slot].used {
            if let owner = position(of: slots[slot].key) { delete(at: owner) }
            setHeld(slots[slot].location, false)
            counters.pointee.evictions += 1
        }
        slots[slot] = Slot(key: key, location: location.packed, epoch: counters.pointee.epoch, ordinal: UInt32(ordinal), used: true)
        (storage + slot * blockSize).copyMemory(from: bytes, byteCount: blockSize)
        setHeld(location.packed, true)
        let wanted = fragment(key)
        var index = home(wanted)
        while entries[index].slotPlusOne != 0 { index = (index + 1) & mask }
        entries[index] = Entry(fragment: wanted, slotPlusOne: UInt32(slot + 1))
        counters.pointee.entries += 1
    }

    /// Backward-shift deletion: later entries of the probe run move up, so lookups need no tombstones.
    private func delete(at start: Int) {
        var hole = start
        var index = (start + 1) & mask
        while entries[index].slotPlusOne != 0 {
            let wanted = home(entries[index].fragment)
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
