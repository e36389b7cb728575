import CSupport

/// Turns a capture of whole pages (``CaptureStrategy/copyPages``) into the changed blocks the `fgbi` encoder
/// takes, rehashing the staged copies against the block tables: the guest runs meanwhile, so this costs no
/// pause. It also records in the page capture which pages proved unchanged
/// (``EpochCapture/unchangedPages``), and leaves out, in a resynchronisation's first pass, the pages the
/// backup already holds.
///
/// It takes three passes: each page rehashed (its changed-block mask and previous hashes kept), then each
/// page's changed blocks counted and given their place, then copied there. With a crew (the parallel
/// encoder's), the first and last passes of a large capture run on it; otherwise all run on this thread.
/// Either way the blocks come out in the same order. Scratch space grows with the largest capture, outside
/// any pause.
final class PageExpander {
    /// Captures with fewer pages are expanded on one thread.
    private let parallelMinimumPages: Int
    /// Chunks of a parallel pass per crew thread.
    static let chunksPerThread = 4

    private let tables: [BlockTable]
    private let geometry: BlockGeometry
    private let baseline: BaselineHashes
    private let crew: CaptureCrew?
    /// The changed blocks of the last expansion.
    let expanded = EpochCapture()
    /// Per page of a parallel expansion: its changed-block mask, whether the backup holds it, where its
    /// blocks start in ``expanded``, and its blocks' previous hashes.
    private var masks: UnsafeMutablePointer<UInt64>
    private var held: UnsafeMutablePointer<Bool>
    private var starts: UnsafeMutablePointer<Int>
    private var previousHashes: UnsafeMutablePointer<UInt64>
    private var pageCapacity = 0

    init(tables: [BlockTable], geometry: BlockGeometry, baseline: BaselineHashes, crew: CaptureCrew?, parallelMinimumPages: Int) {
        self.parallelMinimumPages = parallelMinimumPages
        self.tables = tables
        self.geometry = geometry
        self.baseline = baseline
        self.crew = crew
        masks = .allocate(capacity: 1)
        held = .allocate(capacity: 1)
        starts = .allocate(capacity: 1)
        previousHashes = .allocate(capacity: 64)
    }

    deinit {
        masks.deallocate()
        held.deallocate()
        starts.deallocate()
        previousHashes.deallocate()
    }

    /// Expands `pages` into ``expanded`` and returns it. `recordUnchanged`: list the pages found unchanged
    /// in `pages` (only for the engine's own captures, not a shadow encode of another engine's).
    func expand(_ pages: EpochCapture, recordUnchanged: Bool) -> EpochCapture {
        let view = pages.view
        let count = view.count
        let blocksPerPage = geometry.blocksPerPage
        let blockSize = geometry.blockSize
        expanded.reset(epoch: pages.epoch, itemSize: blockSize)
        reserve(pages: count)
        let parallel = (crew?.participants ?? 1) > 1 && count >= parallelMinimumPages
        let chunks = parallel ? min(crew!.participants * Self.chunksPerThread, count) : 1
        let compareWithBaseline = pages.comparesWithBaseline
        let (tables, baseline) = (self.tables, self.baseline)
        let (masks, held, starts, previousHashes) = (self.masks, self.held, self.starts, self.previousHashes)
        // 1. Rehash every page, keeping what changed and the previous hashes.
        forEachChunk(chunks, parallel: parallel) { chunk in
            for item in (count * chunk / chunks)..<(count * (chunk + 1) / chunks) {
                let location = view.locations[item]
                let staged = UnsafeRawPointer(view.item(item))
                masks[item] = tables[location.region].rehash(page: location.block, in: staged,
                                                            previous: previousHashes + item * blocksPerPage)
                held[item] = compareWithBaseline && baseline.holds(region: location.region, page: location.block, bytes: staged)
            }
        }
        // 2. Count, in order: each page's place, the pages found unchanged and those the backup holds.
        var total = 0
        for item in 0..<count {
            if masks[item] == 0 && recordUnchanged { pages.unchangedPages.append(view.locations[item]) }
            starts[item] = total
            if held[item] {
                expanded.pagesHeld += 1
            } else {
                total += masks[item].nonzeroBitCount
            }
        }
        expanded.prepare(count: total)
        // 3. Copy each changed block to its place.
        let blocks = expanded.view
        forEachChunk(chunks, parallel: parallel) { chunk in
            for item in (count * chunk / chunks)..<(count * (chunk + 1) / chunks) where !held[item] {
                let location = view.locations[item]
                let staged = UnsafeRawPointer(view.item(item))
                let table = tables[location.region]
                var changed = masks[item]
                var index = starts[item]
                while changed != 0 {
                    let offset = changed.trailingZeroBitCount
                    changed &= changed - 1
                    let block = location.block * blocksPerPage + offset
                    blocks.locations[index] = BlockLocation(region: location.region, block: block)
                    blocks.oldHashes[index] = previousHashes[item * blocksPerPage + offset]
                    blocks.newHashes[index] = table[block]
                    blocks.item(index).copyMemory(from: staged + offset * blockSize, byteCount: blockSize)
                    index += 1
                }
            }
        }
        expanded.pagesWritten = pages.pagesWritten
        expanded.blocksRehashed = count * blocksPerPage
        expanded.captureNanoseconds = pages.captureNanoseconds
        expanded.pauseNanoseconds = pages.pauseNanoseconds
        expanded.stopNanoseconds = pages.stopNanoseconds
        return expanded
    }

    /// Calls `body` for every chunk in `0..<chunks`: on the crew, or on this thread in order.
    private func forEachChunk(_ chunks: Int, parallel: Bool, _ body: (Int) -> Void) {
        if parallel, let crew {
            crew.perform(chunks: chunks) { chunk, _ in body(chunk) }
        } else {
            for chunk in 0..<chunks { body(chunk) }
        }
    }

    /// Room for the scratch of `pages` pages.
    private func reserve(pages: Int) {
        guard pageCapacity < pages else { return }
        masks.deallocate()
        held.deallocate()
        starts.deallocate()
        previousHashes.deallocate()
        pageCapacity = pages + pages / 2
        masks = .allocate(capacity: pageCapacity)
        held = .allocate(capacity: pageCapacity)
        starts = .allocate(capacity: pageCapacity)
        previousHashes = .allocate(capacity: pageCapacity * geometry.blocksPerPage)
    }
}

/// Per region, the XXH3-64 of each page a backup holds (a ``ReplicaSummary``'s), when it holds content.
struct BaselineHashes {
    let pageHashes: [[UInt64]]?
    let pageSize: Int

    /// Whether page `page` of region `region` (its bytes at `bytes`) is what the backup already holds.
    @inline(__always)
    func holds(region: Int, page: Int, bytes: UnsafeRawPointer) -> Bool {
        guard let pageHashes else { return false }
        return CSupport_xxh3_64(bytes, pageSize) == pageHashes[region][page]
    }
}
