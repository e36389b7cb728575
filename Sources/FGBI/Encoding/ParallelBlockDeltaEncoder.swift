import CSupport

/// The `fgbi` encoder on several threads: exactly the bytes ``BlockDeltaEncoder`` writes on one thread for the
/// same history (one content index, consulted in the same order), with the work that needs no index spread
/// over a crew.
///
/// Most changed blocks need no index: no stored copy holds their location's previous content and they are not
/// in the sample of lookups (``IndexAdmission``). Which blocks need it is known from the index's per-location
/// bits before any block is encoded (``BlockDeltaEncoder/indexNeeds(_:sampleMask:)``: a bit clear at the
/// start stays clear until its block is encoded). An epoch takes three steps:
/// 1. **Read and encode apart** (every thread, contiguous shards of the capture, cut at pages): each shard
///    rehashes its staged pages (``StagedPageReader``, or reads a capture of changed blocks as it is), writes
///    every page's record header into a segment of its own, encodes the blocks that need no index (zero,
///    sparse and literal forms, ``BlockDeltaEncoder/encodeRun(_:from:need:sampleMask:sparseCode:forms:into:)``)
///    and sets the others aside (``SetAsideBlocks``), leaving a hole for each.
/// 2. **The index, in order** (the calling thread): the set-aside blocks of every shard, in the epoch's
///    order, one after the other (``BlockDeltaEncoder/encodeSetAside(_:firstOrdinals:epoch:sparse:into:stats:)``),
///    each numbered by its place in the whole epoch: lookups, differences against stored copies, insertions
///    and retirements happen as on one thread, because the blocks of step 1 touched no index state.
/// 3. **Join** (every thread): each shard copies its segment into the body with the set-aside blocks'
///    encodings in their holes, after its first record's position, written relative to the shard before.
///
/// So the speed-up is bounded by step 2 (the blocks that need the index: a few per cent under fresh content
/// with sampled lookups, all of them when sharing pays) and by the copy of step 3; see Docs/ARCHITECTURE.md.
/// An epoch that can be split is split only while that has measured clearly faster than the one-thread path
/// (``ParallelEncodeChoice``): both write the same bytes. Small epochs, and one thread, take the one-thread
/// path; so does an epoch in which every block needs the
/// index (every block is looked up, as when sharing pays, or the blocks are not of 64 bytes, whose page loop
/// has no per-block choice) and that is larger than ``fullLookupMaximumBlocks``: all of its blocks would be
/// set aside and copied, for step 1 to rehash alone in parallel. With sampled lookups the
/// blocks set aside are those in the sample and those whose location's content a stored copy holds, so they
/// number at most the sample and the index's copies. Allocates only when an epoch outgrows every earlier one.
final class ParallelBlockDeltaEncoder {
    /// Shards of steps 1 and 3 per thread: a thread whose CPU is busy takes fewer of them.
    static let shardsPerThread = 4
    /// The largest epoch split while every block needs the index (4 MiB of 64-byte blocks set aside).
    static let fullLookupMaximumBlocks = 1 << 16

    private let geometry: BlockGeometry
    private let encoder: BlockDeltaEncoder<ContentIndex>
    /// The one content index, used by step 2 alone (step 1 only reads its per-location bits).
    let index: ContentIndex
    private let crew: CaptureCrew
    /// Epochs with fewer blocks (a staged page counting as a page's blocks) are encoded on the calling
    /// thread alone.
    private let parallelMinimumBlocks: Int
    private let shards: [Shard]
    /// Step 2's body.
    private var setAsideBody = ByteWriter(reservingCapacity: 1 << 16)
    /// Whether an epoch that can be split is, by measured time (``ParallelEncodeChoice``).
    private var choice: ParallelEncodeChoice

    /// One shard of steps 1 and 3: its reader, its segment and set-aside blocks, and what it counted.
    private final class Shard {
        let reader: StagedPageReader
        let setAside: SetAsideBlocks
        @exclusivity(unchecked) var segment = ByteWriter(reservingCapacity: 1 << 16)
        /// The first record's position, relative to the shard before (written in step 3's preparation).
        @exclusivity(unchecked) var lead = ByteWriter(reservingCapacity: 32)
        var forms = CSupport_block_forms()
        var records = 0
        var blocks = 0
        var pagesHeld = 0
        /// The first and last records' (region, page).
        var first = (region: 0, page: 0)
        var last = (region: 0, page: 0)
        /// Where the shard's bytes start in the body, and its set-aside blocks' encodings in step 2's.
        var offset = 0
        var setAsideStart = 0

