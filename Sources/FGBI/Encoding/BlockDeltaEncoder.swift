import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The `fgbi` mode's encoder: turns an epoch's changed blocks into `blocks` records, choosing per block
/// the cheapest form the backup can rebuild exactly:
/// 1. zero: the block is all zeros;
/// 2. copy-epoch: identical (bitwise) to a block sent earlier in this epoch;
/// 3. copy: identical (bitwise) to content the backup holds, found through the index (``ContentIndex``, or a
///    guest's ``SharedContentIndex/Member``: both answer for this backup only);
/// 4. diff: a run-length difference against the block's previous content, when the index still holds it;
/// 5. sparse: a mask of the block's non-zero bytes and those bytes, when that is shorter;
/// 6. literal: the bytes.
/// The index learns each block's new content as it goes. With an index that finds content by location
/// (``ContentIndex`` with per-location bits), in epochs where isolated copies are rare (``AnchorPolicy``),
/// only anchors (one block in eight by content, and each page's first block) are looked up in, and entered
/// into, the table, the others stored by location only, and a block is first compared with the content at
/// the distance of the last copied block's source (a copied page or object is a run): a run is found from
/// its anchors, and every stored block keeps its base for a difference, with a table access for one block in
/// several; in the other epochs every block is looked up in the table. Runs after the guest
/// resumes: it reads only the capture and the index's own copies, never guest memory. Generic over the
/// index so that each kind is compiled into its own loop.
final class BlockDeltaEncoder<Index: BlockIndex> {
    /// Blocks ahead whose index lines are prefetched (and, half as far ahead, the stored copies those lines
    /// point to).
    static var prefetchDistance: Int { 8 }

    let geometry: BlockGeometry
    let index: Index
    private let diff: UnsafeMutablePointer<UInt8>
    /// The hash of a block of zeros: only blocks with it are checked for zeros byte by byte.
    let zeroHash: UInt64
    /// Unchecked for exclusive access (the encoder is used by one thread at a time): it is written for every
    /// record, and the dynamic check costs more than the write.
    @exclusivity(unchecked) var positions = RecordPositionWriter()
    /// Whether this epoch looks up every block or a sample (``IndexAdmission``).
    private(set) var admission = IndexAdmission()
    /// A first pass's captures the index learns from (``FirstPassLearning``), and whether it learns this one.
    var firstPass: FirstPassLearning
    var learnsCapture = true
    /// Where the last copied block was, and how far its source was from it: a block shortly after it is
    /// first compared with the content at the same distance (a copied page or object is a run of copied
    /// blocks), found by location with no table probe. Before any copy, no location is within reach.
    var runHint = (from: UInt64.max &- runHintReach, offset: UInt64(0))
    /// How many blocks after a copied block its distance is tried.
    static var runHintReach: UInt64 { 128 }
    /// Where the index finds copies by location (``BlockIndex/findsByLocation``): whether this epoch looks up
    /// only anchors in the table, the other blocks stored by location only (``AnchorPolicy``).
    var anchors = AnchorPolicy()
    let findsByLocation: Bool
    /// Whether this epoch reads every changed block's previous content for a difference, or a sample's
    /// (``DifferenceAdmission``).
    private(set) var differences = DifferenceAdmission()

    /// Whether 64-byte blocks go through the page loop (``encodeByPage``) where the index allows it; tests
    /// turn it off to compare with the block-by-block loop.
    private let encodesByPage: Bool
    /// Finds the bytes of a block that would go in a long form in the index's stored copies, at any offset
    /// (``SpliceMatcher``); nil when splicing is off or the index offers no stored copies to splices.
    let matcher: SpliceMatcher?
    /// Blocks whose form without a splice takes at most this many bytes are not looked up in the matcher.
    static var spliceFloor: Int { 16 }
    /// Finds the staged pages that are whole copies of pages the backup holds (``PageCopyFinder``); nil: none.
    var pageCopies: PageCopyFinder?

    init(geometry: BlockGeometry, index: Index, encodesByPage: Bool = true, splicing: Bool = false) {
        self.geometry = geometry
        self.index = index
        self.encodesByPage = encodesByPage
        matcher = splicing && index is ContentIndex ? SpliceMatcher(blockSize: geometry.blockSize) : nil
        zeroHash = geometry.zeroBlockHash
        findsByLocation = index.findsByLocation
        firstPass = FirstPassLearning(copiesPerPage: geometry.blocksPerPage)
        diff = .allocate(capacity: 2 * (geometry.blockSize + 16))
    }

