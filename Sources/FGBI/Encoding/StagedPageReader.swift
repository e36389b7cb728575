import CSupport

/// Reads a capture of whole pages (``CaptureStrategy/copyPages``) one page at a time, as the `fgbi` encoder
/// takes them: each staged page is rehashed against its region's ``BlockTable`` and its changed blocks are
/// handed over as a capture view of their own, while the page is still in the core's caches. The same blocks,
/// in the same order and with the same hashes, as a capture by rehash (``CaptureStrategy/rehash``) holds,
/// without copying every changed block into a second capture first: a page whose every block changed is read
/// where it was staged; a page with some unchanged blocks has its changed ones gathered into a page-sized
/// scratch.
///
/// It also records which pages proved unchanged (``EpochCapture/unchangedPages``) and leaves out, in a
/// resynchronisation's first pass, the pages the backup already holds. Two page slots alternate, so the
/// encoder can look one page ahead: a view stays valid until the second ``next()`` after the one that
/// returned it. Allocates nothing per epoch.
final class StagedPageReader {
    private let tables: [BlockTable]
    private let geometry: BlockGeometry
    private let baseline: BaselineHashes
    /// The mask of a page whose every block changed.
    private let wholePage: UInt64
    private let slots: (Slot, Slot)
    private var nextSlot = 0

    /// The capture being read, and its storage.
    private var capture: EpochCapture?
    private var pages: EpochCapture.View?
    private var comparesWithBaseline = false
    private var recordsUnchanged = false
    private var nextPage = 0
    private var endPage = 0
    private var ordinal = 0
    /// Pages found unchanged, handed to the capture by ``finish()`` (readers of parts of one capture run at
    /// once: none appends to it while the others read).
    private var unchanged: [BlockLocation] = []

    /// Pages of the current capture left out because the backup already holds them.
    private(set) var pagesHeld = 0
    /// Whether the backup holds each page of the part being read, from its first (``findHeldPages(_:)``);
    /// empty when not looked for before the pages are read.
    private var heldItems: [Bool] = []
    /// Blocks handed over so far for the current capture.
    var blocksRead: Int { ordinal }
    /// Where the keys of rehashed pages' new contents go (``PageKeyIndex``), when this reader keeps them.
    var pageKeys: PageKeyIndex?
    /// Items of the current capture that ``next()`` passes over (in increasing order): pages sent as copies
    /// of other pages (``PageCopyFinder``), whose hashes are already in their tables, and pages known to be
    /// unchanged (`unchanged`: listed as such when this reader lists them).
    @exclusivity(unchecked) private var skippedItems: [(item: Int, unchanged: Bool)] = []
    @exclusivity(unchecked) private var nextSkipped = 0

    /// One page's changed blocks: their locations, old and new hashes, and (for a page not wholly changed)
    /// their bytes, gathered.
    private final class Slot {
        let locations: UnsafeMutablePointer<BlockLocation>
        let oldHashes: UnsafeMutablePointer<UInt64>
        let newHashes: UnsafeMutablePointer<UInt64>
        /// The hashes of the page's blocks before the rehash, by block offset.
        let previous: UnsafeMutablePointer<UInt64>
        let gathered: UnsafeMutableRawPointer

        init(pageSize: Int) {
            locations = .allocate(capacity: 64)
            oldHashes = .allocate(capacity: 64)
            newHashes = .allocate(capacity: 64)
            previous = .allocate(capacity: 64)
            gathered = .allocate(byteCount: pageSize, alignment: 64)
        }

        deinit {
            locations.deallocate()
            oldHashes.deallocate()
            newHashes.deallocate()
            previous.deallocate()
            gathered.deallocate()
        }
    }

    init(tables: [BlockTable], geometry: BlockGeometry, baseline: BaselineHashes) {
        self.tables = tables
        self.geometry = geometry
        self.baseline = baseline
        wholePage = geometry.blocksPerPage == 64 ? ~0 : (1 << UInt64(geometry.blocksPerPage)) - 1
        slots = (Slot(pageSize: geometry.pageSize), Slot(pageSize: geometry.pageSize))
    }

    /// Starts reading `pages` (a capture of whole pages), or only its pages `items`, whose blocks are then
    /// numbered from 0 (a part read beside others: ``ParallelBlockDeltaEncoder``). `recordUnchanged`: list
    /// the pages found unchanged in `pages` (only for the engine's own captures, not a shadow encode of another
    /// engine's).
    func start(_ pages: EpochCapture, items: Range<Int>? = nil, recordUnchanged: Bool) {
        precondition(pages.itemSize == geometry.pageSize, "a staged page reader reads captures of whole pages")
        capture = pages
        self.pages = pages.view
        comparesWithBaseline = pages.comparesWithBaseline
        recordsUnchanged = recordUnchanged
        nextPage = items?.lowerBound ?? 0
        endPage = items?.upperBound ?? pages.count
        ordinal = 0
        pagesHeld = 0
        heldItems.removeAll(keepingCapacity: true)
        unchanged.removeAll(keepingCapacity: true)
        skippedItems.removeAll(keepingCapacity: true)
        nextSkipped = 0
    }

