import CSupport

/// What the encoder loads ahead of a lookup (``BlockDeltaEncoder``'s look-ahead): table lines, per-location
/// bits and slot numbers, stored copies.
extension ContentIndex {
    /// Starts loading the table line `hash` will probe first.
    @inline(__always)
    func prefetch(hash: UInt64) {
        CSupport_prefetch(entries + home(fragment(keying.key(hash))))
    }

    /// Prefetches only where the location's bit says a stored copy holds its content: under writes of fresh
    /// content most changed locations hold none, and a prefetch of a line nobody reads still costs a miss.
    @inline(__always)
    func prefetchPrevious(at location: BlockLocation, hash: UInt64) {
        guard let bit = heldBit(location.packed) else { return prefetch(hash: hash) }
        if !isHeld(bit) { return }
        CSupport_prefetch(slotOfLocation + bit)
    }

    /// Starts loading `location`'s bit and slot number (a block encoded through the index reads them, and
    /// writes them when its content is stored).
    @inline(__always)
    func prefetchLocation(_ location: BlockLocation) {
        guard let bit = heldBit(location.packed) else { return }
        CSupport_prefetch(slotOfLocation + bit)
        CSupport_prefetch(held + (bit >> 6))
    }

    /// Starts loading the word of per-location bits that ``heldBits(ofPageAt:)`` reads.
    @inline(__always)
    func prefetchHeldBits(ofPageAt location: BlockLocation) {
        guard let bit = heldBit(location.packed) else { return }
        CSupport_prefetch(held + (bit >> 6))
    }

    /// Prefetches the bookkeeping and (with `bytes`) the bytes of the slot that holds `location`'s content
    /// (found through the location's slot, in cache after ``prefetchPrevious(at:hash:)``; without per-location
    /// bits, by walking the probe run to the first live entry with the key's fragment, both loaded): without
    /// it, confirming the slot is the location's (``takePrevious(at:hash:)``) waits for a miss on each.
    @inline(__always)
    func prefetchPreviousContent(at location: BlockLocation, hash: UInt64, bytes: Bool) {
        if let bit = heldBit(location.packed) {
            let slotPlusOne = slotOfLocation[bit]
            if !isHeld(bit) || slotPlusOne == 0 { return }
            CSupport_prefetch(slots + (Int(slotPlusOne) - 1))
            if bytes { CSupport_prefetch(slotBytes(slotPlusOne)) }
            return
        }
        prefetchMatch(hash: hash)
    }

    /// Starts loading the bookkeeping and bytes of the first live entry for `hash`'s key, if the table (its
    /// line loaded by ``prefetch(hash:)`` a few blocks earlier) has one: the copy a lookup would compare, or
    /// the previous content of a location without per-location bits.
    @inline(__always)
    func prefetchMatch(hash: UInt64) {
        let wanted = fragment(keying.key(hash))
        var index = home(wanted)
        while !entries[index].isEmpty {
            let entry = entries[index]
            if entry.fragment == wanted && isLive(entry) {
                CSupport_prefetch(slots + (Int(entry.slotPlusOne) - 1))
                CSupport_prefetch(slotBytes(entry.slotPlusOne))
                return
            }
            index = (index + 1) & mask
        }
    }

    /// Nothing to load: an eviction touches no table line (the evicted entry goes stale where it is).
    @inline(__always)
    func prefetchEviction(ahead: Int) {}

    /// Starts loading what ``slotHolding(_:)`` reads of `candidate`: its bit and slot number, or (`content`,
    /// once those have arrived) the slot's bookkeeping and bytes.
    @inline(__always)
    func prefetchCandidate(_ candidate: BlockLocation, content: Bool) {
        guard let bit = trackedBit(candidate) else { return }
        guard content else {
            CSupport_prefetch(slotOfLocation + bit)
            return CSupport_prefetch(held + (bit >> 6))
        }
        let slotPlusOne = slotOfLocation[bit]
        guard isHeld(bit), slotPlusOne != 0 else { return }
        CSupport_prefetch(slots + (Int(slotPlusOne) - 1))
        CSupport_prefetch(slotBytes(slotPlusOne))
    }
}