        init(reader: StagedPageReader, blockSize: Int) {
            self.reader = reader
            setAside = SetAsideBlocks(blockSize: blockSize)
        }

        func reset() {
            setAside.reset()
            segment.removeAll()
            forms = CSupport_block_forms()
            records = 0
            blocks = 0
            pagesHeld = 0
        }
    }

    /// An encoder on the threads of `crew` (the calling one and its helpers) over `index`, reading staged
    /// pages against `tables` (and `baseline`, in a resynchronisation's first pass). With `splicing`, the blocks
    /// encoded through the index (on the calling thread, in order) may go as splices (``SpliceMatcher``).
    /// `choosesByTime`: an epoch that can be split is split only while that measures 10% faster than the calling
    /// thread alone (``ParallelEncodeChoice``); otherwise every such epoch is split.
    init(
        geometry: BlockGeometry, crew: CaptureCrew, index: ContentIndex, tables: [BlockTable], baseline: BaselineHashes,
        parallelMinimumBlocks: Int, choosesByTime: Bool, splicing: Bool = false,
        pageCopies: PageCopyFinder? = nil
    ) {
        choice = ParallelEncodeChoice(measures: choosesByTime)
        self.geometry = geometry
        self.index = index
        self.crew = crew
        self.parallelMinimumBlocks = parallelMinimumBlocks
        encoder = BlockDeltaEncoder(geometry: geometry, index: index, splicing: splicing)
        encoder.pageCopies = pageCopies
        shards = (0..<crew.participants * Self.shardsPerThread).map { _ in
            Shard(
                reader: StagedPageReader(tables: tables, geometry: geometry, baseline: baseline),
                blockSize: geometry.blockSize)
        }
    }

    /// What finds the pages sent as copies of others (on the one-thread path only), if any.
    var pageCopies: PageCopyFinder? { encoder.pageCopies }

    /// Threads an epoch is encoded on.
    var threads: Int { crew.participants }

    /// Bytes held: the index, the encoder's scratch and the set-aside blocks' lists.
    var metadataBytes: Int {
        index.metadataBytes + encoder.metadataBytes + shards.reduce(0) { $0 + $1.setAside.metadataBytes }
    }

    /// Tells the encoder's matcher of moved content, if any, what share of its bytes the last delta body kept
    /// through the compressor.
    func noteStoredShare(_ share: Double) { encoder.matcher?.noteStoredShare(share) }

