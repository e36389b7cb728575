import CSupport

/// The page loop's ways through one page: runs of blocks that need no index encoded by one shim call each and
/// the others through ``encodeBlock``, or every block through it with its lines loaded a few blocks ahead;
/// and which blocks of a page need the index.
extension BlockDeltaEncoder {
    /// Encodes the blocks of `page`, of which those in `need` (bits from the first) need the index: the runs
    /// between them by one shim call each (their forms counted in `forms`), those through ``encodeBlock``,
    /// their entries' copies prefetched first.
    @inline(__always)
    func encodeRuns(
        _ page: EpochCapture.View, need: UInt64, sampleMask: UInt64, sparseCode: UInt8?,
        forms: inout CSupport_block_forms, into body: inout ByteWriter, stats: inout EpochStatistics
    ) {
        var pending = need
        while pending != 0 {
            let item = pending.trailingZeroBitCount
            prefetchContent(item, page, ordinal: page.firstOrdinal + item)
            pending &= pending - 1
        }
        var item = 0
        while item < page.count {
            item += encodeRun(
                page, from: item, need: need >> UInt64(item), sampleMask: sampleMask, sparseCode: sparseCode,
                forms: &forms, into: &body)
            if item < page.count {
                encodeBlock(
                    item, page, ordinal: page.firstOrdinal + item, consult: page.newHashes[item] & sampleMask == 0,
                    sparseCode: sparseCode,
                    into: &body, stats: &stats)
                item += 1
            }
        }
    }

    /// Encodes the blocks of `page` one by one through ``encodeBlock``, starting to load each block's index
    /// lines ``prefetchDistance`` blocks ahead, and half as far ahead the stored copy of its previous content
    /// that those lines point to; the look-ahead runs on into the `following` page.
    @inline(__always)
    func encodeOneByOne(
        _ page: EpochCapture.View, following: EpochCapture.View?, sampleMask: UInt64, sparseCode: UInt8?,
        into body: inout ByteWriter, stats: inout EpochStatistics
    ) {
        let distance = Self.prefetchDistance
        for item in 0..<page.count {
            if let (view, ahead) = Self.lookAhead(item + distance, page, following) { prefetch(ahead, view) }
            if let (view, ahead) = Self.lookAhead(item + distance / 2, page, following) {
                prefetchContent(ahead, view, ordinal: view.firstOrdinal + ahead)
            }
            encodeBlock(
                item, page, ordinal: page.firstOrdinal + item, consult: page.newHashes[item] & sampleMask == 0,
                sparseCode: sparseCode,
                into: &body, stats: &stats)
        }
    }

    /// Which blocks of `page` need the index (bit per block, from its first).
    @inline(__always)
    func indexMask(_ page: EpochCapture.View, sampleMask: UInt64) -> UInt64 {
        CSupport_block64_index_mask(
            page.newHashes, UnsafeRawPointer(page.locations).assumingMemoryBound(to: UInt64.self),
            page.count, index.heldBits(ofPageAt: page.locations[0]), sampleMask, zeroHash)
    }
}
