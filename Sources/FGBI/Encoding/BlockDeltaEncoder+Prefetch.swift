import CSupport

/// The encoder's look-ahead: what encoding a block a few blocks (or a page) from now will read of the index,
/// loaded now so that the memory latency overlaps the work on the blocks before it.
extension BlockDeltaEncoder {
    /// Starts loading the index lines of a page's first blocks: those in `need` (bits from the first; every
    /// one of them when the page is not `crowded`), or the first ``prefetchDistance`` (the rest follow as the
    /// page is encoded block by block).
    @inline(__always)
    func prefetchLines(_ page: EpochCapture.View, need: UInt64, crowded: Bool, sampleMask: UInt64) {
        if crowded {
            for ahead in 0..<min(Self.prefetchDistance, page.count) { prefetch(ahead, page) }
        } else {
            prefetchIndexLines(page, need: need, sampleMask: sampleMask)
        }
    }

    /// Item `item` of `page` counted on into `following`: the view it lies in and its index there, if any.
    @inline(__always)
    static func lookAhead(_ item: Int, _ page: EpochCapture.View, _ following: EpochCapture.View?) -> (
        EpochCapture.View, Int
    )? {
        if item < page.count { return (page, item) }
        guard let following, item - page.count < following.count else { return nil }
        return (following, item - page.count)
    }

    /// Starts loading the index lines the blocks of `page` in `need` (bits from its first) will probe.
    @inline(__always)
    func prefetchIndexLines(_ page: EpochCapture.View, need: UInt64, sampleMask: UInt64) {
        var pending = need
        while pending != 0 {
            let item = pending.trailingZeroBitCount
            prefetchIndex(
                hash: page.newHashes[item], location: page.locations[item], oldHash: page.oldHashes[item],
                sampleMask: sampleMask)
            pending &= pending - 1
        }
    }

    @inline(__always)
    func prefetch(_ item: Int, _ capture: EpochCapture.View) {
        prefetchIndex(
            hash: capture.newHashes[item], location: capture.locations[item], oldHash: capture.oldHashes[item],
            sampleMask: sampleMask)
        index.prefetchEviction(ahead: Self.prefetchDistance / 2)
    }

    /// The second stage of ``prefetch(_:_:)``, half as far ahead, once the lines it loads have arrived: the
    /// stored copies they point to, the block's previous content (its bytes only when this epoch offers them
    /// to a difference: ``DifferenceAdmission``) and (for a block the table will be searched for) the copy a
    /// lookup of its new content would compare.
    /// With splicing, it also starts loading the matcher's table entries for the block's anchors (the block is
    /// the epoch's `ordinal`-th).
    @inline(__always)
    func prefetchContent(_ item: Int, _ capture: EpochCapture.View, ordinal: Int) {
        let hash = capture.newHashes[item]
        index.prefetchPreviousContent(
            at: capture.locations[item], hash: capture.oldHashes[item], bytes: differences.offers(hash))
        if let matcher, learnsCapture, hash != zeroHash {
            matcher.prefetchEntries(capture.item(item), ordinal: ordinal, hash: hash)
        }
        guard hash & sampleMask == 0, hash != zeroHash else { return }
        if searchesTable(hash: hash, location: capture.locations[item]) { index.prefetchMatch(hash: hash) }
        if findsByLocation, let candidate = runCandidate(capture.locations[item]) {
            index.prefetchCandidate(candidate, content: true)
        }
    }

    /// Starts loading what encoding a block will read of the index: for a block in the sample, its table
    /// line if it is an anchor, and what the index keeps for its location (read for the previous content,
    /// written when the new content is stored); for another, the previous content's lines, if it is held.
    @inline(__always)
    func prefetchIndex(hash: UInt64, location: BlockLocation, oldHash: UInt64, sampleMask: UInt64) {
        guard hash & sampleMask == 0 else { return index.prefetchPrevious(at: location, hash: oldHash) }
        if searchesTable(hash: hash, location: location) { index.prefetch(hash: hash) }
        if findsByLocation {
            index.prefetchLocation(location)
            if let candidate = runCandidate(location) { index.prefetchCandidate(candidate, content: false) }
        } else {
            index.prefetchPrevious(at: location, hash: oldHash)
        }
    }
}