    deinit { diff.deallocate() }

    var metadataBytes: Int { 2 * (geometry.blockSize + 16) + (matcher?.metadataBytes ?? 0) }

    /// Encodes `capture` (changed blocks) into `body`; returns the record count and fills the block counters of
    /// `stats`. `sparse`: send blocks with no usable previous content in sparse form where it is shorter
    /// (``LiteralFormChooser``), else as literals.
    ///
    /// Admission by measured use (``IndexAdmission``): after an epoch whose lookups almost never paid, only
    /// a content-chosen sample of the blocks is looked up and learnt. Retiring a changed location's entry is
    /// never skipped (it keeps the index exact), and every match is still compared bitwise.
    ///
    /// With `reader` (started on `capture`, a capture of whole pages), the pages it reads, each rehashed as it
    /// comes (``StagedPageReader``): the same bytes as for the changed blocks a capture by rehash would hold.
    ///
    /// `copies`: pages of the capture sent as copies or zeros (``PageCopyFinder``), which `reader` passes over;
    /// their records are written in place among the others.
    func encode(
        _ capture: EpochCapture, staged reader: StagedPageReader? = nil, copies: [PageCopyFinder.PageCopy] = [],
        sparse: Bool, into body: inout ByteWriter, stats: inout EpochStatistics
    ) -> Int {
        let (records, blocks): (Int, Int)
        if var pages = reader {
            (records, blocks) = encodeEpoch(
                capture.epoch, &pages, copies: copies, sparse: sparse, into: &body, stats: &stats)
        } else {
            var pages = CapturePages(capture.view, blocksPerPageShift: geometry.blocksPerPage.trailingZeroBitCount)
            (records, blocks) = encodeEpoch(capture.epoch, &pages, sparse: sparse, into: &body, stats: &stats)
        }
        stats.blocksDirty = blocks
        return records
    }

    /// Encodes `capture` and returns its records and the pages the backup already held: its changed blocks, or
    /// with `reader` the staged pages it holds, each read and rehashed by `reader` as it comes (listing in the
    /// capture the pages found unchanged when `recordUnchanged`).
    func encode(
        _ capture: EpochCapture, reading reader: StagedPageReader?, recordUnchanged: Bool, sparse: Bool,
        into body: inout ByteWriter, stats: inout EpochStatistics
    ) -> (records: Int, pagesHeld: Int) {
        beginCapture(capture)
        defer { endCapture(capture, stats: stats) }
        guard let reader else {
            let records = encode(capture, sparse: sparse, into: &body, stats: &stats)
            pageCopies?.learnKeys(of: capture)
            return (records, capture.pagesHeld)
        }
        reader.start(capture, recordUnchanged: recordUnchanged)
        // The reader keys the pages it rehashes for later page copies (this thread alone touches the keys),
        // while the finder keeps every page's key.
        reader.pageKeys = pageCopies?.triesEveryPage == true ? pageCopies?.keys : nil
        defer {
            reader.finish()
            reader.pageKeys?.flush()
            reader.pageKeys = nil
        }
        learnHeldPages(reader)
        let copies = takePageCopies(of: capture, skippedBy: reader, stats: &stats)
        let records = encode(capture, staged: reader, copies: copies, sparse: sparse, into: &body, stats: &stats)
        return (records, reader.pagesHeld)
    }

