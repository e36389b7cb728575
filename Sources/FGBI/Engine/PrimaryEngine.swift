/// The primary side of FGBI: turns each epoch's written pages into an epoch delta.
///
/// An epoch has two stages, kept apart so a pipeline can let the guest run during the second:
/// - ``capture(_:into:)`` needs the guest paused: for the `fgbi` mode it rehashes the written pages'
///   blocks against the ``BlockTable`` and copies only the blocks whose hash changed; for the page modes it
///   copies the written pages whole (what Remus does).
/// - ``encode(_:)`` runs while the guest runs again: index lookups, sharing, differences, compression,
///   reading only the capture and the engine's own copies.
/// The first capture covers every page (the backup starts zero-filled); later ones cover what the tracker
/// reports. Several regions (guests) share one content index, so a block duplicated across them travels
/// as a reference.
///
/// Change detection trusts the 64-bit XXH3 of each block, as FGBI does: a change that keeps the hash (odds
/// 2^-64 per changed block) would go unsent. Sharing never trusts a hash: every hit is compared bitwise.
public final class PrimaryEngine: @unchecked Sendable {
    public let regions: [GuestMemory]
    public let configuration: EngineConfiguration
    public let geometry: BlockGeometry
    private let tables: [BlockTable]
    private let blockEncoder: BlockDeltaEncoder?
    private let pageEncoder: PageDeltaEncoder?
    private let assembler: DeltaAssembler
    private var nextEpoch: UInt64 = 0
    private let previousHashes = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
    private var body = ByteWriter(reservingCapacity: 1 << 20)
    private var output = ByteWriter(reservingCapacity: 1 << 20)

    /// - Throws: ``FGBIError/invalidArgument(_:)`` for an unsupported block size, no regions, or more than
    ///   ``BlockLocation/maxRegions``.
    public init(regions: [GuestMemory], configuration: EngineConfiguration = EngineConfiguration()) throws {
        guard !regions.isEmpty, regions.count <= BlockLocation.maxRegions else {
            throw FGBIError.invalidArgument("an engine replicates 1 to \(BlockLocation.maxRegions) regions, not \(regions.count)")
        }
        let geometry = try BlockGeometry(blockSize: configuration.blockSize)
        self.regions = regions
        self.configuration = configuration
        self.geometry = geometry
        if configuration.mode == .fgbi {
            tables = regions.map { BlockTable(regionLength: $0.length, geometry: geometry) }
            let index = ContentIndex(blockSize: geometry.blockSize, budgetBytes: configuration.contentBudgetBytes,
                                     keying: configuration.indexKeying)
            blockEncoder = BlockDeltaEncoder(geometry: geometry, index: index)
            pageEncoder = nil
            contentIndex = index
        } else {
            tables = []
            blockEncoder = nil
            pageEncoder = PageDeltaEncoder(mode: configuration.mode, pageSize: geometry.pageSize,
                                           cacheBudgetBytes: configuration.pageCacheBudgetBytes)
            contentIndex = nil
        }
        assembler = DeltaAssembler(mode: configuration.mode, compression: configuration.effectiveCompression,
                                   geometry: geometry, regionCount: regions.count)
    }

    private let contentIndex: ContentIndex?

    deinit { previousHashes.deallocate() }

    /// The epoch the next capture will produce.
    public var upcomingEpoch: UInt64 { nextEpoch }

    /// Bytes of metadata the engine holds: block tables, content index (with its stored copies) or page cache.
    public var metadataBytes: Int {
        tables.reduce(0) { $0 + $1.metadataBytes } + (contentIndex?.metadataBytes ?? 0)
            + (blockEncoder?.metadataBytes ?? 0) + (pageEncoder?.metadataBytes ?? 0)
    }

    /// Entries the content index holds now (`fgbi` mode).
    public var indexEntries: Int { contentIndex?.entryCount ?? 0 }

    /// The paused stage: captures what the epoch changed into `capture`. `dirty` has one page set per
    /// region (ignored for the first epoch, which covers everything).
    ///
    /// - Throws: ``FGBIError/invalidArgument(_:)`` when `dirty` does not match the regions; nothing is
    ///   changed then.
    public func capture(_ dirty: [DirtyPageSet], into capture: EpochCapture) throws {
        let full = nextEpoch == 0
        if !full {
            guard dirty.count == regions.count else {
                throw FGBIError.invalidArgument("\(dirty.count) dirty page sets for \(regions.count) regions")
            }
            for (set, region) in zip(dirty, regions) where (set.runs.last?.end ?? 0) > region.pageCount {
                throw FGBIError.invalidArgument("dirty page \(set.runs.last!.end - 1) is past the region's \(region.pageCount) pages")
            }
        }
        let start = MonotonicClock.nanoseconds()
        let pageSize = geometry.pageSize
        capture.reset(epoch: nextEpoch, itemSize: configuration.mode == .fgbi ? geometry.blockSize : pageSize)
        for (regionIndex, region) in regions.enumerated() {
            let runs = full ? [PageRun(start: 0, count: region.pageCount)] : dirty[regionIndex].runs
            for run in runs {
                for page in run.start..<run.end {
                    if tables.isEmpty {
                        capture.append(BlockLocation(region: regionIndex, block: page), from: region.page(page))
                    } else {
                        captureBlocks(page: page, region: region, regionIndex: regionIndex, into: capture)
                    }
                }
                capture.pagesWritten += run.count
            }
        }
        capture.captureNanoseconds = MonotonicClock.nanoseconds() - start
        nextEpoch += 1
    }

    @inline(__always)
    private func captureBlocks(page: Int, region: GuestMemory, regionIndex: Int, into capture: EpochCapture) {
        let table = tables[regionIndex]
        let blocksPerPage = geometry.blocksPerPage
        let blockSize = geometry.blockSize
        let pageBytes = region.page(page)
        var changed = table.rehash(page: page, in: pageBytes, previous: previousHashes)
        capture.blocksRehashed += blocksPerPage
        while changed != 0 {
            let offset = changed.trailingZeroBitCount
            changed &= changed - 1
            let block = page * blocksPerPage + offset
            capture.append(BlockLocation(region: regionIndex, block: block), from: pageBytes + offset * blockSize,
                           oldHash: previousHashes[offset], newHash: table[block])
        }
    }

    /// The stage that may run with the guest running: encodes a capture into an epoch delta (the bytes
    /// to send) with its statistics. Captures must be encoded in the order they were made.
    public func encode(_ capture: EpochCapture) throws -> (delta: [UInt8], statistics: EpochStatistics) {
        let start = MonotonicClock.nanoseconds()
        var stats = EpochStatistics()
        stats.epoch = capture.epoch
        stats.mode = configuration.mode.rawValue
        stats.pagesWritten = capture.pagesWritten
        stats.blocksRehashed = capture.blocksRehashed
        stats.captureNanoseconds = capture.captureNanoseconds
        body.removeAll()
        let records: Int
        if let blockEncoder {
            records = blockEncoder.encode(capture, into: &body, stats: &stats)
        } else {
            records = pageEncoder!.encode(capture, into: &body, stats: &stats)
        }
        stats.bodyBytes = body.count
        stats.compressNanoseconds = try assembler.assemble(epoch: capture.epoch, records: records, body: body.bytes, into: &output)
        stats.wireBytes = output.count
        stats.encodeNanoseconds = MonotonicClock.nanoseconds() - start - stats.compressNanoseconds
        return (output.array, stats)
    }
}
