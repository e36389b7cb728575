/// The pages a synchronisation overwrote, as they were at the last committed epoch, so a synchronisation
/// that never completes can be taken back.
///
/// Pre-copy deltas (`Replica.apply(_:precopy: true)`) write into the replica before the epoch they lead to is
/// consistent; until that epoch commits, the replica must still be able to return to the committed one
/// (a failover then, or a restart, must find exactly that epoch). Each page is saved once, the first time
/// a pre-copy touches it, so memory grows with the pages that differ, not with the region: a resync of a
/// backup that missed a few epochs saves a few pages. A replica that has committed nothing yet is all zeros,
/// so for it the log keeps only which pages were touched and restores by zeroing them.
final class UndoLog {
    private let pageSize: Int
    /// Per region, one bit per page: saved already.
    private var saved: [[UInt64]]
    private var entries: [(region: Int, page: Int)] = []
    private var arena = ByteWriter()
    /// Entries that were all zeros (``save(region:offset:length:from:knownZero:)``): every one, or none.
    private var zeroed = 0

    init(pageCounts: [Int], pageSize: Int) {
        self.pageSize = pageSize
        saved = pageCounts.map { [UInt64](repeating: 0, count: ($0 + 63) / 64) }
    }

    /// Pages saved so far.
    var pageCount: Int { entries.count }

    /// Bytes the log holds.
    var byteCount: Int { arena.count }

    /// Saves the committed content of every page of `regions[region]` that bytes `offset..<offset+length`
    /// touch, unless saved already. Call before writing those bytes.
    func save(region: Int, offset: Int, length: Int, from memory: GuestMemory, knownZero: Bool) {
        var page = offset / pageSize
        let last = (offset + length - 1) / pageSize
        while page <= last {
            let word = page >> 6
            let bit: UInt64 = 1 << UInt64(page & 63)
            if saved[region][word] & bit == 0 {
                saved[region][word] |= bit
                entries.append((region, page))
                if knownZero {
                    zeroed += 1
                    page += 1
                    continue
                }
                let source = UnsafeRawPointer(memory.page(page))
                let size = pageSize
                arena.append(upTo: size) { destination, _ in
                    destination.copyMemory(from: source, byteCount: size)
                    return size
                }
            }
            page += 1
        }
    }

    /// Writes every saved page back and empties the log.
    func restore(into regions: [GuestMemory]) {
        precondition(zeroed == 0 || zeroed == entries.count, "an undo log mixes zeroed and saved pages")
        let start = arena.bytes.baseAddress
        for (index, entry) in entries.enumerated() {
            let page = regions[entry.region].page(entry.page)
            if zeroed > 0 {
                page.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
            } else {
                page.copyMemory(from: start! + index * pageSize, byteCount: pageSize)
            }
        }
        discard()
    }

    /// Forgets every saved page (the epoch they led to committed).
    func discard() {
        for region in saved.indices { for word in saved[region].indices { saved[region][word] = 0 } }
        entries.removeAll(keepingCapacity: false)
        zeroed = 0
        arena = ByteWriter()
    }
}
