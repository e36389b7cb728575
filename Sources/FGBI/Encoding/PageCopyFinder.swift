import CSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Finds the pages of an epoch that are whole copies of pages the backup holds, anywhere in the regions, so
/// that each goes as one `page-copy` record (``DeltaFormat/RecordKind/pageCopy``, a few bytes) instead of its
/// blocks: a page cache filled from other pages, a heap compacted or duplicated page by page. The content
/// index cannot find these when the source lies outside its budget; the guest's own memory holds every one.
///
/// Why a copy is exact. The backup holds, for a page that no collection reported since it last received it,
/// what the page held at this epoch's collection. The finder takes as a source only such a page (one the
/// epoch's capture does not hold), compares the written page's staged bytes bitwise with the source's *live*
/// bytes while the guest runs, and then asks the tracker (a ``WrittenPageWitness``) whether the source was
/// written since that collection: if not, the live bytes it compared were the backup's. A source the witness
/// cannot vouch for, or any source once a later collection re-armed the pages, is dropped. Sources are found
/// by the key of their block hashes (``PageKeyIndex``), kept as pages are rehashed. Only after the session's
/// first pass (the backup then holds every page) and never in a pre-copy or a resynchronisation's first pass.
///
/// Pages are tried in full or by sample (``PageCopyAdmission``). Allocates only when an epoch finds more copies
/// than any before.
final class PageCopyFinder {
    /// A page of the capture to send as a copy: its item, place and key, and where the source lies; or, with
    /// no source, a page now all zeros (sent as a `page-zero` record).
    struct PageCopy {
        let item: Int
        let region: Int
        let page: Int
        let source: (region: Int, page: Int)?
        let key: UInt64
        /// The page's blocks whose hashes differ from the source's (a copy's only).
        let changed: UInt64
    }

    let keys: PageKeyIndex
    private let tables: [BlockTable]
    let regions: [GuestMemory]
    /// The regions' first bytes and their tables' first hashes: a page's bytes and hashes found with no
    /// reference counting of its region or table (the tables are held in ``tables``).
    private let regionBases: [UnsafeMutableRawPointer]
    private let tableHashes: [UnsafeMutablePointer<UInt64>]
    private let geometry: BlockGeometry
    /// Per region, what vouches that a page was not written since a collection; nil: no copies from it.
    var witnesses: [(any WrittenPageWitness)?] {
        didSet { paying.store(triesEveryPage, ordering: .relaxed) }
    }
    /// ``triesEveryPage`` as of the last epoch searched, for other threads (the capture's choice of strategy).
    private let paying = Atomic<Bool>(false)
    private var admission = PageCopyAdmission()
    private let zeroPageKey: UInt64
    /// The copies of the epoch being searched (read and written by the vouching, in another file).
    @exclusivity(unchecked) var found: [PageCopy] = []
    /// Cache lines of a lead's source requested ahead of its comparison (the hardware streams the rest).
    private static let sourceLinesAhead = 8
    /// The vouching's scratch: runs of pages written since the capture's collection, and one region's sources.
    @exclusivity(unchecked) var written: [Range<Int>] = []
    @exclusivity(unchecked) var sources: [Int] = []
    /// Per region, a bit per page, all clear between uses: ``sortSources(region:)``'s scratch.
    let sourceBits: [UnsafeMutablePointer<UInt64>]
    /// The items of the last capture searched that were zeros before and after (unchanged: the reader need
    /// not hash them to know it), in order.
    @exclusivity(unchecked) private(set) var unchangedZeros: [Int] = []

    init(geometry: BlockGeometry, regions: [GuestMemory], tables: [BlockTable]) {
        self.geometry = geometry
        self.regions = regions
        regionBases = regions.map(\.base)
        tableHashes = tables.map { $0.hashes(ofPage: 0) }
        self.tables = tables
        keys = PageKeyIndex(regionPageCounts: regions.map(\.pageCount))
        sourceBits = regions.map { region in
            let words = max((region.pageCount + 63) / 64, 1)
            let bits = UnsafeMutablePointer<UInt64>.allocate(capacity: words)
            bits.initialize(repeating: 0, count: words)
            return bits
        }
        witnesses = Array(repeating: nil, count: regions.count)
        let zero = geometry.zeroBlockHash
        zeroPageKey = PageKeyIndex.key(zero, zero, zero, zero)
    }

    deinit { for bits in sourceBits { bits.deallocate() } }

    /// The block hashes of `page` of `region`, in its table.
    @inline(__always)
    private func hashes(region: Int, page: Int) -> UnsafeMutablePointer<UInt64> {
        tableHashes[region] + page * geometry.blocksPerPage
    }

