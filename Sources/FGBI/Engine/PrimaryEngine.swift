import CSupport
import Dispatch
import Synchronization

/// The primary side of FGBI: turns each epoch's written pages into an epoch delta.
///
/// An epoch has two stages, kept apart so a pipeline can let the guest run during the second:
/// - ``capture(_:into:)`` needs the guest paused: for the `fgbi` mode it rehashes the written pages'
///   blocks against the `BlockTable` and copies only the blocks whose hash changed; for the page modes it
///   copies the written pages whole (what Remus does).
/// - ``encode(_:)`` runs while the guest runs again: index lookups, sharing, differences, compression,
///   reading only the capture and the engine's own copies.
/// An engine serves one session with one backup. The session's first pass covers every page: either one
/// full paused capture, or pre-copy captures taken while the guest runs (``capturePrecopy(_:firstPass:into:)``)
/// followed by ``completeFirstPass()``. Later captures cover what the tracker reports. A new backup is
/// zero-filled; a backup that holds content sends its page hashes (`ReplicaSummary`), and the first pass
/// skips every page whose hash matches, so resynchronising costs what differs. The regions of one engine
/// share its content index, so a block duplicated across them travels as a reference. Engines of different
/// guests (each with its own backup) may share a ``SharedContentIndex`` (``EngineConfiguration/sharedIndex``):
/// they then keep one stored copy of content they hold alike, but each references only what its own backup
/// holds.
///
/// Change detection trusts the 64-bit XXH3 of each block, as FGBI does: a change that keeps the hash (odds
/// 2^-64 per changed block) would go unsent. Sharing never trusts a hash: every hit is compared bitwise.
public final class PrimaryEngine: @unchecked Sendable {
    public let regions: [GuestMemory]
    public let configuration: EngineConfiguration
    public let geometry: BlockGeometry
    let tables: [BlockTable]
    let blockEncoder: BlockEncoding?
    let pageEncoder: PageDeltaEncoder?
    let assembler: DeltaAssembler
    let literalForms: LiteralFormChooser
    private var nextEpoch: UInt64
    /// The session's first pass (every page) is still to come.
    private var firstPassPending = true
    /// A pre-copy capture was taken this session, and the pages of the first pass not yet captured.
    private var precopyTaken = false
    private lazy var firstPassPagesLeft = regions.reduce(0) { $0 + $1.pageCount }
    /// Per region, the XXH3-64 of each page the backup holds, when it holds content (resynchronisation).
    private let baseline: BaselineHashes
    /// Per capture thread: the previous hashes of the page being rehashed.
    private let scratch: [UnsafeMutablePointer<UInt64>]
    /// The helper threads of a parallel capture.
    private let crew: CaptureCrew
    /// Per chunk of a parallel `fgbi` capture: where its changed blocks go before joining.
    private var segments: [EpochCapture] = []
    /// Copied epochs captured and not yet encoded, and the changed blocks found in the one being encoded.
    let pendingPageCaptures = Atomic<Int>(0)
    private let chooser = PthreadLock(CaptureStrategyChooser())
    /// The delta being built (the encoders write its body in place), and where a compressed body goes (the
    /// two trade places then: ``DeltaAssembler/finish(epoch:records:delta:scratch:)``).
    var output = ByteWriter()
    var compressed = ByteWriter()

    /// An engine whose first capture is numbered `firstEpoch`, for a zero-filled backup.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for an unsupported block size, no regions, or more regions
    ///   than the wire's block locations can number.
    public convenience init(
        regions: [GuestMemory], configuration: EngineConfiguration = EngineConfiguration(),
        firstEpoch: UInt64 = 0
    ) throws {
        try self.init(regions: regions, configuration: configuration, firstEpoch: firstEpoch, backupHolds: nil)
    }