    /// Encodes `capture` into `body`: its staged pages (`staged`, listing the unchanged ones in the capture when
    /// `recordUnchanged`), or its changed blocks. Returns the record count and the pages the backup already
    /// held, and fills the block counters of `stats`. `sparse` as for
    /// ``BlockDeltaEncoder/encode(_:staged:sparse:into:stats:)``.
    func encode(
        _ capture: EpochCapture, staged: Bool, recordUnchanged: Bool, sparse: Bool, into body: inout ByteWriter,
        stats: inout EpochStatistics
    ) -> (records: Int, pagesHeld: Int) {
        let blocks = staged ? capture.count * geometry.blocksPerPage : capture.count
        let sampleMask = encoder.beginCapture(capture)
        // Every block needs the index when all are looked up, or when the encoder cannot tell which do (block
        // sizes other than 64 bytes).
        let everyBlockSetAside = sampleMask == 0 || !encoder.encodesByRuns
        // Page copies are found on the one-thread path: taken while every page is tried for them (they pay).
        let copiesPay = staged && encoder.pageCopies?.triesEveryPage == true
        let splittable =
            threads > 1 && blocks >= parallelMinimumBlocks && capture.count > 1 && !copiesPay
            && (!everyBlockSetAside || blocks <= Self.fullLookupMaximumBlocks)
        guard splittable, choice.next() == .split else {
            return encodeAlone(
                capture, staged: staged, recordUnchanged: recordUnchanged, sparse: sparse,
                measuredAs: splittable ? blocks : nil, into: &body, stats: &stats)
        }
        let started = MonotonicClock.nanoseconds()
        defer { choice.record(.split, nanoseconds: MonotonicClock.nanoseconds() - started, blocks: blocks) }
        if staged { encoder.learnHeldPages(of: capture, with: shards[0].reader) }
        let ranges =
            staged
            ? Self.evenShards(of: capture.count, count: shards.count)
            : Self.shards(
                of: capture.view, count: shards.count, blocksPerPageShift: geometry.blocksPerPage.trailingZeroBitCount)
        let used = shards.prefix(ranges.count)
        let sparseCode: UInt8? = sparse ? DeltaFormat.BlockOp.sparse.rawValue : nil
        crew.perform(chunks: ranges.count) { chunk, _ in
            self.readAndEncodeApart(
                capture, staged: staged, items: ranges[chunk], shard: self.shards[chunk],
                recordUnchanged: recordUnchanged, sampleMask: sampleMask, sparseCode: sparseCode)
        }
        // In order: the unchanged pages (as one thread lists them), the shards' first positions and numbering.
        var positions = RecordPositionWriter()
        var firstOrdinals: [Int] = []
        var records = 0
        var blockCount = 0
        var pagesHeld = 0
        for shard in used {
            if staged { shard.reader.finish() }
            firstOrdinals.append(blockCount)
            shard.lead.removeAll()
            if shard.records > 0 {
                positions.write(region: shard.first.region, page: shard.first.page, to: &shard.lead)
                positions.resume(afterRegion: shard.last.region, page: shard.last.page)
            }
            records += shard.records
            blockCount += shard.blocks
            pagesHeld += shard.pagesHeld
            stats.zeroBlocks += Int(shard.forms.zero)
            stats.sparseBlocks += Int(shard.forms.sparse)
            stats.literalBlocks += Int(shard.forms.literal)
            stats.literalBytes += Int(shard.forms.literal) * geometry.blockSize
        }
        if !staged { pagesHeld = capture.pagesHeld }
        setAsideBody.removeAll()
        encoder.encodeSetAside(
            used.map(\.setAside), firstOrdinals: firstOrdinals, epoch: capture.epoch, sparse: sparse,
            into: &setAsideBody, stats: &stats)
        var total = 0
        var setAsideStart = 0
        for shard in used {
            shard.offset = total
            shard.setAsideStart = setAsideStart
            let setAside = shard.setAside
            let setAsideEnd = setAside.count == 0 ? setAsideStart : setAside.ends[setAside.count - 1]
            total += shard.lead.count + shard.segment.count + setAsideEnd - setAsideStart
            setAsideStart = setAsideEnd
        }
        let destination = body.extend(by: total)
        crew.perform(chunks: ranges.count) { chunk, _ in self.join(self.shards[chunk], into: destination) }
        stats.blocksDirty = blockCount
        encoder.endCapture(capture, stats: stats)
        (stats.encodeThreads, stats.epochsEncodedSplit) = (threads, 1)
        stats.indexEntries = index.entryCount
        encoder.pageCopies?.learnKeys(of: capture)
        return (records, pagesHeld)
    }

    /// An epoch on the calling thread alone (the one-thread encoder); when it could have been split, its time
    /// per block (`measuredAs` blocks) is recorded for ``ParallelEncodeChoice``.
    private func encodeAlone(
        _ capture: EpochCapture, staged: Bool, recordUnchanged: Bool, sparse: Bool, measuredAs blocks: Int?,
        into body: inout ByteWriter, stats: inout EpochStatistics
    ) -> (records: Int, pagesHeld: Int) {
        let started = MonotonicClock.nanoseconds()
        let result = encoder.encode(
            capture, reading: staged ? shards[0].reader : nil, recordUnchanged: recordUnchanged,
            sparse: sparse, into: &body, stats: &stats)
        stats.encodeThreads = 1
        stats.indexEntries = index.entryCount
        if let blocks { choice.record(.alone, nanoseconds: MonotonicClock.nanoseconds() - started, blocks: blocks) }
        return result
    }

    /// Step 1 for one shard: its pages read (staged ones rehashed), their headers written, those that need no
    /// index encoded, the others set aside.
    private func readAndEncodeApart(
        _ capture: EpochCapture, staged: Bool, items: Range<Int>, shard: Shard, recordUnchanged: Bool,
        sampleMask: UInt64, sparseCode: UInt8?
    ) {
        shard.reset()
        if staged {
            shard.reader.start(capture, items: items, recordUnchanged: recordUnchanged)
            encodeApart(shard.reader, shard: shard, sampleMask: sampleMask, sparseCode: sparseCode)
            shard.pagesHeld = shard.reader.pagesHeld
        } else {
            let pages = CapturePages(
                capture.view, blocksPerPageShift: geometry.blocksPerPage.trailingZeroBitCount, items: items)
            encodeApart(pages, shard: shard, sampleMask: sampleMask, sparseCode: sparseCode)
        }
    }