    /// The live bytes of a lead's source page.
    @inline(__always)
    private func sourcePage(_ source: (region: Int, page: Int)) -> UnsafeMutableRawPointer {
        regionBases[source.region] + source.page * geometry.pageSize
    }

    /// Whether some region has a witness: without one no page is tried.
    var isActive: Bool { witnesses.contains { $0 != nil } }

    /// Whether the next epoch tries every page (copies pay), not a sample. Only then is every rehashed page's
    /// key kept: while pages are tried by sample, only the sample's are, so in-place writes pay next to
    /// nothing; a source written meanwhile is then not found until it is keyed again.
    var triesEveryPage: Bool { isActive && !admission.sampling }

    /// Whether copies paid in the last epoch searched (``triesEveryPage`` then): safe to ask from any thread,
    /// while an epoch is being searched.
    var copiesPay: Bool { paying.load(ordering: .relaxed) }

    var metadataBytes: Int { keys.metadataBytes }

    /// How the encoder's content index learns of the pages the finder takes (copies and zeros): their blocks'
    /// previous content is retired there, since their locations change.
    struct Retirement {
        /// Starts loading what `retire` will read for `page` of `region`: called a few pages ahead of it, for
        /// every page that may be taken, so a retirement does not wait for the index's per-location state.
        let prepare: (_ region: Int, _ page: Int) -> Void
        /// Hands the encoder a page's blocks whose content changes (a mask over the page's blocks) with their
        /// previous hashes, to retire from its content index.
        typealias Retire = (_ region: Int, _ page: Int, _ changed: UInt64, _ previous: UnsafePointer<UInt64>) -> Void
        let retire: Retire
    }

    /// The pages of `capture` to send as copies (or as zeros), in the capture's order, each compared bitwise
    /// with its source and its source vouched for; each one's block hashes and key already made its new
    /// content's, after `retirement` was handed the blocks that change. None unless the capture holds whole pages
    /// of a regular epoch and some region has a witness whose collection the capture recorded.
    func find(in capture: EpochCapture, retiring retirement: Retirement) -> [PageCopy] {
        found.removeAll(keepingCapacity: true)
        unchangedZeros.removeAll(keepingCapacity: true)
        guard capture.holdsPages, !capture.isPrecopy, !capture.comparesWithBaseline,
            capture.witnessCollections.count == regions.count, isActive
        else { return [] }
        let view = capture.view
        for item in 0..<view.count {
            keys.setCaptured(region: view.locations[item].region, page: view.locations[item].block, true)
        }
        defer {
            for item in 0..<view.count {
                keys.setCaptured(region: view.locations[item].region, page: view.locations[item].block, false)
            }
        }
        // Three stages two pages apart, so each one's memory access loads while other pages are hashed: a
        // page's key (its bucket line requested), the bucket's lead (its kept key and the source's first lines
        // requested), then the lead confirmed and compared with the page, still in the core's caches.
        var keyed = Pair<Keyed>()
        var leads = Pair<Lead>()
        let lag = 2
        // Sampling, the reader keeps no keys: the sample's are kept here (once the epoch is read, a copy's again).
        let sampling = admission.sampling
        defer { keys.flush() }
        var tried = 0
        for item in 0..<view.count where admission.tries(page: view.locations[item].block) {
            tried += 1
            if leads.isFull, let copy = confirm(leads.pop()!, of: view) { found.append(copy) }
            if keyed.isFull, let lead = follow(keyed.pop()!) { leads.push(lead) }
            if item + 2 * lag < view.count {
                let later = view.locations[item + 2 * lag]
                CSupport_prefetch_span(hashes(region: later.region, page: later.block), geometry.blocksPerPage * 8)
                keys.prefetchKey(region: later.region, page: later.block)
                prefetchProbes(of: view.item(item + 2 * lag))
                retirement.prepare(later.region, later.block)
            }
            switch key(of: item, in: view) {
            case .zeros:
                // Zeros need no source: taken at once, while the page's hashes are in the caches (a page that
                // was zeros already is unchanged, and the reader need not hash it to know).
                let location = view.locations[item]
                guard zero(region: location.region, page: location.block, retiring: retirement.retire) else {
                    unchangedZeros.append(item)
                    break
                }
                keyed.push(Keyed(item: item, key: zeroPageKey))
            case .key(let key):
                keys.prefetchBucket(key: key)
                keyed.push(Keyed(item: item, key: key))
                let location = view.locations[item]
                if sampling { keys.recordSoon(region: location.region, page: location.block, key: key) }
            case .changed: break
            }
        }
        while let next = keyed.pop() {
            if leads.isFull, let copy = confirm(leads.pop()!, of: view) { found.append(copy) }
            if let lead = follow(next) { leads.push(lead) }
        }
        while let lead = leads.pop() { if let copy = confirm(lead, of: view) { found.append(copy) } }
        // Pages that stay zeros count as found: the reader passes over them unhashed, as over copies.
        admission.update(tried: tried, found: found.count + unchangedZeros.count)
        paying.store(triesEveryPage, ordering: .relaxed)
        keepVouchedFor(collections: capture.witnessCollections)
        let ahead = 4
        for (number, copy) in found.enumerated() where copy.source != nil {
            if number + ahead < found.count { prefetch(found[number + ahead], retiring: retirement) }
            apply(copy, retiring: retirement.retire)
        }
        return found
    }

