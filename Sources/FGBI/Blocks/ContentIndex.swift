import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Content hash to a block with that content, across every region of a primary: the FGBI paper's index.
///
/// Each stored copy (in a memory budget, oldest evicted first) keeps the content and the location where the
/// backup holds it, so a later block with the same hash is compared bitwise against immutable bytes (the
/// guest may be running again) and, when identical, sent as a reference.
///
/// The invariants that make references exact:
/// - a stored copy tagged with location L is in use only while the backup's content at L is that copy:
///   when L changes, ``takePrevious(at:hash:)`` retires it (its bytes a difference's base; until the epoch
///   ends, the backup still holds them at L: a lookup may find them as a copy from L, `ContentIndex+DeadEntries`);
/// - a copy stored during epoch E describes content that exists only once epoch E is applied: a match on it
///   during E is a copy of that earlier block of the same epoch (``Match/copyEpoch(_:)``), from epoch E+1 on
///   a copy from L (``Match/copy(_:)``).
///
/// Two ways in. By location: with per-location bits (`regionBlocks`), one bit per block of the regions
/// says whether a stored copy holds that location's content, and a slot number per block says which, so the
/// previous content of a changed location is found and retired with no table probe, and a copied run is
/// followed by location (``match(hash:bytes:likelyAt:probing:)``'s candidate). By content: the table, which
/// the encoder consults for a sample of blocks only (anchors, ``BlockDeltaEncoder``); a copy may be stored
/// without a table entry (``store(hash:at:bytes:ordinal:)``) and is then found by location only.
///
/// The table is open addressing with linear probing, laid out for the cache: each entry is 8 bytes (32
/// bits of the key, which also give its home, and the slot of its stored copy with the lap of the slot ring
/// in which it was filled), so the table for 1 M stored copies is 64 MiB (``positionsPerCopy``) rather
/// than the 256 MiB a full entry per probe step would take, and a probe that misses reads nothing else. The
/// rest (full key, location, epoch, ordinal) lives with the stored copy, read only when the 32 bits match.
/// ``prefetch(hash:)`` lets the encoder hide the memory latency of lookups.
///
/// Evictions are lazy. Stored copies are reused in ring order, so the lap in an entry says whether its slot
/// still holds its content: once the ring's hand passes the slot again the entry is *stale*, skipped by
/// lookups (no memory read: the lap is in the entry) and reused by insertions like a tombstone. An eviction
/// therefore touches no table line (under dense writes every addition evicts, and an eager deletion cost a
/// cache miss and a backward shift each); when stale entries reach half the table one sequential sweep
/// removes them all. The table has eight positions per stored copy, so live and stale entries together fill
/// at most five eighths of it. Retiring a location's content by location leaves its entry *dead* in place
/// (lookups check that the slot is in use and holds the key), stale once the hand refills the slot; without
/// per-location bits it leaves a tombstone in the line the probe has just read. Allocates only at creation.
final class ContentIndex {
    let keying: IndexKeying
    let blockSize: Int
    let entries: UnsafeMutablePointer<Entry>
    let mask: Int
    /// Stored copies: `slotCount` blocks, and what the index knows of each.
    private let storage: UnsafeMutableRawPointer
    let slots: UnsafeMutablePointer<Slot>
    let slotCount: Int
    /// The mutable counters, behind a pointer: a class's `var`s cost an exclusivity check per access.
    struct Counters {
        /// The next slot to fill, and how many times it went round the ring.
        var hand = 0
        var lap: UInt32 = 0
        var lapOfLastSweep: UInt32 = 0
        var epoch: UInt64 = 0
        /// Live entries, and (about) how many stale ones are still in the table.
        var entries = 0
        var stale = 0
        var evictions = 0
        var sweeps = 0
        /// Copies stored of content the backup held before the session (``learnHeld(hash:at:bytes:)``).
        var heldLearned = 0
        /// The last dead entry a probe met; how many a new entry replaced, how many gave a copy (this epoch's).
        var deadEntry = (key: UInt64(0), position: 0, tag: UInt32(0))
        var (deadEntriesReused, retiredCopies) = (0, 0)
    }
    let counters: UnsafeMutablePointer<Counters>
    /// One bit per block of the regions: a stored copy holds this location's content (empty: not tracked,
    /// every location probed). Read in the capture's order, so sequentially.
    let held: UnsafeMutablePointer<UInt64>
    let heldBits: Int
    /// Where each region's bits start in `held` (and its locations in `slotOfLocation`).
    /// (A pointer, not an array: read for every stored, retired and evicted block, where an array's bounds check
    /// and buffer load showed in the profile.)
    private let regionBitOffsets: UnsafeMutablePointer<Int>
    /// Blocks per region: a location outside them has no bit.
    let regionBlockCounts: [Int]
    /// Per block location (indexed like `held`), the slot + 1 that last stored its content (0: none), so the
    /// previous content of a changed location is found without a table probe (``takePrevious(at:hash:)``).
    /// May name a slot that has since been retired or refilled: the slot's own bookkeeping says which.
    let slotOfLocation: UnsafeMutablePointer<UInt32>