    /// The blocks that ``ParallelBlockDeltaEncoder``'s first step set aside because they need the index (each
    /// shard's, in the epoch's order; `firstOrdinals`: the number of each shard's first block in the epoch),
    /// encoded one after the other into `body` exactly as ``encode(_:staged:sparse:into:stats:)`` encodes them
    /// at their place in the epoch: the blocks between them touch no index, so the index is in the same state
    /// for each. Where each block's encoding ends goes to its shard's ``SetAsideBlocks/ends``.
    func encodeSetAside(
        _ shards: [SetAsideBlocks], firstOrdinals: [Int], epoch: UInt64, sparse: Bool, into body: inout ByteWriter,
        stats: inout EpochStatistics
    ) {
        let sparseCode: UInt8? = sparse ? DeltaFormat.BlockOp.sparse.rawValue : nil
        index.beginEpoch(epoch)
        matcher?.beginEpoch(counting: &stats)
        let sampleMask = self.sampleMask
        let usefulBefore = stats.sharedHits + stats.diffBlocks
        let consultedBefore = stats.blocksConsulted
        let distance = Self.prefetchDistance
        for (shard, firstOrdinal) in zip(shards, firstOrdinals) {
            let blocks = shard.view
            for item in 0..<blocks.count {
                if item + distance < blocks.count { prefetch(item + distance, blocks) }
                if item + distance / 2 < blocks.count {
                    prefetchContent(
                        item + distance / 2, blocks, ordinal: firstOrdinal + shard.ordinals[item + distance / 2])
                }
                encodeBlock(
                    item, blocks, ordinal: firstOrdinal + shard.ordinals[item],
                    consult: blocks.newHashes[item] & sampleMask == 0,
                    sparseCode: sparseCode, into: &body, stats: &stats)
                shard.ends.append(body.count)
            }
        }
        admission.update(
            consulted: stats.blocksConsulted - consultedBefore,
            useful: stats.sharedHits + stats.diffBlocks - usefulBefore)
        anchors.endEpoch()
        differences.endEpoch()
        matcher?.endEpoch()
    }

    /// Whether 64-byte blocks go through the page loop: then the blocks that need no index
    /// (``indexNeeds(_:sampleMask:)``) are encoded without it.
    var encodesByRuns: Bool {
        encodesByPage && geometry.blockSize == 64 && geometry.blocksPerPage == 64 && index.keepsLocationBits
    }

    /// Which blocks of `page` need the index (bit per block, from its first; every one without
    /// ``encodesByRuns``). Reads the index's per-location bits and changes nothing, so threads may ask at
    /// once while nothing else uses the index; a bit clear now stays clear until the block is encoded (only
    /// encoding a block marks its location as held).
    @inline(__always)
    func indexNeeds(_ page: EpochCapture.View, sampleMask: UInt64) -> UInt64 {
        encodesByRuns ? indexMask(page, sampleMask: sampleMask) : ~0
    }

    /// Encodes the blocks of `page` from `start` on, up to the first whose bit is set in `need` (bits from
    /// `start`), without the index: zero, sparse or literal forms, counted in `forms`. Returns how many it
    /// encoded. Uses nothing of the encoder's mutable state, so threads may call it at once.
    @inline(__always)
    func encodeRun(
        _ page: EpochCapture.View, from start: Int, need: UInt64, sampleMask: UInt64, sparseCode: UInt8?,
        forms: inout CSupport_block_forms, into body: inout ByteWriter
    ) -> Int {
        var encoded = 0
        let zeroHash = self.zeroHash
        body.append(upTo: (page.count - start) * 74) { out, _ in
            var written = 0
            encoded = CSupport_block64_encode_run(
                page.item(start).assumingMemoryBound(to: UInt8.self),
                page.newHashes + start, page.count - start, need,
                sampleMask, zeroHash, sparseCode == nil ? 0 : 1,
                DeltaFormat.BlockOp.zero.rawValue, sparseCode ?? 0,
                DeltaFormat.BlockOp.literal.rawValue,
                out.assumingMemoryBound(to: UInt8.self), &written, &forms)
            return written
        }
        return encoded
    }

