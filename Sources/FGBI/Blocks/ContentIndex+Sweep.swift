/// The table's upkeep: stale entries (lazy evictions) removed in bulk.
extension ContentIndex {
    /// Removes every stale entry in one pass over the table, in order (so the memory is read sequentially):
    /// each run of occupied positions (a cluster) is emptied and its live entries inserted again in their
    /// order, which puts each at or before where it was, so the run stays within its bounds. A cluster longer
    /// than the scratch falls back to one backward-shift deletion per stale entry.
    func sweep() {
        let capacity = mask + 1
        var start = 0
        while start < capacity && !entries[start].isEmpty { start += 1 }
        guard start < capacity else { return sweepByDeletion() }
        let hand = counters.pointee.hand
        let lap = counters.pointee.lap
        let scratchLast = sweepScratchCapacity - 1
        var index = start
        var visited = 0
        while visited < capacity {
            guard !entries[index].isEmpty else {
                index = (index + 1) & mask
                visited += 1
                continue
            }
            // The cluster: every entry copied, the count of live ones advanced past live ones only, so the
            // scratch ends with the live entries in order, with no branch on whether an entry is live (as
            // good as random).
            var length = 0
            var live = 0
            var position = index
            repeat {
                let entry = entries[position]
                sweepScratch[min(live, scratchLast)] = entry
                live &+= Self.isLive(entry, hand: hand, lap: lap) ? 1 : 0
                length &+= 1
                position = (position &+ 1) & mask
            } while !entries[position].isEmpty
            if live <= sweepScratchCapacity {
                if live < length {
                    for offset in 0..<length { entries[(index + offset) & mask].tag = 0 }
                    for item in 0..<live {
                        var free = home(sweepScratch[item].fragment)
                        while !entries[free].isEmpty { free = (free + 1) & mask }
                        entries[free] = sweepScratch[item]
                    }
                }
            } else {
                for offset in 0..<length {
                    while !entries[(index + offset) & mask].isEmpty && !isLive(entries[(index + offset) & mask]) {
                        delete(at: (index + offset) & mask)
                    }
                }
            }
            index = position
            visited += length
        }
        finishSweep()
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
