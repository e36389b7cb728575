#if canImport(Glibc)
    import Glibc
#endif

/// Dead entries: a copy retired by location (``ContentIndex/takePrevious(at:hash:)``) leaves its table entry in
/// place, where it stays until the ring's hand refills its slot. Until then every lookup of its key meets it,
/// reads the slot's bookkeeping (a cache miss) to learn that the slot is no longer in use, and walks on: under
/// LMDB's writes, where content comes back to the index soon after its location changed, a quarter of the
/// lookups met one. So when a probe meets a dead entry it notes where (``Counters/deadEntry``), and when the
/// same key is then entered (the lookup found no copy: the encoder stores the block), the new entry takes the
/// dead one's position instead of a new one further down the run.
///
/// A dead entry retired in this very epoch still names content the backup holds: a delta's references are read
/// against the replica as it was before the epoch (``Replica``), and its location changes only with this
/// epoch. So a lookup that meets one of its key, with the same bytes, is a copy from that location.
extension ContentIndex {
    /// The last dead entry a probe met (``Counters/deadEntry``), if it was met for `key` and is still there (same
    /// tag, `key`'s fragment) and still dead (its slot unused, retired with the entry left in place, of `key`):
    /// its position and slot + 1. The key is compared first: a note left by the lookup of another key costs no
    /// read of the table.
    @inline(__always)
    func noteOfDeadEntry(key: UInt64) -> (position: Int, slotPlusOne: UInt32)? {
        let (deadKey, position, deadTag) = counters.pointee.deadEntry
        guard deadKey == key else { return nil }
        let entry = entries[position]
        guard entry.tag == deadTag, entry.fragment == fragment(key), !entry.isEmpty, isLive(entry) else { return nil }
        let slot = Int(entry.slotPlusOne) - 1
        guard !slots[slot].used, slots[slot].deadEntry, slots[slot].key == key else { return nil }
        return (position, entry.slotPlusOne)
    }

    /// The copy a lookup of `key` (with `bytes`) finds in the last dead entry its probe met, if that entry's
    /// copy was retired in this epoch and holds the same bytes; else no match, as a dead entry gives none.
    @inline(__always)
    func matchRetiredThisEpoch(key: UInt64, bytes: UnsafeRawPointer) -> (match: Match, source: BlockLocation?) {
        guard let (_, slotPlusOne) = noteOfDeadEntry(key: key) else { return (.none, nil) }
        let slot = slots[Int(slotPlusOne) - 1]
        guard slot.epoch == counters.pointee.epoch, memcmp(slotBytes(slotPlusOne), bytes, blockSize) == 0 else {
            return (.none, nil)
        }
        counters.pointee.retiredCopies += 1
        let source = BlockLocation(packed: slot.location)
        return (.copy(source), source)
    }

    /// Puts a new entry (`fragment`, `tag`) for `key` where the last dead entry a probe met lies, if that entry
    /// is still there, still dead and of the same key; returns whether it did. The dead entry shares the new
    /// one's fragment, so the position lies in the fragment's probe run: every run stays unbroken, and no
    /// answer changes (a dead entry never matches). Its slot is told it has no entry left, so that the hand,
    /// refilling it, does not count a stale entry that is gone.
    @inline(__always)
    func reuseDeadEntry(key: UInt64, fragment: UInt32, tag: UInt32) -> Bool {
        guard let (position, slotPlusOne) = noteOfDeadEntry(key: key) else { return false }
        slots[Int(slotPlusOne) - 1].deadEntry = false
        entries[position] = Entry(fragment: fragment, tag: tag)
        counters.pointee.deadEntriesReused += 1
        return true
    }
}