    /// An engine whose first capture is numbered `firstEpoch`, for a backup that is zero-filled (`backupHolds`
    /// nil) or holds the pages `backupHolds` describes (a resynchronisation).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` as the public initialiser does, or for a summary of another
    ///   layout.
    package init(
        regions: [GuestMemory], configuration: EngineConfiguration = EngineConfiguration(),
        firstEpoch: UInt64 = 0, backupHolds summary: ReplicaSummary?
    ) throws {
        let geometry = try configuration.checked(regions: regions, summary: summary)
        baseline = BaselineHashes(summary: summary, pageSize: GuestMemory.pageSize)
        nextEpoch = firstEpoch
        // One helper per capture CPU, or the checkpoint thread and `captureThreads - 1` helpers; scratch space
        // for each participant (0 is the checkpoint thread).
        let helpers =
            configuration.captureCPUs.isEmpty ? configuration.captureThreads - 1 : configuration.captureCPUs.count
        scratch = (0...helpers).map { _ in .allocate(capacity: 64) }
        crew = try CaptureCrew(
            helpers: helpers, cpus: configuration.captureCPUs, realtimePriority: configuration.captureRealtimePriority)
        self.regions = regions
        self.configuration = configuration
        self.geometry = geometry
        // A budget over the regions' size buys nothing: the index holds at most one copy per block location, the
        // page cache one per page.
        let regionBytes = regions.reduce(0) { $0 + $1.length }
        let contentBudget = min(configuration.contentBudgetBytes, regionBytes)
        if configuration.mode == .fgbi {
            let tables = regions.map {
                BlockTable(regionLength: $0.length, geometry: geometry, unknown: summary != nil)
            }
            self.tables = tables
            blockEncoder = try BlockEncoding(
                configuration: configuration, geometry: geometry, regions: regions, tables: tables,
                baseline: baseline, contentBudget: contentBudget)
            pageEncoder = nil
        } else {
            tables = []
            blockEncoder = nil
            pageEncoder = PageDeltaEncoder(
                mode: configuration.mode, pageSize: geometry.pageSize,
                cacheBudgetBytes: min(configuration.pageCacheBudgetBytes, regionBytes))
        }
        assembler = DeltaAssembler(
            mode: configuration.mode, compression: configuration.effectiveCompression,
            geometry: geometry, regionCount: regions.count,
            minimumSaving: configuration.effectiveCompressionMinimumSaving)
        literalForms = LiteralFormChooser(
            compression: configuration.effectiveCompression,
            minimumSaving: configuration.effectiveCompressionMinimumSaving, blockSize: geometry.blockSize)
        // Room for the delta of `deltaBufferPages` pages: each page's blocks as literals with their operation
        // bytes, a record header, and the compressor's bound for the body.
        let bufferPages = min(configuration.deltaBufferPages, regionBytes / geometry.pageSize)
        let body = bufferPages * (geometry.pageSize + geometry.blocksPerPage + 64)
        let framing = DeltaFormat.headerLength + DeltaFormat.checksumLength
        output.reserve(faultedIn: framing + body)
        if configuration.effectiveCompression != .none {
            compressed.reserve(faultedIn: framing + configuration.effectiveCompression.bound(body))
        }
    }

    deinit { for buffer in scratch { buffer.deallocate() } }

    /// The epoch the next capture will produce.
    public var upcomingEpoch: UInt64 { nextEpoch }

    /// Bytes of metadata the engine holds: block tables, content index (with its stored copies) or page cache.
    /// With a shared index, only this engine's entry table in it: the shared copies are the index's
    /// (``SharedContentIndex/metadataBytes``).
    public var metadataBytes: Int {
        tables.reduce(0) { $0 + $1.metadataBytes } + (blockEncoder?.metadataBytes ?? 0)
            + (pageEncoder?.metadataBytes ?? 0)
    }

    /// Entries the content index holds now for this engine's backup (`fgbi` mode).
    public var indexEntries: Int {
        switch blockEncoder {
        case .own(_, let index, _)?: return index.entryCount
        case .parallel(let encoder)?: return encoder.index.entryCount
        case .shared(_, let member, _)?: return member.exclusively { member.entryCount }
        case nil: return 0
        }
    }