    /// The most stored copies an index holds (its entries name a slot in 29 bits): 32 GiB of 64-byte blocks.
    static let maximumCopies = Int(Entry.slotMask) - 1

    var entryCount: Int { counters.pointee.entries }
    var copyCapacity: Int { slotCount }
    var evictions: Int { counters.pointee.evictions }
    /// Sweeps of stale entries so far.
    var sweeps: Int { counters.pointee.sweeps }
    /// Dead entries (left by retirement by location) that a new entry of their key replaced in place.
    var deadEntriesReused: Int { counters.pointee.deadEntriesReused }
    /// Copies found in content retired earlier in the same epoch (``matchRetiredThisEpoch(key:bytes:)``).
    var retiredCopies: Int { counters.pointee.retiredCopies }

    /// An index of `budgetBytes / blockSize` stored copies. `regionBlocks` (blocks per region) sizes the
    /// per-location bits; empty leaves them out.
    init(blockSize: Int, budgetBytes: Int, keying: IndexKeying, regionBlocks: [Int] = []) {
        self.keying = keying
        self.blockSize = blockSize
        slotCount = max(budgetBytes / blockSize, 1)
        var capacity = 16
        while capacity < slotCount * Self.positionsPerCopy { capacity <<= 1 }
        precondition(slotCount <= Self.maximumCopies, "a content index of \(slotCount) copies")
        mask = capacity - 1
        entries = HugePageMemory.allocate(Entry.self, capacity: capacity)
        entries.initialize(repeating: Entry(fragment: 0, tag: 0), count: capacity)
        storage = HugePageMemory.allocatePrefaulted(byteCount: slotCount * blockSize)
        slots = HugePageMemory.allocate(Slot.self, capacity: slotCount)
        slots.initialize(
            repeating: Slot(key: 0, location: 0, epoch: 0, ordinal: 0, used: false, indexed: false, deadEntry: false),
            count: slotCount)
        counters = .allocate(capacity: 1)
        counters.initialize(to: Counters())
        var offsets: [Int] = []
        var bits = 0
        for blocks in regionBlocks {
            offsets.append(bits)
            bits += (blocks + 63) & ~63
        }
        regionBitOffsets = .allocate(capacity: max(offsets.count, 1))
        regionBitOffsets.initialize(repeating: 0, count: max(offsets.count, 1))
        for (region, offset) in offsets.enumerated() { regionBitOffsets[region] = offset }
        regionBlockCounts = regionBlocks
        heldBits = bits
        held = HugePageMemory.allocate(UInt64.self, capacity: max(bits / 64, 1))
        held.initialize(repeating: 0, count: max(bits / 64, 1))
        slotOfLocation = HugePageMemory.allocate(UInt32.self, capacity: max(bits, 1))
        slotOfLocation.initialize(repeating: 0, count: max(bits, 1))
    }

    deinit {
        entries.deallocate()
        storage.deallocate()
        slots.deallocate()
        counters.deallocate()
        held.deallocate()
        slotOfLocation.deallocate()
        regionBitOffsets.deallocate()
    }

