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
        var index = start
        var visited = 0
        while visited < capacity {
            guard !entries[index].isEmpty else {
                index = (index + 1) & mask
                visited += 1
                continue
            }
            var length = 0
            var live = 0
            var fits = true
            while !entries[(index + length) & mask].isEmpty {
                let entry = entries[(index + length) & mask]
                if isLive(entry) {
                    if live < sweepScratchCapacity { sweepScratch[live] = entry } else { fits = false }
                    live += 1
                }
                length += 1
            }
            if fits && live < length {
                for offset in 0..<length { entries[(index + offset) & mask].tag = 0 }
                for item in 0..<live {
                    var position = home(sweepScratch[item].fragment)
                    while !entries[position].isEmpty { position = (position + 1) & mask }
                    entries[position] = sweepScratch[item]
                }
            } else if !fits {
                for offset in 0..<length {
                    while !entries[(index + offset) & mask].isEmpty && !isLive(entries[(index + offset) & mask]) {
                        delete(at: (index + offset) & mask)
                    }
                }
            }
            index = (index + length) & mask
            visited += length
        }
        finishSweep()
    }

    /// The sweep of a table with no empty position (not reached: live and stale entries fill at most three
    /// quarters of it).
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
