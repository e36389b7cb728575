import CSupport
import FGBI

/// Turns each epoch's written pages into the facts `fgbi trace` reports: changed blocks per page (against a
/// ``BlockTable``), how often each page is written, what content is shared, the heatmap and the block-size
/// cost model.
///
/// Change detection runs at 64-byte granularity: one 64-byte ``BlockTable`` for the region, rehashed for the
/// pages the tracker reports; counts at the trace's block size come from folding each page's 64-byte change
/// mask (a larger block changed when any of its 64-byte parts did), which is also what lets one run price
/// every block size (``BlockSizeSweep``). Call ``analyze(_:endMs:durationMs:faults:)`` while nothing writes
/// the region (the writers paused), so the hashes describe one moment.
public final class TraceAnalyzer: @unchecked Sendable {
    /// The region traced.
    public let memory: GuestMemory
    /// The block size dirty blocks are counted in.
    public let geometry: BlockGeometry
    /// Dirty blocks per epoch and address bucket.
    public private(set) var heatmap: TraceHeatmap
    /// Every epoch analysed so far, in order.
    public private(set) var epochs: [EpochTrace] = []

    private let table: BlockTable
    private let factor: Int
    private let zeroPageHash: UInt64
    private let zeroBlockHash: UInt64
    private let previous = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
    private var epochsWritten: [Int32]
    private var pageDirtyBlocks: [Int]
    private var sweep = BlockSizeSweep()
    private var pageHashes: [UInt64] = []
    private var blockHashes: [UInt64] = []

    /// An analyzer for `memory`, counting dirty blocks of `geometry`'s block size, with a heatmap of at most
    /// `heatmapRows` address buckets.
    ///
    /// - Throws: ``FGBIError/unsupported(feature:neededBy:hint:)`` when the page size is not 4 KiB (the 64-byte
    ///   change masks need at most 64 blocks per page); ``FGBIError/invalidArgument(_:)`` for a bad row count.
    public init(memory: GuestMemory, geometry: BlockGeometry, heatmapRows: Int = TraceHeatmap.maximumRows)
        throws(FGBIError)
    {
        guard GuestMemory.pageSize == 4096, geometry.pageSize == 4096 else {
            throw .unsupported(
                feature: "4 KiB pages", neededBy: "fgbi trace",
                hint:
                    """
                    the page size here is \(GuestMemory.pageSize) bytes; trace diagnostics count 64-byte blocks \
                    of 4 KiB pages
                    """
            )
        }
        guard heatmapRows > 0 else { throw .invalidArgument("heatmap rows must be at least 1, not \(heatmapRows)") }
        self.memory = memory
        self.geometry = geometry
        table = BlockTable(regionLength: memory.length, geometry: try BlockGeometry(blockSize: 64))
        factor = geometry.blockSize / 64
        let zeros = [UInt8](repeating: 0, count: GuestMemory.pageSize)
        zeroPageHash = zeros.withUnsafeBytes { CSupport_xxh3_64($0.baseAddress, $0.count) }
        zeroBlockHash = zeros.withUnsafeBytes { CSupport_xxh3_64($0.baseAddress, geometry.blockSize) }
        epochsWritten = [Int32](repeating: 0, count: memory.pageCount)
        pageDirtyBlocks = [Int](repeating: 0, count: memory.pageCount)
        heatmap = TraceHeatmap(
            pageCount: memory.pageCount, blockSize: geometry.blockSize,
            blocksPerPage: geometry.blocksPerPage, rows: heatmapRows)
    }

    deinit { previous.deallocate() }

    /// Hashes the whole region as it is now: the content later epochs are compared with. Call once, after
    /// the initial content is in place and before the first epoch.
    public func baseline() {
        for page in 0..<memory.pageCount {
            _ = table.rehash(page: page, in: memory.page(page), previous: previous)
        }
    }

