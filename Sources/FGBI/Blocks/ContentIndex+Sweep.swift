import CSupport

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
    /// at every other position. So the pass takes 64 positions at a time: the shim makes their mask of live
    /// entries (eight at a time with AVX-512, with no branch), the live ones (about one in eight) are set
    /// aside, the 64 emptied, and the live ones put back in order. Emptying all 64 first changes no
    /// placement: an entry's probe stops at or before its own position, which is empty either way.
    func sweep() {
        let capacity = mask + 1
        var start = 0
        while start < capacity && !entries[start].isEmpty { start += 1 }
        guard start < capacity else { return sweepByDeletion() }
        // From the empty position to the table's end, then round from its start.
        sweep(positions: (start + 1)..<capacity)
        sweep(positions: 0..<start)
        finishSweep()
    }

    /// The pass of ``sweep()`` over `positions`, 64 at a time.
    private func sweep(positions: Range<Int>) {
        let (hand, lap) = (UInt64(counters.pointee.hand), counters.pointee.lap)
        let width = 64
        withUnsafeTemporaryAllocation(of: Entry.self, capacity: width) { live in
            var index = positions.lowerBound
            while index < positions.upperBound {
                let count = min(width, positions.upperBound - index)
                let group = entries + index
                var pending = UnsafeRawPointer(group).withMemoryRebound(to: UInt64.self, capacity: count) {
                    CSupport_index_live_mask($0, count, hand, lap, UInt64(slotCount))
                }
                var kept = 0
                while pending != 0 {
                    live[kept] = group[pending.trailingZeroBitCount]
                    pending &= pending &- 1
                    kept += 1
                }
                group.update(repeating: Entry(fragment: 0, tag: 0), count: count)
                for item in 0..<kept {
                    var free = home(live[item].fragment)
                    while !entries[free].isEmpty { free = (free &+ 1) & mask }
                    entries[free] = live[item]
                }
                index += count
            }
        }
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