    /// Bytes held: stored copies, table and bookkeeping.
    var metadataBytes: Int {
        slotCount * (blockSize + MemoryLayout<Slot>.stride) + (mask + 1) * MemoryLayout<Entry>.stride + heldBits / 8
            + heldBits * MemoryLayout<UInt32>.stride
    }

    /// The bit of `location` in `held`, if locations are tracked.
    @inline(__always)
    func heldBit(_ location: UInt64) -> Int? {
        guard heldBits > 0 else { return nil }
        // Unchecked in release builds (`regionBitOffsets` is a raw pointer): locations come from the engine's own
        // captures, of its own regions.
        assert(Int(location >> 40) < regionBlockCounts.count, "a location in region \(location >> 40)")
        return regionBitOffsets[Int(location >> 40)] + Int(location & (BlockLocation.maxBlocksPerRegion - 1))
    }

    /// Whether bit `bit` of `held` is set: a stored copy holds that location's content.
    @inline(__always)
    func isHeld(_ bit: Int) -> Bool { held[bit >> 6] & (1 << UInt64(bit & 63)) != 0 }

    @inline(__always)
    private func setHeld(_ location: UInt64, _ value: Bool) {
        guard let bit = heldBit(location) else { return }
        if value { held[bit >> 6] |= 1 << UInt64(bit & 63) } else { held[bit >> 6] &= ~(1 << UInt64(bit & 63)) }
    }

    /// Starts epoch `number`: entries added from now on are this epoch's.
    func beginEpoch(_ number: UInt64) { counters.pointee.epoch = number &+ 1 } // stored + 1 so 0 never matches

