/// The table's upkeep: stale entries (lazy evictions) removed in bulk.
extension ContentIndex {
    /// Removes every stale entry in one pass over the table, in order from an empty position (so the memory is
    /// read sequentially, and no probe run crosses the pass's start): each position is emptied as the pass
    /// reaches it, and a live entry put back at the first empty position from its home. Every position between
    /// its home and where it was is behind the pass, so it lands there or before, and the pass reads each
    /// position once; the live entries keep their order within a run, so every lookup answers as before.
    ///
    /// At a sweep most occupied positions are stale (a sweep is due when they fill half the table), and which
    /// of empty, stale and live a position holds is as good as random: a branch on it would be mispredicted
    /// at every other position. So the pass takes eight positions at a time: their entries read and emptied,
    /// and a mask of the live ones made with no branch; only then are the live few (about one in eight) put
    /// back, in order. Emptying all eight first changes no placement: an entry's probe stops at or before
    /// its own position, which is empty either way.
    func sweep() {
        let capacity = mask + 1
        var start = 0
        while start < capacity && !entries[start].isEmpty { start += 1 }
        guard start < capacity else { return sweepByDeletion() }
        let hand = counters.pointee.hand
        let lap = counters.pointee.lap
        let empty = Entry(fragment: 0, tag: 0)
        let width = 8
        withUnsafeTemporaryAllocation(of: Entry.self, capacity: width) { taken in
            var index = (start &+ 1) & mask
            var remaining = capacity - 1
            while remaining > 0 {
                let count = min(width, remaining)
                var live: UInt32 = 0
                for offset in 0..<count {
                    let position = (index &+ offset) & mask
                    let entry = entries[position]
                    taken[offset] = entry
                    entries[position] = empty
                    live |= liveBit(entry, hand: hand, lap: lap) << UInt32(offset)
                }
                while live != 0 {
                    let entry = taken[live.trailingZeroBitCount]
                    live &= live &- 1
                    var free = home(entry.fragment)
                    while !entries[free].isEmpty { free = (free &+ 1) & mask }
                    entries[free] = entry
                }
                index = (index &+ count) & mask
                remaining -= count
            }
        }
        finishSweep()
    }

    /// 1 when `entry` is live, 0 when it is empty, a tombstone or stale: ``isLive(_:)`` and the empty test in
    /// arithmetic only, with no comparison the compiler could turn into a branch (it did, for `isEmpty ? 1 :
    /// 0`, and the sweep took twice as long). An entry's slot + 1 names a stored copy when it lies in
    /// 1...slotCount; empty (0) and tombstone (``Entry/tombstone``, above every slot) do not.
    @inline(__always)
    private func liveBit(_ entry: Entry, hand: Int, lap: UInt32) -> UInt32 {
        let slot = Int(entry.slotPlusOne) &- 1
        // Negative, so bit 63 set, when the slot is below 0 or at or past slotCount.
        let outside = UInt32(truncatingIfNeeded: UInt64(bitPattern: Int64(slot | (slotCount &- 1 &- slot))) >> 63)
        // Filled in the lap before this one when slot + 1 > hand (isLive's test).
        let before = UInt32(truncatingIfNeeded: UInt64(bitPattern: Int64(hand &- (slot &+ 1))) >> 63)
        let lapMismatch = entry.tag >> Entry.lapShift ^ ((lap &- before) & (Entry.lapCount - 1))
        // Both at most 7: zero only for a live entry, and (zero - 1) alone has bit 31 set.
        return ((lapMismatch | outside) &- 1) >> 31
    }

    /// The sweep of a table with no empty position (not reached: live and stale entries fill at most five
    /// eighths of it).
    func sweepByDeletion() {
        for index in 0...mask {
            while !entries[index].isEmpty && !isLive(entries[index]) { delete(at: index) }
        }
        finishSweep()
    }

    func finishSweep() {
        counters.pointee.stale = 0
        counters.pointee.lapOfLastSweep = counters.pointee.lap
        counters.pointee.sweeps += 1
    }

    /// Backward-shift deletion: later entries of the probe run move up, so lookups need no tombstones.
    func delete(at start: Int) {
        var hole = start
        var index = (start + 1) & mask
        while !entries[index].isEmpty {
            let wanted = home(entries[index].fragment)
            if (index - wanted) & mask >= (index - hole) & mask {
                entries[hole] = entries[index]
                hole = index
            }
            index = (index + 1) & mask
        }
        entries[hole].tag = 0
    }
}