    @inline(__always)
    private func encodeApart<Pages: PageViews>(_ source: Pages, shard: Shard, sampleMask: UInt64, sparseCode: UInt8?) {
        var pages = source
        let blocksPerPage = geometry.blocksPerPage
        let blocksPerPageShift = blocksPerPage.trailingZeroBitCount
        let maskBytes = (blocksPerPage + 7) / 8
        var positions = RecordPositionWriter()
        var forms = CSupport_block_forms()
        var records = 0
        var blocks = 0
        while let page = pages.next() {
            let location = page.locations[0]
            let pageNumber = location.block >> blocksPerPageShift
            if records == 0 {
                shard.first = (location.region, pageNumber)
                positions.resume(afterRegion: location.region, page: pageNumber)
                BlockRecordHeader.writeKindAndBlocks(
                    page.locations, from: 0, to: page.count,
                    blocksPerPageShift: blocksPerPageShift, maskBytes: maskBytes,
                    into: &shard.segment)
            } else {
                BlockRecordHeader.write(
                    page.locations, from: 0, to: page.count,
                    blocksPerPageShift: blocksPerPageShift, maskBytes: maskBytes,
                    positions: &positions, into: &shard.segment)
            }
            let need = encoder.indexNeeds(page, sampleMask: sampleMask)
            var item = 0
            while item < page.count {
                item += encoder.encodeRun(
                    page, from: item, need: need >> UInt64(item), sampleMask: sampleMask, sparseCode: sparseCode,
                    forms: &forms, into: &shard.segment)
                if item < page.count {
                    shard.setAside.keep(page, item: item, ordinal: blocks + item, hole: shard.segment.count)
                    item += 1
                }
            }
            shard.last = (location.region, pageNumber)
            records += 1
            blocks += page.count
        }
        shard.forms = forms
        shard.records = records
        shard.blocks = blocks
    }

    /// Step 3 for one shard: its first position, then its segment with each set-aside block's encoding (from
    /// step 2's body) in its hole, at the shard's offset in `destination`. Blocks set aside one after the
    /// other with nothing between them in the segment are copied at once (their encodings follow each other
    /// in step 2's body too).
    private func join(_ shard: Shard, into destination: UnsafeMutableRawPointer) {
        var out = destination + shard.offset
        let copy = { (source: UnsafeRawPointer, count: Int) in
            out.copyMemory(from: source, byteCount: count)
            out += count
        }
        if let lead = shard.lead.bytes.baseAddress { copy(lead, shard.lead.count) }
        guard let segment = shard.segment.bytes.baseAddress else { return }
        let blocks = shard.setAside
        var done = 0
        var item = 0
        while item < blocks.count {
            let hole = blocks.holes[item]
            let start = item == 0 ? shard.setAsideStart : blocks.ends[item - 1]
            var end = item + 1
            while end < blocks.count && blocks.holes[end] == hole { end += 1 }
            copy(segment + done, hole - done)
            copy(setAsideBody.bytes.baseAddress! + start, blocks.ends[end - 1] - start)
            done = hole
            item = end
        }
        copy(segment + done, shard.segment.count - done)
    }

    /// `count` item ranges of about the same size over `0..<items` (a capture of whole pages), the empty left
    /// out.
    static func evenShards(of items: Int, count: Int) -> [Range<Int>] {
        (0..<count).map { items * $0 / count..<items * ($0 + 1) / count }.filter { !$0.isEmpty }
    }

    /// About `count` ranges of the capture's items, each of whole pages, in order.
    static func shards(of capture: EpochCapture.View, count: Int, blocksPerPageShift: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        for shard in 1...max(count, 1) {
            var end = shard == count ? capture.count : max(start, capture.count * shard / count)
            while end > start, end < capture.count,
                BlockRecordHeader.samePage(
                    capture.locations[end], capture.locations[end - 1],
                    blocksPerPageShift: blocksPerPageShift)
            {
                end += 1
            }
            if end > start { ranges.append(start..<end) }
            start = end
        }
        if start < capture.count { ranges.append(start..<capture.count) }
        return ranges
    }
}
