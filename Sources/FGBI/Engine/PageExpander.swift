import CSupport

/// Turns a capture of whole pages (``CaptureStrategy/copyPages``) into the changed blocks the `fgbi` encoder
/// takes, rehashing the staged copies against the block tables: the guest runs meanwhile, so this costs no
/// pause. It also records in the page capture which pages proved unchanged
/// (``EpochCapture/unchangedPages``), and leaves out, in a resynchronisation's first pass, the pages the
/// backup already holds.
///
/// With a crew (the parallel encoder's), a large capture is expanded in two parallel passes around a short
/// serial one: each page rehashed (its changed-block mask and previous hashes kept), then each page's
/// changed blocks counted and given their place, then copied there. One thread otherwise. Either way the
/// blocks come out in the same order. Scratch space grows with the largest capture, outside any pause.
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
        expanded.reset(epoch: pages.epoch, itemSize: geometry.blockSize)
        if let crew, crew.participants > 1, view.count >= parallelMinimumPages {
            expandInParallel(pages, view, crew: crew, recordUnchanged: recordUnchanged)
        } else {
            expandOnThisThread(pages, view, recordUnchanged: recordUnchanged)
        }
        expanded.pagesWritten = pages.pagesWritten
        expanded.blocksRehashed = view.count * geometry.blocksPerPage
        expanded.captureNanoseconds = pages.captureNanoseconds
        expanded.pauseNanoseconds = pages.pauseNanoseconds
        expanded.stopNanoseconds = pages.stopNanoseconds
        return expanded
    }

    private func expandOnThisThread(_ pages: EpochCapture, _ view: EpochCapture.View, recordUnchanged: Bool) {
        let blocksPerPage = geometry.blocksPerPage
        let blockSize = geometry.blockSize
        reserve(pages: 1)
        let previous = previousHashes
        for item in 0..<view.count {
            let location = view.locations[item]
            let table = tables[location.region]
            let staged = UnsafeRawPointer(view.item(item))
            var changed = table.rehash(page: location.block, in: staged, previous: previous)
            if changed == 0 && recordUnchanged { pages.unchangedPages.append(location) }
            if pages.comparesWithBaseline && baseline.holds(region: location.region, page: location.block, bytes: staged) {
                expanded.pagesHeld += 1
                continue
            }
            while changed != 0 {
                let offset = changed.trailingZeroBitCount
                changed &= changed - 1
                let block = location.block * blocksPerPage + offset
                expanded.append(BlockLocation(region: location.region, block: block), from: staged + offset * blockSize,
                                oldHash: previous[offset], newHash: table[block])
            }
        }
    }

    private func expandInParallel(_ pages: EpochCapture, _ view: EpochCapture.View, crew: CaptureCrew, recordUnchanged: Bool) {
        let blocksPerPage = geometry.blocksPerPage
        let blockSize = geometry.blockSize
        let count = view.count
        reserve(pages: count)
        let chunks = min(crew.participants * Self.chunksPerThread, count)
        let compareWithBaseline = pages.comparesWithBaseline
        let (masks, held, starts, previousHashes) = (self.masks, self.held, self.starts, self.previousHashes)
        // 1. Rehash every page, keeping what changed and the previous hashes.
        crew.perform(chunks: chunks) { chunk, _ in
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
        crew.perform(chunks: chunks) { chunk, _ in
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