    /// The 32 bits of `key` an entry keeps; their low bits are its home.
    @inline(__always)
    func fragment(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key ^ (key >> 29)) }

    @inline(__always)
    func home(_ fragment: UInt32) -> Int { Int(fragment) & mask }

    @inline(__always)
    func slotBytes(_ slotPlusOne: UInt32) -> UnsafeMutableRawPointer { storage + (Int(slotPlusOne) - 1) * blockSize }

    /// The per-location bits of the page whose first block is `location` (64 blocks per page, so one aligned
    /// word: each region's bits start at a multiple of 64): bit k set when a stored copy may hold block k's
    /// content. Only with ``keepsLocationBits``.
    @inline(__always)
    func heldBits(ofPageAt location: BlockLocation) -> UInt64 {
        held[heldBit(location.packed)! >> 6]
    }

    /// The tag of an entry for `slot`, filled now.
    @inline(__always)
    private func tag(slot: Int) -> UInt32 {
        (counters.pointee.lap & (Entry.lapCount - 1)) << Entry.lapShift | UInt32(slot + 1)
    }

    /// Whether a non-empty entry's slot may still hold its content: the slot was filled in the lap the entry
    /// names (slots behind the hand in this lap, the others in the previous one). A sweep leaves only entries
    /// of the current lap and the one before, and runs again within ``Entry/lapCount`` - 1 laps, so an
    /// entry's lap (mod ``Entry/lapCount``) never aliases a later one. (Were it to, a lookup would still
    /// answer only for the slot's current content, because it also checks that the slot is in use and holds
    /// the key.) A tombstone is never live.
    @inline(__always)
    func isLive(_ entry: Entry) -> Bool {
        // slot < hand, that is slot + 1 <= hand: filled in this lap; else in the one before (the shim's sweep
        // asks the same: CSupport_index_live_mask).
        let before: UInt32 = Int(entry.slotPlusOne) > counters.pointee.hand ? 1 : 0
        let lapMismatch = entry.tag >> Entry.lapShift ^ ((counters.pointee.lap &- before) & (Entry.lapCount - 1))
        let tombstone: UInt32 = entry.tag == Entry.tombstone ? 1 : 0
        return lapMismatch | tombstone == 0
    }

    /// The position of `key` in the table, if present.
    @inline(__always)
    func position(of key: UInt64) -> Int? {
        let wanted = fragment(key)
        var index = home(wanted)
        while !entries[index].isEmpty {
            let entry = entries[index]
            if entry.fragment == wanted && isLive(entry) {
                let slot = slots[Int(entry.slotPlusOne) - 1]
                if slot.used && slot.key == key { return index }
                if !slot.used && slot.deadEntry { counters.pointee.deadEntry = (key, index, entry.tag) }
            }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Looks up a changed block's new content and compares it bitwise with the stored copy.
    @inline(__always)
    func match(hash: UInt64, bytes: UnsafeRawPointer) -> Match {
        match(hash: hash, bytes: bytes, likelyAt: nil).match
    }

    /// ``match(hash:bytes:)``, trying first the stored copy of `candidate`'s content (where the block after a
    /// copied block's source usually holds the next one: a copied run), found through the location's slot
    /// with no table probe, then (when `probing`) the table; also returns where the backup holds (or, for a
    /// copy within this epoch, will hold) the matched content. Either way a match is bitwise, and names a
    /// location whose content the backup holds (or this epoch's block that will hold it).
    @inline(__always)
    func match(
        hash: UInt64, bytes: UnsafeRawPointer, likelyAt candidate: BlockLocation?,
        probing: Bool = true
    ) -> (match: Match, source: BlockLocation?) {
        let key = keying.key(hash)
        let slotPlusOne: UInt32
        if let candidate, let held = slotHolding(candidate), slots[Int(held) - 1].key == key {
            slotPlusOne = held
        } else {
            guard probing else { return (.none, nil) }
            guard let index = position(of: key) else { return matchRetiredThisEpoch(key: key, bytes: bytes) }
            slotPlusOne = entries[index].slotPlusOne
        }
        guard memcmp(slotBytes(slotPlusOne), bytes, blockSize) == 0 else { return (.collision, nil) }
        let slot = slots[Int(slotPlusOne) - 1]
        let source = BlockLocation(packed: slot.location)
        return (slot.epoch == counters.pointee.epoch ? .copyEpoch(Int(slot.ordinal)) : .copy(source), source)
    }

    /// The slot + 1 in use for `location`'s content, if the index keeps per-location bits and holds it.
    @inline(__always)
    private func slotHolding(_ location: BlockLocation) -> UInt32? {
        guard let bit = trackedBit(location), isHeld(bit) else { return nil }
        let slotPlusOne = slotOfLocation[bit]
        guard slotPlusOne != 0, slots[Int(slotPlusOne) - 1].used,
            slots[Int(slotPlusOne) - 1].location == location.packed
        else { return nil }
        return slotPlusOne
    }

    /// Retires the entry holding `location`'s content before this epoch (its recorded `hash`), if this
    /// index holds it, and returns that content for use as a difference base. The bytes stay valid until
    /// the next ``add(hash:at:bytes:ordinal:)``.
    ///
    /// With per-location bits, found through the location's slot (no table probe), its table entry left dead
    /// in place (lookups read the slot, which is no longer in use); without them, through the table, the
    /// entry made a tombstone.
    @inline(__always)
    func takePrevious(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer? {
        guard let bit = heldBit(location.packed) else { return takePreviousByKey(at: location, hash: hash) }
        guard isHeld(bit) else { return nil }
        let slotPlusOne = slotOfLocation[bit]
        let slot = Int(slotPlusOne) - 1
        guard slotPlusOne != 0, slots[slot].used, slots[slot].location == location.packed,
            slots[slot].key == keying.key(hash),
            slots[slot].epoch != counters.pointee.epoch
        else { return nil }
        retire(slot)
        slots[slot].deadEntry = slots[slot].indexed
        held[bit >> 6] &= ~(1 << UInt64(bit & 63))
        counters.pointee.entries -= 1
        return UnsafeRawPointer(slotBytes(slotPlusOne))
    }

    /// ``takePrevious(at:hash:)`` through the table, for an index without per-location bits.
    private func takePreviousByKey(at location: BlockLocation, hash: UInt64) -> UnsafeRawPointer? {
        guard let index = position(of: keying.key(hash)) else { return nil }
        let slotPlusOne = entries[index].slotPlusOne
        let slot = Int(slotPlusOne) - 1
        guard slots[slot].location == location.packed, slots[slot].epoch != counters.pointee.epoch else { return nil }
        retire(slot)
        setHeld(location.packed, false)
        entries[index].tag = Entry.tombstone
        counters.pointee.entries -= 1
        counters.pointee.stale += 1
        // A sweep moves entries only: the stored copy handed out stays where it is.
        if counters.pointee.stale > (mask + 1) / 2 { sweep() }
        return UnsafeRawPointer(slotBytes(slotPlusOne))
    }

    /// Records that, once this epoch is applied, the backup holds `bytes` (hashing to `hash`) at `location`,
    /// the epoch's block number `ordinal`; nothing happens when the key is taken.
    @inline(__always)
    func add(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
        let key = keying.key(hash)
        guard position(of: key) == nil else { return }
        insert(key: key, at: location, bytes: bytes, ordinal: ordinal, indexed: true)
    }

    @inline(__always)
    func addAbsent(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
        insert(key: keying.key(hash), at: location, bytes: bytes, ordinal: ordinal, indexed: true)
    }

    /// Records, like ``add(hash:at:bytes:ordinal:)``, that the backup will hold `bytes` at `location`, with no
    /// table entry: the copy is found only through its location (the previous content of `location`, or a
    /// `likelyAt` candidate of ``match(hash:bytes:likelyAt:)``), so it costs no table access. Only for an
    /// index with per-location bits (``keepsLocationBits``), which retire it by location.
    @inline(__always)
    func store(hash: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int) {
        guard findsByLocation else { return add(hash: hash, at: location, bytes: bytes, ordinal: ordinal) }
        insert(key: keying.key(hash), at: location, bytes: bytes, ordinal: ordinal, indexed: false)
    }

    /// Stores a copy of `bytes` for `key` in the slot under the hand, and when `indexed` a table entry for it
    /// (the key is then not in the table); `heldBefore`: content the backup held before this epoch.
    @inline(__always)
    func insert(
        key: UInt64, at location: BlockLocation, bytes: UnsafeRawPointer, ordinal: Int, indexed: Bool,
        heldBefore: Bool = false
    ) {
        let slot = counters.pointee.hand
        if slots[slot].used {
            // Its entry (if any) goes stale as the hand passes: no table access.
            setHeld(slots[slot].location, false)
            counters.pointee.evictions += 1
            counters.pointee.entries -= 1
            if slots[slot].indexed { counters.pointee.stale += 1 }
        } else if slots[slot].deadEntry {
            // The dead entry of a slot retired by location goes stale as the hand passes.
            counters.pointee.stale += 1
        }
        let entryTag = tag(slot: slot)
        if slot + 1 == slotCount {
            counters.pointee.hand = 0
            counters.pointee.lap &+= 1
            if counters.pointee.lap &- counters.pointee.lapOfLastSweep >= Entry.lapCount - 1 { sweep() }
        } else {
            counters.pointee.hand = slot + 1
        }
        slots[slot] = Slot(
            key: key, location: location.packed, epoch: heldBefore ? 0 : counters.pointee.epoch,
            ordinal: UInt32(ordinal), used: true, indexed: indexed, deadEntry: false)
        (storage + slot * blockSize).copyMemory(from: bytes, byteCount: blockSize)
        if let bit = heldBit(location.packed) {
            held[bit >> 6] |= 1 << UInt64(bit & 63)
            slotOfLocation[bit] = UInt32(slot + 1)
        }
        counters.pointee.entries += 1
        guard indexed else { return }
        if counters.pointee.stale > (mask + 1) / 2 { sweep() }
        let wanted = fragment(key)
        if reuseDeadEntry(key: key, fragment: wanted, tag: entryTag) { return }
        // The first empty or stale position of the probe run (a stale one is a tombstone: reusing it keeps
        // every run unbroken).
        var index = home(wanted)
        while !entries[index].isEmpty {
            if !isLive(entries[index]) {
                counters.pointee.stale = max(counters.pointee.stale - 1, 0)
                break
            }
            index = (index + 1) & mask
        }
        entries[index] = Entry(fragment: wanted, tag: entryTag)
    }
}
