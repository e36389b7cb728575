/// What the content index keeps: its table's entries, each stored copy's bookkeeping, and what a lookup answers.
extension ContentIndex {
    /// One probe step: the key's 32 bits that pick its home, and a tag: the stored copy's slot + 1 in the low
    /// 29 bits (0: empty; all ones: a tombstone, never live), the lap of the ring (mod ``lapCount``) in which
    /// the slot was filled in the top 3.
    struct Entry {
        var fragment: UInt32
        var tag: UInt32

        var slotPlusOne: UInt32 { tag & Entry.slotMask }
        var isEmpty: Bool { tag == 0 }

        static let slotMask: UInt32 = (1 << 29) - 1
        static let lapShift: UInt32 = 29
        /// Laps an entry tells apart: a sweep runs at least every `lapCount - 1` laps, so an entry's lap
        /// never aliases a later one (``ContentIndex/isLive(_:)``).
        static let lapCount: UInt32 = 8
        /// The tag of a retired entry: no slot has this number (there are fewer than `slotMask` slots).
        static let tombstone: UInt32 = slotMask
    }

    /// What the index knows of one stored copy.
    struct Slot {
        var key: UInt64
        var location: UInt64
        /// The epoch (+ 1) that added it.
        var epoch: UInt64
        var ordinal: UInt32
        var used: Bool
        /// Whether the table has an entry for it (else it is found by its location only:
        /// ``store(hash:at:bytes:ordinal:)``).
        var indexed: Bool
        /// Retired by location (``takePrevious(at:hash:)``) with its table entry left in place: dead (its slot
        /// is unused), counted as stale once the ring refills the slot.
        var deadEntry: Bool
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

    /// Table positions per stored copy (rounded up to a power of two in all). A lookup of absent content (most
    /// of a changed block's lookups) reads its probe run to the first empty position, and the run's length
    /// grows with the load: live and dead entries (at most one per copy) plus stale ones (up to half the table
    /// before a sweep). At eight positions the table is at most five eighths full and on average about three
    /// eighths; at four (until 2026-12-07) at most three quarters and on average about five eighths, and the
    /// LMDB trace's epochs encoded 5-9% slower (Docs/BENCHMARKS.md), for half the table's memory (32 MiB
    /// instead of 64 per 64 MiB budget).
    static let positionsPerCopy = 8

    /// Whether the index keeps a bit per block location (``heldBits(ofPageAt:)`` answers).
    var keepsLocationBits: Bool { heldBits > 0 }

    /// With per-location bits, each location's slot is known too, so a copy may have no table entry.
    var findsByLocation: Bool { heldBits > 0 }

    /// The bit of `location` in `held` when the index keeps per-location bits and `location` lies inside
    /// the regions (a candidate may point past a region's end).
    @inline(__always)
    func trackedBit(_ location: BlockLocation) -> Int? {
        guard heldBits > 0, location.region < regionBlockCounts.count,
            location.block < regionBlockCounts[location.region]
        else { return nil }
        return heldBit(location.packed)
    }
}