    /// Lets the `fgbi` encoder send a written page that is a whole copy of another page as a `page-copy` record
    /// (``EngineConfiguration/pageCopies``): `witnesses` has, per region, what vouches that a page was not
    /// written since the last collection (the region's uffd-async tracker), or nil. Each capture must then
    /// follow its trackers' collection for the epoch, as in a paused epoch. Call before the first capture.
    package func attachWitnesses(_ witnesses: [(any WrittenPageWitness)?]) throws {
        guard witnesses.count == regions.count else {
            throw FGBIError.invalidArgument("\(witnesses.count) witnesses for \(regions.count) regions")
        }
        blockEncoder?.pageCopyFinder?.witnesses = witnesses
    }

    /// The paused stage: captures what the epoch changed into `capture`. `dirty` has one page set per
    /// region (ignored for the first epoch, which covers everything).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` when `dirty` does not match the regions; nothing is
    ///   changed then.
    public func capture(_ dirty: [DirtyPageSet], into capture: EpochCapture) throws {
        let full = firstPassPending
        if !full {
            guard dirty.count == regions.count else {
                throw FGBIError.invalidArgument("\(dirty.count) dirty page sets for \(regions.count) regions")
            }
            for (set, region) in zip(dirty, regions) where (set.runs.last?.end ?? 0) > region.pageCount {
                throw FGBIError.invalidArgument(
                    "dirty page \(set.runs.last!.end - 1) is past the region's \(region.pageCount) pages")
            }
        }
        let start = MonotonicClock.nanoseconds()
        // A full capture after pre-copy steps (replication stopped during the first pass): those steps may
        // still wait to be expanded against the block table, and they overwrote pages the backup's summary
        // describes. So copy every page (expanded in order after them) and compare with nothing.
        let afterPrecopy = full && precopyTaken
        let strategy: CaptureStrategy
        if tables.isEmpty || (full && !afterPrecopy) {
            strategy = .rehash
        } else if afterPrecopy {
            strategy = .copyPages
        } else {
            let pages = dirty.reduce(0) { $0 + $1.pageCount }
            strategy = chooseStrategy(stagingReady: capture.canStage(pages: pages, pageSize: geometry.pageSize))
        }
        let wholePages = tables.isEmpty || strategy == .copyPages
        capture.reset(epoch: nextEpoch, itemSize: wholePages ? geometry.pageSize : geometry.blockSize)
        capture.holdsPages = !tables.isEmpty && wholePages
        capture.holdsBlocks = !tables.isEmpty && !wholePages
        capture.comparesWithBaseline = full && baseline.pageHashes != nil && !afterPrecopy
        if let finder = blockEncoder?.pageCopyFinder, finder.isActive {
            capture.witnessCollections.append(contentsOf: finder.witnesses.lazy.map { $0?.collectionCount ?? 0 })
        }
        var work: [Span] = []
        for (regionIndex, region) in regions.enumerated() {
            for run in full ? [PageRun(start: 0, count: region.pageCount)] : dirty[regionIndex].runs {
                work.append(Span(region: regionIndex, start: run.start, count: run.count))
            }
        }
        let pages = work.reduce(0) { $0 + $1.count }
        capture.streamsPages = streamsCapture(ofPages: pages)
        // The page modes leave out pages the backup already holds: no fixed places, so one thread in order.
        let inOrder = capture.comparesWithBaseline && tables.isEmpty
        // Pinned helpers take every capture (the guest's pages stay in its cores' caches); otherwise small
        // captures stay on this thread, as waking helpers costs more than it saves.
        let pinned = !configuration.captureCPUs.isEmpty
        let threads = crew.participants
        if !inOrder && threads > 1 && pages >= (pinned ? 1 : configuration.parallelCaptureMinimumPages) {
            // More chunks than threads, so a thread whose CPU is busy takes fewer of them.
            let chunks = min(threads * Self.chunksPerThread, max(pages / Self.minimumChunkPages, threads))
            if wholePages {
                capturePagesInParallel(Self.split(work, into: chunks), total: pages, into: capture)
            } else {
                captureBlocksInParallel(Self.split(work, into: chunks), into: capture)
            }
        } else if pages > 0 {
            // On this thread, or on the one pinned helper.
            crew.perform(chunks: 1) { _, participant in
                captureSpans(work[...], wholePages: wholePages, into: capture, scratch: scratch[participant])
            }
        }
        capture.pagesWritten = pages
        capture.captureNanoseconds = MonotonicClock.nanoseconds() - start
        if capture.holdsPages { pendingPageCaptures.add(1, ordering: .releasing) }
        if !tables.isEmpty && !full {
            chooser.withLock { $0.record(strategy, nanoseconds: capture.captureNanoseconds, pages: pages) }
        }
        firstPassPending = false
        nextEpoch += 1
    }