    /// Has ``next()`` pass over `item` of the capture being read (after every item skipped before it, and before
    /// the first page is read); `unchanged`: the page holds what its table's hashes say (a page of zeros
    /// before and after), and is listed unchanged as a page read would be.
    func skip(item: Int, unchanged: Bool = false) {
        precondition(skippedItems.last.map { $0.item < item } ?? true, "items skipped out of order")
        skippedItems.append((item, unchanged))
    }

    /// In a resynchronisation's first pass, before any page is read: compares every page of the part with the
    /// backup's page hashes and hands each page the backup holds to `learn` (its location and staged bytes,
    /// which stay as they are while the capture is read), in order; ``next()`` then skips those pages without
    /// hashing them again. Nothing in any other capture.
    func findHeldPages(_ learn: (BlockLocation, UnsafeRawPointer) -> Void) {
        guard comparesWithBaseline, let pages else { return }
        heldItems.removeAll(keepingCapacity: true)
        for item in nextPage..<endPage {
            let location = pages.locations[item]
            let staged = pages.item(item)
            let held = baseline.holds(region: location.region, page: location.block, bytes: staged)
            heldItems.append(held)
            if held { learn(location, staged) }
        }
    }

    /// Hands the pages found unchanged to the capture and releases it.
    func finish() {
        capture?.unchangedPages += unchanged
        capture = nil
        pages = nil
    }

    /// The next page with blocks to send, rehashed, as a view of its changed blocks (numbered on from the
    /// blocks read before it: ``EpochCapture/View/firstOrdinal``), or nil when the capture is read.
    @inline(__always)
    func next() -> EpochCapture.View? {
        guard let pages else { return nil }
        let slot = nextSlot == 0 ? slots.0 : slots.1
        while nextPage < endPage {
            let item = nextPage
            nextPage += 1
            if nextSkipped < skippedItems.count && skippedItems[nextSkipped].item == item {
                if skippedItems[nextSkipped].unchanged && recordsUnchanged { unchanged.append(pages.locations[item]) }
                nextSkipped += 1
                continue
            }
            let location = pages.locations[item]
            let staged = pages.item(item)
            let table = tables[location.region]
            let changed = table.rehash(page: location.block, in: staged, previous: slot.previous)
            // The next page's lines are requested now, to load while this one is encoded: a capture larger than
            // the caches wrote them with streaming stores (``EpochCapture/streamsPages``), so they are in memory,
            // and the hardware does not stream across pages.
            if nextPage < endPage { CSupport_prefetch_span(pages.item(nextPage), geometry.pageSize) }
            if changed == 0 && recordsUnchanged { unchanged.append(location) }
            if changed != 0, let pageKeys {
                pageKeys.recordSoon(
                    region: location.region, page: location.block,
                    key: PageKeyIndex.key(ofHashes: table.hashes(ofPage: location.block), count: geometry.blocksPerPage)
                )
            }
            if comparesWithBaseline
                && (heldItems.isEmpty
                    ? baseline.holds(region: location.region, page: location.block, bytes: staged)
                    : heldItems[item - (endPage - heldItems.count)])
            {
                pagesHeld += 1
                continue
            }
            guard changed != 0 else { continue }
            nextSlot ^= 1
            return view(of: changed, page: location, staged: staged, table: table, in: slot)
        }
        return nil
    }

    /// The view of the blocks of `changed` of the page at `page` (staged at `staged`): for a wholly changed
    /// page, the staged bytes, the slot's previous hashes and the table's new ones where they lie; for any
    /// other, those of its changed blocks gathered into `slot`.
    @inline(__always)
    private func view(
        of changed: UInt64, page: BlockLocation, staged: UnsafeMutableRawPointer, table: BlockTable,
        in slot: Slot
    ) -> EpochCapture.View {
        let blockSize = geometry.blockSize
        let firstBlock = page.block * geometry.blocksPerPage
        let firstOrdinal = ordinal
        if changed == wholePage {
            let count = geometry.blocksPerPage
            for offset in 0..<count {
                slot.locations[offset] = BlockLocation(region: page.region, block: firstBlock + offset)
            }
            ordinal += count
            return EpochCapture.View(
                locations: slot.locations, oldHashes: slot.previous, newHashes: table.hashes(ofPage: page.block),
                arena: staged, itemSize: blockSize, count: count, firstOrdinal: firstOrdinal)
        }
        let newHashes = table.hashes(ofPage: page.block)
        var pending = changed
        var count = 0
        while pending != 0 {
            let offset = pending.trailingZeroBitCount
            pending &= pending - 1
            slot.locations[count] = BlockLocation(region: page.region, block: firstBlock + offset)
            slot.oldHashes[count] = slot.previous[offset]
            slot.newHashes[count] = newHashes[offset]
            (slot.gathered + count * blockSize).copyMemory(from: staged + offset * blockSize, byteCount: blockSize)
            count += 1
        }
        ordinal += count
        return EpochCapture.View(
            locations: slot.locations, oldHashes: slot.oldHashes, newHashes: slot.newHashes,
            arena: slot.gathered, itemSize: blockSize, count: count, firstOrdinal: firstOrdinal)
    }
}