    /// What the first stage finds of a page's new content.
    private enum Content {
        /// All zeros, checked byte by byte (maybe unchanged: zeros before too).
        case zeros
        /// This key, which may lead to a page holding the same.
        case key(UInt64)
        /// Not zeros, and zeros at every probe block, or every probe block as it was: left to the blocks.
        case changed
    }

    /// The key of page `item` of `view`'s new content, or what else it is.
    @inline(__always)
    private func key(of item: Int, in view: EpochCapture.View) -> Content {
        let staged = UnsafeRawPointer(view.item(item))
        // A zero page is known without hashing it; any other stops the check at its first line not all zeros.
        guard CSupport_is_zero(staged, geometry.pageSize) == 0 else { return .zeros }
        // Only the probe blocks are hashed (a page that is no copy is rehashed whole by the reader anyway).
        let size = geometry.blockSize
        let (a, b, c, d) = PageKeyIndex.probes(count: geometry.blocksPerPage)
        let (hashA, hashB, hashC, hashD) = (
            CSupport_xxh3_64(staged + a * size, size), CSupport_xxh3_64(staged + b * size, size),
            CSupport_xxh3_64(staged + c * size, size), CSupport_xxh3_64(staged + d * size, size)
        )
        // Every probe block as it was: a page written in place (a few stores), not copied, so its bucket is
        // not read. A copy whose source shares all four with the page's old content goes as its blocks.
        let location = view.locations[item]
        let old = hashes(region: location.region, page: location.block)
        if hashA == old[a], hashB == old[b], hashC == old[c], hashD == old[d] { return .changed }
        let key = PageKeyIndex.key(hashA, hashB, hashC, hashD)
        // Zeros at every probe: too common a key to lead anywhere.
        return key == zeroPageKey ? .changed : .key(key)
    }

    /// Starts loading the lines of a staged page that ``key(of:in:)`` reads: its first line (the zero check
    /// stops there on most pages) and its probe blocks. A capture larger than the caches writes its pages with
    /// streaming stores, so they are in memory, not in the caches, and each of those lines would otherwise be
    /// waited for.
    @inline(__always)
    private func prefetchProbes(of staged: UnsafeMutableRawPointer) {
        let size = geometry.blockSize
        let (a, b, c, d) = PageKeyIndex.probes(count: geometry.blocksPerPage)
        CSupport_prefetch(staged + a * size)
        CSupport_prefetch(staged + b * size)
        CSupport_prefetch(staged + c * size)
        CSupport_prefetch(staged + d * size)
    }

    /// A page keyed by the first stage.
    private struct Keyed {
        let item: Int
        let key: UInt64
    }

    /// A keyed page and the page (its number across regions) its key leads to in the second stage; -1: the
    /// page is zeros.
    private struct Lead {
        let item: Int
        let key: UInt64
        let number: Int
    }

    /// Two places of the pipeline, first in, first out.
    private struct Pair<Element> {
        private var first: Element?
        private var second: Element?
        var isFull: Bool { second != nil }

        mutating func push(_ element: Element) {
            if first == nil { first = element } else { second = element }
        }

        mutating func pop() -> Element? {
            defer { (first, second) = (second, nil) }
            return first
        }
    }

    /// The second stage: the bucket of a keyed page read for a lead (a zero page passes as it is).
    @inline(__always)
    private func follow(_ keyed: Keyed) -> Lead? {
        guard keyed.key != zeroPageKey else { return Lead(item: keyed.item, key: keyed.key, number: -1) }
        guard let number = keys.lead(key: keyed.key) else { return nil }
        keys.prefetchKey(of: number)
        let source = keys.place(of: number)
        CSupport_prefetch_span(sourcePage(source), Self.sourceLinesAhead * 64)
        // The source's block hashes, which ``confirm(_:of:)`` compares with the page's after its bytes.
        CSupport_prefetch_span(hashes(region: source.region, page: source.page), geometry.blocksPerPage * 8)
        return Lead(item: keyed.item, key: keyed.key, number: number)
    }