    /// The epoch's records, a page at a time, looking one page ahead: its index lines start loading while the
    /// page before is encoded.
    ///
    /// For 64-byte blocks with an index that keeps per-location bits, the page loop: per page, the blocks that
    /// need no index (no content of their location held, not in the sample: under fresh content nearly all)
    /// are encoded by one shim call (`CSupport_block64_encode_run`, the same bytes ``encodeBlock`` writes for
    /// them), the others by ``encodeBlock``. Which blocks need the index is known a page ahead
    /// (`CSupport_block64_index_mask`), so their index lines are prefetched a page ahead, and their entries'
    /// copies as the page starts. A page where more than ``prefetchDistance`` blocks need the index (the
    /// index in full use: sharing pays), and every page under other block sizes or indexes, goes block by
    /// block, its lines prefetched a few blocks ahead: a page's worth of prefetches at once would overrun the
    /// core's outstanding misses.
    @inline(__always)
    private func encodeEpoch<Pages: PageViews>(
        _ epoch: UInt64, _ pages: inout Pages, copies: [PageCopyFinder.PageCopy] = [], sparse: Bool,
        into body: inout ByteWriter, stats: inout EpochStatistics
    ) -> (records: Int, blocks: Int) {
        let sparseCode: UInt8? = sparse ? DeltaFormat.BlockOp.sparse.rawValue : nil
        let blocksPerPageShift = geometry.blocksPerPage.trailingZeroBitCount
        let maskBytes = (geometry.blocksPerPage + 7) / 8
        let byRuns = encodesByRuns
        index.beginEpoch(epoch)
        matcher?.beginEpoch(counting: &stats)
        positions.reset()
        let sampleMask = self.sampleMask
        let usefulBefore = stats.sharedHits + stats.diffBlocks
        let consultedBefore = stats.blocksConsulted
        var forms = CSupport_block_forms()
        var records = 0
        var blocks = 0
        // Which blocks of a page need the index (page loop), or every block (block by block).
        let needs = { (page: EpochCapture.View) -> UInt64 in
            byRuns ? self.indexMask(page, sampleMask: sampleMask) : ~0
        }
        let crowded = { (need: UInt64) in need.nonzeroBitCount > Self.prefetchDistance }
        var current = pages.next()
        var need = current.map(needs) ?? 0
        if let current { prefetchLines(current, need: need, crowded: crowded(need), sampleMask: sampleMask) }
        var nextCopy = 0
        while let page = current {
            records += writePageCopies(copies, from: &nextCopy, before: page.locations[0], into: &body)
            let following = pages.next()
            let followingNeed = following.map(needs) ?? 0
            if let following {
                prefetchLines(following, need: followingNeed, crowded: crowded(followingNeed), sampleMask: sampleMask)
            }
            BlockRecordHeader.write(
                page.locations, from: 0, to: page.count, blocksPerPageShift: blocksPerPageShift,
                maskBytes: maskBytes, positions: &positions, into: &body)
            if crowded(need) {
                encodeCrowded(
                    page, following: following, sampleMask: sampleMask, sparseCode: sparseCode,
                    forms: &forms, into: &body, stats: &stats)
            } else {
                encodeRuns(
                    page, need: need, sampleMask: sampleMask, sparseCode: sparseCode, forms: &forms, into: &body,
                    stats: &stats)
            }
            records += 1
            blocks += page.count
            current = following
            need = followingNeed
        }
        records += writePageCopies(copies, from: &nextCopy, before: nil, into: &body)
        stats.zeroBlocks += Int(forms.zero)
        stats.sparseBlocks += Int(forms.sparse)
        stats.literalBlocks += Int(forms.literal)
        stats.literalBytes += Int(forms.literal) * 64
        admission.update(
            consulted: stats.blocksConsulted - consultedBefore,
            useful: stats.sharedHits + stats.diffBlocks - usefulBefore)
        anchors.endEpoch()
        differences.endEpoch()
        matcher?.endEpoch()
        return (records, blocks)
    }