    /// Analyses one epoch: `written` is what the tracker reported; `endMs` the time of this collection since
    /// tracking started, `durationMs` the epoch's length, `faults` the faults recorded (uffd-sync) or nil.
    @discardableResult
    public func analyze(_ written: DirtyPageSet, endMs: Double, durationMs: Double, faults: Int? = nil) -> EpochTrace {
        let blockSize = geometry.blockSize
        var histogram = [Int](repeating: 0, count: geometry.blocksPerPage + 1)
        var dirtyBlocks = 0
        var changedPages = 0
        var newPages = 0
        var zeroPages = 0
        var zeroBlocks = 0
        pageHashes.removeAll(keepingCapacity: true)
        blockHashes.removeAll(keepingCapacity: true)
        heatmap.beginEpoch()
        for page in written.pages where page < memory.pageCount {
            let bytes = memory.page(page)
            let mask64 = table.rehash(page: page, in: bytes, previous: previous)
            var mask = BlockSizeSweep.fold(mask64, factor: factor)
            let changed = mask.nonzeroBitCount
            histogram[changed] += 1
            if changed > 0 {
                changedPages += 1
                dirtyBlocks += changed
                sweep.add(mask64: mask64)
                heatmap.add(page: page, blocks: changed)
            }
            if epochsWritten[page] == 0 { newPages += 1 }
            epochsWritten[page] += 1
            pageDirtyBlocks[page] += changed
            let pageHash = CSupport_xxh3_64(bytes, GuestMemory.pageSize)
            if pageHash == zeroPageHash { zeroPages += 1 }
            pageHashes.append(pageHash)
            while mask != 0 {
                let block = mask.trailingZeroBitCount
                mask &= mask - 1
                let blockHash = CSupport_xxh3_64(bytes + block * blockSize, blockSize)
                if blockHash == zeroBlockHash { zeroBlocks += 1 }
                blockHashes.append(blockHash)
            }
        }
        let trace = EpochTrace(
            epoch: epochs.count + 1, endMs: endMs, durationMs: durationMs, writtenPages: written.pageCount,
            dirtyBlocks: dirtyBlocks, changedPages: changedPages, newPages: newPages, zeroPages: zeroPages,
            zeroBlocks: zeroBlocks,
            dirtyBlockHistogram: histogram, pageSharing: SharingGroups(grouping: &pageHashes),
            blockSharing: SharingGroups(grouping: &blockHashes), faults: faults)
        epochs.append(trace)
        return trace
    }

    /// One record per page written at least once, in page order.
    public func pageActivity() -> [PageActivity] {
        epochsWritten.indices.compactMap { page in
            epochsWritten[page] == 0
                ? nil
                : PageActivity(page: page, epochsWritten: Int(epochsWritten[page]), dirtyBlocks: pageDirtyBlocks[page])
        }
    }

    /// The headline facts so far; `faults` is the uffd-sync tracker's tally, if it ran.
    public func summary(faults: FaultTally? = nil) -> TraceSummary {
        let count = epochs.count
        let elapsed = (epochs.last?.endMs ?? 0) / 1000
        let written = epochs.reduce(0) { $0 + $1.writtenPages }
        let dirty = epochs.reduce(0) { $0 + $1.dirtyBlocks }
        let unchanged = epochs.reduce(0) { $0 + $1.dirtyBlockHistogram[0] }
        var histogram = [Int](repeating: 0, count: count + 1)
        for times in epochsWritten { histogram[min(Int(times), count)] += 1 }
        let workingSet = memory.pageCount - histogram[0]
        let counts = epochsWritten.filter { $0 > 0 }.map { Int($0) }.sorted(by: >)
        let busiest = counts.prefix(max(counts.count / 10, 1)).reduce(0, +)
        let mean = written == 0 ? 0 : Double(dirty) / Double(written)
        let costs = sweep.costs(regionLength: memory.length)
        func perSecond(_ value: Int) -> Double { elapsed > 0 ? Double(value) / elapsed : 0 }
        func perEpoch(_ value: Int) -> Double { count > 0 ? Double(value) / Double(count) : 0 }
        return TraceSummary(
            epochs: count, elapsedSeconds: elapsed, regionBytes: memory.length, pageSize: GuestMemory.pageSize,
            blockSize: geometry.blockSize, blocksPerPage: geometry.blocksPerPage,
            workingSetPages: workingSet, workingSetBytes: workingSet * GuestMemory.pageSize,
            writtenPages: written, writtenPagesPerSecond: perSecond(written),
            dirtyBlocks: dirty, dirtyBlocksPerSecond: perSecond(dirty), unchangedWrittenPages: unchanged,
            meanDirtyBlocksPerWrittenPage: mean, changedFraction: mean / Double(geometry.blocksPerPage),
            epochsWrittenHistogram: histogram, medianEpochsWritten: counts.isEmpty ? 0 : counts[counts.count / 2],
            maxEpochsWritten: counts.first ?? 0,
            busiestTenthShare: written == 0 ? 0 : Double(busiest) / Double(written),
            meanDuplicatePagesPerEpoch: perEpoch(epochs.reduce(0) { $0 + $1.duplicatePages }),
            meanDuplicateBlocksPerEpoch: perEpoch(epochs.reduce(0) { $0 + $1.duplicateBlocks }),
            meanZeroBlocksPerEpoch: perEpoch(epochs.reduce(0) { $0 + $1.zeroBlocks }),
            faults: faults, blockSizes: costs, cheapestBlockSize: BlockSizeSweep.cheapest(costs)?.blockSize)
    }
}