    /// The last stage: `lead` kept when its page is current (else the bucket's current page with the key,
    /// if any), in a region with a witness, and its bytes equal the staged page's.
    @inline(__always)
    private func confirm(_ lead: Lead, of view: EpochCapture.View) -> PageCopy? {
        let location = view.locations[lead.item]
        guard lead.number >= 0 else {
            return PageCopy(
                item: lead.item, region: location.region, page: location.block, source: nil, key: 0, changed: 0)
        }
        let source: (region: Int, page: Int)
        if keys.isCurrent(lead.number, key: lead.key) {
            source = keys.place(of: lead.number)
        } else {
            guard let current = keys.candidate(key: lead.key) else { return nil }
            source = current
        }
        guard witnesses[source.region] != nil,
            memcmp(view.item(lead.item), sourcePage(source), geometry.pageSize) == 0
        else { return nil }
        // A page captured unchanged that equals another is no copy to send: the reader lists it unchanged. The
        // blocks that change are known here, while both pages' hashes are in the caches (no copy changes a
        // source's hashes: a source is no page of the capture).
        let changed = CSupport_hash_mismatch_mask(
            hashes(region: location.region, page: location.block), hashes(region: source.region, page: source.page),
            0, geometry.blocksPerPage)
        guard changed != 0 else { return nil }
        return PageCopy(
            item: lead.item, region: location.region, page: location.block, source: source, key: lead.key,
            changed: changed)
    }

    /// Keeps the keys of the pages `capture` holds (whole, or their changed blocks), from the hashes their
    /// tables hold once it is encoded: for captures no one-thread reader keyed as it read them (while
    /// ``triesEveryPage``).
    func learnKeys(of capture: EpochCapture) {
        guard triesEveryPage, capture.holdsBlocks || capture.holdsPages else { return }
        defer { keys.flush() }
        let view = capture.view
        let shift = capture.holdsPages ? 0 : geometry.blocksPerPage.trailingZeroBitCount
        var item = 0
        while item < view.count {
            let location = view.locations[item]
            let page = location.block >> shift
            let hashes = hashes(region: location.region, page: page)
            keys.recordSoon(
                region: location.region, page: page,
                key: PageKeyIndex.key(ofHashes: hashes, count: geometry.blocksPerPage))
            item += 1
            while item < view.count, view.locations[item].region == location.region,
                view.locations[item].block >> shift == page
            {
                item += 1
            }
        }
    }

    /// Starts loading what ``apply(_:retiring:)`` reads for `copy`: the two pages' hashes, and what its
    /// retirement reads.
    @inline(__always)
    private func prefetch(_ copy: PageCopy, retiring retirement: Retirement) {
        retirement.prepare(copy.region, copy.page)
        let bytes = geometry.blocksPerPage * 8
        CSupport_prefetch_span(hashes(region: copy.region, page: copy.page), bytes)
        if let source = copy.source { CSupport_prefetch_span(hashes(region: source.region, page: source.page), bytes) }
    }

    /// Makes the block table hold `copy`'s new hashes (its source's) and the page keys its key, first handing
    /// `retire` the blocks of the page whose content changes.
    private func apply(_ copy: PageCopy, retiring retire: Retirement.Retire) {
        guard let place = copy.source else { return }
        let blocks = geometry.blocksPerPage
        let target = hashes(region: copy.region, page: copy.page)
        let source = hashes(region: place.region, page: place.page)
        retire(copy.region, copy.page, copy.changed, target)
        target.update(from: source, count: blocks)
        keys.recordSoon(region: copy.region, page: copy.page, key: copy.key)
    }

    /// Makes the block table hold a zero page's hashes at `page` of `region`, first handing `retire` the
    /// blocks that were not zeros; false, changing nothing, when every block was zeros already.
    private func zero(region: Int, page: Int, retiring retire: Retirement.Retire) -> Bool {
        let held = hashes(region: region, page: page)
        let zero = geometry.zeroBlockHash
        let changed = CSupport_hash_mismatch_mask(held, nil, zero, geometry.blocksPerPage)
        guard changed != 0 else { return false }
        retire(region, page, changed, held)
        held.update(repeating: zero, count: geometry.blocksPerPage)
        keys.forget(region: region, page: page)
        return true
    }
}
