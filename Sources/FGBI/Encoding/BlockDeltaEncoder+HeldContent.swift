import CSupport

/// A resynchronisation's first pass: the pages the backup already holds are not sent, and their blocks become
/// content the index knows the backup holds (``BlockIndex/learnHeld(hash:at:bytes:)``), so that a block of a
/// page that differs and that holds the same bytes goes as a copy of them.
extension BlockDeltaEncoder {
    /// Before `reader` (started on a first-pass capture of whole pages) hands over any page, stores the
    /// non-zero blocks of the pages of its capture that the backup holds, until the index takes no more.
    func learnHeldPages(_ reader: StagedPageReader) {
        let blockSize = geometry.blockSize
        let blocks = geometry.blocksPerPage
        var learning = true
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 * blocks) { hashes in
            let hashes = hashes.baseAddress!
            reader.findHeldPages { location, bytes in
                guard learning else { return }
                _ = CSupport_rehash_page(bytes, blockSize, blocks, hashes, hashes + blocks)
                for block in 0..<blocks where hashes[block] != zeroHash {
                    let at = BlockLocation(region: location.region, block: location.block * blocks + block)
                    guard index.learnHeld(hash: hashes[block], at: at, bytes: bytes + block * blockSize) else {
                        learning = false
                        return
                    }
                }
            }
        }
    }

    /// ``learnHeldPages(_:)`` for a capture that is then read in parts on several threads
    /// (``ParallelBlockDeltaEncoder``): `reader` reads it once, whole, first; nothing unless it is a first pass.
    func learnHeldPages(of capture: EpochCapture, with reader: StagedPageReader) {
        guard capture.comparesWithBaseline else { return }
        reader.start(capture, recordUnchanged: false)
        learnHeldPages(reader)
        reader.finish()
    }
}