    /// A step of a synchronisation, taken while the guest runs: copies the pages of `spans` into `capture`
    /// (a pre-copy capture: encoded and sent like an epoch, committed as none). Pages the guest writes
    /// meanwhile may be copied torn; the tracker reports them, and a later round or the final paused
    /// epoch sends them again. `firstPass` marks captures of the session's first pass, which skip pages
    /// the backup already holds; call ``completeFirstPass()`` once they covered every page.
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` for a span outside the regions.
    public func capturePrecopy(_ spans: [PageSpan], firstPass: Bool, into capture: EpochCapture) throws {
        for span in spans {
            guard span.region >= 0, span.region < regions.count, span.start >= 0, span.count >= 0,
                span.start + span.count <= regions[span.region].pageCount
            else {
                throw FGBIError.invalidArgument("pre-copy span \(span) is outside the regions")
            }
        }
        let start = MonotonicClock.nanoseconds()
        capture.reset(epoch: nextEpoch, itemSize: geometry.pageSize)
        capture.isPrecopy = true
        capture.isFirstPass = firstPass
        precopyTaken = true
        capture.holdsPages = !tables.isEmpty
        capture.comparesWithBaseline = firstPass && baseline.pageHashes != nil
        let pages = spans.reduce(0) { $0 + $1.count }
        if firstPass && !configuration.learnsWholeFirstPass && !capture.comparesWithBaseline {
            firstPassPagesLeft = max(firstPassPagesLeft - pages, 0)
            capture.firstPassPagesAfter = firstPassPagesLeft
        }
        capture.streamsPages = streamsCapture(ofPages: pages)
        captureSpans(spans[...], wholePages: true, into: capture, scratch: scratch[0])
        capture.pagesWritten = pages
        capture.captureNanoseconds = MonotonicClock.nanoseconds() - start
        if capture.holdsPages { pendingPageCaptures.add(1, ordering: .releasing) }
        nextEpoch += 1
    }

    /// Records the block hashes a resynchronised backup holds in the pages of `region` from `firstPage` on
    /// (``BlockHashExchange``), so the first pass sends only the blocks of those pages that differ. `fgbi`
    /// mode only; before the first capture.
    package func learnBackupBlocks(region: Int, firstPage: Int, hashes: [UInt64]) {
        guard !tables.isEmpty else { return }
        tables[region].record(hashes[...], fromPage: firstPage)
    }

    /// The pre-copy captures of the first pass have covered every page: from now on captures cover only
    /// the pages the tracker reports.
    public func completeFirstPass() { firstPassPending = false }

    /// The `fgbi` capture strategy for this epoch: the configured one, or the chooser's. A rehash capture
    /// writes the block table, so it waits for no copied epoch to be pending (the encoder rehashes those).
    /// `stagingReady`: the capture at hand can stage the epoch's pages whole in memory already faulted in.
    private func chooseStrategy(stagingReady: Bool) -> CaptureStrategy {
        let rehashAllowed = pendingPageCaptures.load(ordering: .acquiring) == 0
        switch configuration.captureStrategy {
        case .copyPages: return .copyPages
        case .rehash where rehashAllowed: return .rehash
        case .rehash: return .copyPages
        case .automatic:
            let copiesPay = blockEncoder?.pageCopyFinder?.copiesPay == true
            return chooser.withLock {
                $0.choose(rehashAllowed: rehashAllowed, favouringCopy: copiesPay, stagingReady: stagingReady)
            }
        }
    }

    /// Whether a capture of `pages` whole pages goes in with streaming stores: when it is larger than
    /// ``EngineConfiguration/cachedCaptureBytes`` (``EpochCapture/streamsPages``).
    private func streamsCapture(ofPages pages: Int) -> Bool {
        pages * geometry.pageSize > configuration.cachedCaptureBytes
    }

    /// One thread's capture of `spans`, appended to `capture`.
    private func captureSpans(
        _ spans: ArraySlice<Span>, wholePages: Bool, into capture: EpochCapture, scratch: UnsafeMutablePointer<UInt64>
    ) {
        // The page modes leave out pages the backup holds here; `fgbi` when it rehashes the page (the table
        // must learn the page's hashes either way), at once or after the copy (``StagedPageReader``).
        let skipHeldPages = capture.comparesWithBaseline && tables.isEmpty
        let compareBlocks = capture.comparesWithBaseline && !wholePages
        for span in spans {
            let region = regions[span.region]
            for page in span.start..<(span.start + span.count) {
                if wholePages {
                    capture.append(BlockLocation(region: span.region, block: page), from: region.page(page))
                    if skipHeldPages
                        && baseline.holds(region: span.region, page: page, bytes: capture.item(capture.count - 1))
                    {
                        capture.dropLast()
                        capture.pagesHeld += 1
                    }
                } else {
                    captureBlocks(
                        page: page, region: region, regionIndex: span.region, into: capture, previous: scratch,
                        compareWithBaseline: compareBlocks)
                }
            }
        }
        if wholePages { EpochCapture.finishStores() }
    }

    /// Page modes, and `fgbi` copying pages: each chunk's pages go straight to their final places.
    private func capturePagesInParallel(_ pieces: [[Span]], total: Int, into capture: EpochCapture) {
        capture.prepare(count: total)
        var starts: [Int] = []
        var next = 0
        for piece in pieces {
            starts.append(next)
            next += piece.reduce(0) { $0 + $1.count }
        }
        crew.perform(chunks: pieces.count) { chunk, _ in
            var index = starts[chunk]
            for span in pieces[chunk] {
                let region = regions[span.region]
                for page in span.start..<(span.start + span.count) {
                    capture.place(index, BlockLocation(region: span.region, block: page), from: region.page(page))
                    index += 1
                }
            }
            EpochCapture.finishStores()
        }
    }

    /// `fgbi` rehashing: each chunk's changed blocks go to a capture of its own (how many blocks changed is
    /// not known in advance); the chunks are then joined in order.
    private func captureBlocksInParallel(_ pieces: [[Span]], into capture: EpochCapture) {
        while segments.count < pieces.count { segments.append(EpochCapture()) }
        for segment in segments.prefix(pieces.count) {
            segment.reset(epoch: capture.epoch, itemSize: geometry.blockSize)
            segment.comparesWithBaseline = capture.comparesWithBaseline
            segment.recordsUnchangedPages = capture.recordsUnchangedPages
        }
        crew.perform(chunks: pieces.count) { chunk, participant in
            captureSpans(pieces[chunk][...], wholePages: false, into: segments[chunk], scratch: scratch[participant])
        }
        for segment in segments.prefix(pieces.count) { capture.append(contentsOf: segment) }
    }

    @inline(__always)
    private func captureBlocks(
        page: Int, region: GuestMemory, regionIndex: Int, into capture: EpochCapture,
        previous previousHashes: UnsafeMutablePointer<UInt64>, compareWithBaseline: Bool = false
    ) {
        let table = tables[regionIndex]
        let blocksPerPage = geometry.blocksPerPage
        let blockSize = geometry.blockSize
        let pageBytes = region.page(page)
        var changed = table.rehash(page: page, in: pageBytes, previous: previousHashes)
        capture.blocksRehashed += blocksPerPage
        if changed == 0 && capture.recordsUnchangedPages {
            capture.unchangedPages.append(BlockLocation(region: regionIndex, block: page))
        }
        if compareWithBaseline && baseline.holds(region: regionIndex, page: page, bytes: pageBytes) {
            capture.pagesHeld += 1
            return
        }
        while changed != 0 {
            let offset = changed.trailingZeroBitCount
            changed &= changed - 1
            let block = page * blocksPerPage + offset
            capture.append(
                BlockLocation(region: regionIndex, block: block), from: pageBytes + offset * blockSize,
                oldHash: previousHashes[offset], newHash: table[block])
        }
    }
}
