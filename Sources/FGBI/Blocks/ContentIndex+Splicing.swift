/// What the index tells the `fgbi` encoder's matcher of moved content (``SpliceMatcher``) about its stored
/// copies: which slot the last store filled, and what a splice may name as the source of a slot's bytes.
extension ContentIndex {
    /// Where the bytes of a stored copy are, for the backup, while the encoder looks at them.
    struct SpliceSource {
        /// The stored copy's bytes (a block).
        let bytes: UnsafeRawPointer
        /// When stored this epoch: the ordinal of the epoch's block whose new content they are; else -1.
        let ordinal: Int
        /// Otherwise the location (packed) where the backup held them before this epoch.
        let location: UInt64
    }

    /// The slot + 1 that the last addition or store filled. (If the last ``add(hash:at:bytes:ordinal:)`` found
    /// its key taken, it filled none, and this names the slot filled before: a matcher's hint only.)
    var slotFilledLast: UInt32 {
        let hand = counters.pointee.hand
        return UInt32(hand == 0 ? slotCount : hand)
    }

    /// Takes slot `slot` out of use because its location changed this epoch; its bytes stay what the backup
    /// held there before this epoch until the ring's hand refills the slot, and the epoch of the change is
    /// kept (in `epoch`, which a slot out of use does not otherwise need) to say so.
    @inline(__always)
    func retire(_ slot: Int) {
        slots[slot].used = false
        slots[slot].epoch = counters.pointee.epoch
    }

    /// What a splice may name as the source of the bytes in slot `slotPlusOne` - 1 as they are now (a number a
    /// matcher's table kept, which may name a slot since retired or refilled): a copy stored this epoch is an
    /// earlier block of it; a copy in use, or retired this epoch (the backup's pre-epoch content is still
    /// there), is what the backup held at its location before this epoch. Nil for an empty or out-of-range
    /// number and for a slot retired in an earlier epoch.
    @inline(__always)
    func spliceSource(_ slotPlusOne: UInt32) -> SpliceSource? {
        guard slotPlusOne != 0, Int(slotPlusOne) <= slotCount else { return nil }
        let slot = slots[Int(slotPlusOne) - 1]
        let storedNow = isStoredThisEpoch(slot)
        guard storedNow || holdsPreEpochContent(slot) else { return nil }
        return SpliceSource(
            bytes: UnsafeRawPointer(slotBytes(slotPlusOne)), ordinal: storedNow ? Int(slot.ordinal) : -1,
            location: slot.location)
    }

    /// Whether `slot` holds the new content of one of this epoch's blocks (its ordinal says which).
    @inline(__always)
    private func isStoredThisEpoch(_ slot: Slot) -> Bool { slot.used && slot.epoch == counters.pointee.epoch }

    /// Whether `slot` holds what the backup held at its location before this epoch: in use since an earlier
    /// epoch, or retired in this one (``retire(_:)``) and not yet refilled.
    @inline(__always)
    private func holdsPreEpochContent(_ slot: Slot) -> Bool { slot.used != (slot.epoch == counters.pointee.epoch) }

    /// The stored copy that continues `source` past its block's end (`forward`) or before its start, so that
    /// a piece may cross the edge: for a held source, what the backup held before this epoch at the next (or
    /// previous) location; for an earlier block of this epoch, the epoch's next (or previous) block when it is
    /// that location's new content. Nil when the index does not hold it (or keeps no per-location bits).
    @inline(__always)
    func spliceNeighbour(of source: SpliceSource, forward: Bool) -> UnsafeRawPointer? {
        guard forward || BlockLocation(packed: source.location).block > 0 else { return nil }
        let next = BlockLocation(packed: forward ? source.location &+ 1 : source.location &- 1)
        guard let bit = trackedBit(next) else { return nil }
        let slotPlusOne = slotOfLocation[bit]
        guard slotPlusOne != 0 else { return nil }
        let slot = slots[Int(slotPlusOne) - 1]
        guard slot.location == next.packed,
            source.ordinal >= 0
                // This epoch's next (or previous) block in the stream.
                ? isStoredThisEpoch(slot) && Int(slot.ordinal) == source.ordinal + (forward ? 1 : -1)
                : holdsPreEpochContent(slot)
        else { return nil }
        return UnsafeRawPointer(slotBytes(slotPlusOne))
    }
}