    /// `ordinal`: the block's number in the epoch. `consult`: look the block up in the index and teach it the
    /// new content (else only its location's old entry is retired).
    @inline(__always)
    func encodeBlock(
        _ item: Int, _ capture: EpochCapture.View, ordinal: Int, consult: Bool, sparseCode: UInt8?,
        into body: inout ByteWriter,
        stats: inout EpochStatistics
    ) {
        let blockSize = geometry.blockSize
        let bytes = UnsafeRawPointer(capture.item(item))
        let location = capture.locations[item]
        let hash = capture.newHashes[item]
        if hash == zeroHash, CSupport_is_zero(bytes, blockSize) != 0 {
            _ = index.takePrevious(at: location, hash: capture.oldHashes[item])
            body.byte(DeltaFormat.BlockOp.zero.rawValue)
            stats.zeroBlocks += 1
            return
        }
        guard consult else {
            writeAgainstPrevious(
                bytes, previous: index.takePrevious(at: location, hash: capture.oldHashes[item]), hash: hash,
                at: location, ordinal: ordinal, sparseCode: sparseCode, into: &body, stats: &stats)
            return
        }
        stats.blocksConsulted += 1
        let candidate = runCandidate(location)
        let probing = searchesTable(hash: hash, location: location)
        let (match, matchedAt) = index.match(hash: hash, bytes: bytes, likelyAt: candidate, probing: probing)
        if findsByLocation {
            let continuesRun = matchedAt != nil && matchedAt == candidate
            anchors.count(
                location: location.packed, anchor: isAnchor(hash: hash, location: location),
                fromTable: matchedAt != nil && !continuesRun, continuesRun: continuesRun)
        }
        if let matchedAt { runHint = (location.packed, matchedAt.packed &- location.packed) }
        switch match {
        case .copy(let source):
            _ = index.takePrevious(at: location, hash: capture.oldHashes[item])
            body.byte(DeltaFormat.BlockOp.copy.rawValue)
            body.uleb(source.region)
            body.uleb(source.block)
            stats.sharedHits += 1
            return
        case .copyEpoch(let ordinal):
            _ = index.takePrevious(at: location, hash: capture.oldHashes[item])
            body.byte(DeltaFormat.BlockOp.copyEpoch.rawValue)
            body.uleb(ordinal)
            stats.sharedHits += 1
            return
        case .collision:
            stats.collisions += 1
        case .none:
            break
        }
        defer {
            // After the difference is taken: adding may reuse the slot that held the previous content.
            if match == .none {
                if probing {
                    index.addAbsent(hash: hash, at: location, bytes: bytes, ordinal: ordinal)
                } else {
                    index.store(hash: hash, at: location, bytes: bytes, ordinal: ordinal)
                }
                matcher?.record(bytes, ordinal: ordinal, hash: hash, slot: index.slotFilledLast)
            }
        }
        writeAgainstPrevious(
            bytes, previous: index.takePrevious(at: location, hash: capture.oldHashes[item]), hash: hash,
            at: location, ordinal: ordinal, sparseCode: sparseCode, into: &body, stats: &stats)
    }

    /// Writes a block with new hash `hash` as a difference against its location's `previous` content (just
    /// retired), if this epoch offers it one (``DifferenceAdmission``), or in sparse or literal form; an offer
    /// is counted, and so are the bytes a difference saved over the form the block would take without it.
    /// Then, when that form is long and the matcher finds the block's bytes (at `location`, the epoch's
    /// `ordinal`-th) in the index's stored copies in fewer bytes, as a splice instead.
    @inline(__always)
    private func writeAgainstPrevious(
        _ bytes: UnsafeRawPointer, previous: UnsafeRawPointer?, hash: UInt64, at location: BlockLocation,
        ordinal: Int, sparseCode: UInt8?, into body: inout ByteWriter, stats: inout EpochStatistics
    ) {
        let offered = previous != nil && differences.offers(hash)
        let start = body.count
        let formsBefore = (stats.diffBlocks, stats.sparseBlocks, stats.literalBlocks, stats.literalBytes)
        writeDifferenceOrLiteral(
            bytes, length: geometry.blockSize, base: offered ? previous : nil, scratch: diff,
            differenceCode: DeltaFormat.BlockOp.diff.rawValue, sparseCode: sparseCode,
            literalCode: DeltaFormat.BlockOp.literal.rawValue, into: &body, stats: &stats)
        if offered {
            differences.countOffered()
            if stats.diffBlocks != formsBefore.0 {
                let without = DifferenceAdmission.lengthWithoutBase(
                    bytes, length: geometry.blockSize, sparse: sparseCode != nil)
                differences.countSaving(without - (body.count - start))
            }
        }
        let length = body.count - start
        guard let matcher, learnsCapture, length > Self.spliceFloor,
            matcher.splice(bytes, ordinal: ordinal, hash: hash, location: location, limit: length, index: index)
        else { return }
        body.truncate(to: start)
        matcher.writeSplice(code: DeltaFormat.BlockOp.spliced.rawValue, into: &body)
        (stats.diffBlocks, stats.sparseBlocks, stats.literalBlocks, stats.literalBytes) = formsBefore
        stats.splicedBlocks += 1
    }
}
