import CSupport

/// Fresh pages: pages none of whose blocks' previous content the index holds (a synchronisation's first pass,
/// or a page written for the first time in a while), encoded in bulk when nothing in them is found as a copy.
extension BlockDeltaEncoder {
    /// Encodes a page where more than ``prefetchDistance`` blocks need the index: in bulk if it is fresh
    /// (``encodeFresh``), else block by block.
    @inline(__always)
    func encodeCrowded(
        _ page: EpochCapture.View, following: EpochCapture.View?, sampleMask: UInt64,
        sparseCode: UInt8?, forms: inout CSupport_block_forms, into body: inout ByteWriter,
        stats: inout EpochStatistics
    ) {
        if encodeFresh(
            page, sampleMask: sampleMask, sparseCode: sparseCode, forms: &forms, into: &body, stats: &stats)
        {
            return
        }
        encodeOneByOne(
            page, following: following, sampleMask: sampleMask, sparseCode: sparseCode, into: &body, stats: &stats)
    }

    /// Encodes a fresh `page` (its changed blocks, or the page whole), in an epoch on anchors only, if none of
    /// its anchors is found in the index: all its blocks by one shim call (zero, sparse or literal), then those
    /// the block path looks up (in the sample, not zeros) stored in the index in the page's order, the anchors
    /// with a table entry. Returns false, having changed nothing, when the page must go block by block: an
    /// anchor found (a copy or a collision), two anchors with one key (the second a copy of the first, or a
    /// collision), a block a copied run may continue into, or a block that is not zeros with the zero block's
    /// hash.
    ///
    /// The records are the same bytes ``encodeBlock`` would write block by block: with no anchor found and no
    /// run to follow, no block of the page is a copy, and a fresh block has no previous content, so each takes
    /// the form the shim picks (the zero, sparse or literal form ``writeAgainstPrevious`` picks with no base).
    /// What it saves is the per-block way through the index: for a synchronisation's pages, most of the encode.
    @inline(__always)
    func encodeFresh(
        _ page: EpochCapture.View, sampleMask: UInt64, sparseCode: UInt8?,
        forms: inout CSupport_block_forms, into body: inout ByteWriter, stats: inout EpochStatistics
    ) -> Bool {
        guard encodesByRuns, anchors.anchorsOnly, matcher == nil, index.heldBits(ofPageAt: page.locations[0]) == 0
        else { return false }
        // The blocks looked up, as the block path picks them: every block in the sample that is not zeros (the
        // page's need mask, made a page ahead, may name others, for a held bit that has since gone: the ring
        // evicted their content while the page before was stored).
        var consulted: UInt64 = 0
        var anchorBits: UInt64 = 0
        for item in 0..<page.count {
            let hash = page.newHashes[item]
            guard hash & sampleMask == 0 else { continue }
            if hash == zeroHash {
                // Zeros are not looked up; a block of other bytes with the zero block's hash (XXH3 can be made to
                // collide on purpose) stops the shim's run: the block path takes it.
                guard CSupport_is_zero(page.item(item), 64) != 0 else { return false }
                continue
            }
            consulted |= 1 << UInt64(item)
            let location = page.locations[item]
            if runCandidate(location) != nil { return false }
            if isAnchor(hash: hash, location: location) { anchorBits |= 1 << UInt64(item) }
        }
        guard anchorsAreDistinct(page, anchorBits) else { return false }
        // The anchors' lines load while the page is encoded; the encoding is taken back if one is found.
        var pending = anchorBits
        while pending != 0 {
            index.prefetch(hash: page.newHashes[pending.trailingZeroBitCount])
            pending &= pending - 1
        }
        let (start, formsBefore) = (body.count, forms)
        let encoded = encodeRun(
            page, from: 0, need: 0, sampleMask: sampleMask, sparseCode: sparseCode, forms: &forms, into: &body)
        precondition(encoded == page.count, "a run with no block needing the index encodes the whole page")
        pending = anchorBits
        while pending != 0 {
            let item = pending.trailingZeroBitCount
            pending &= pending - 1
            let found = index.match(
                hash: page.newHashes[item], bytes: page.item(item), likelyAt: nil, probing: true)
            guard found.match == .none else {
                body.truncate(to: start)
                forms = formsBefore
                return false
            }
        }
        pending = consulted
        while pending != 0 {
            let item = pending.trailingZeroBitCount
            pending &= pending - 1
            let (hash, location, bytes) = (page.newHashes[item], page.locations[item], page.item(item))
            if anchorBits >> UInt64(item) & 1 != 0 {
                index.addAbsent(hash: hash, at: location, bytes: bytes, ordinal: page.firstOrdinal + item)
            } else {
                index.store(hash: hash, at: location, bytes: bytes, ordinal: page.firstOrdinal + item)
            }
        }
        stats.blocksConsulted += consulted.nonzeroBitCount
        stats.pagesEncodedFresh += 1
        anchors.countUnfound(blocks: consulted.nonzeroBitCount, anchors: anchorBits.nonzeroBitCount)
        return true
    }

    /// Whether no two blocks of `page` in `bits` have one key in the index.
    @inline(__always)
    private func anchorsAreDistinct(_ page: EpochCapture.View, _ bits: UInt64) -> Bool {
        let keying = index.keying
        var outer = bits
        while outer != 0 {
            let first = outer.trailingZeroBitCount
            outer &= outer - 1
            var inner = outer
            while inner != 0 {
                let second = inner.trailingZeroBitCount
                inner &= inner - 1
                if keying.key(page.newHashes[first]) == keying.key(page.newHashes[second]) { return false }
            }
        }
        return true
    }
}
