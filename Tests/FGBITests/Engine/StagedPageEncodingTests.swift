@testable import FGBI
import CSupport
import Testing

/// The `fgbi` encoder reading staged pages a page at a time (``StagedPageReader``: each page rehashed as it is
/// encoded, its changed blocks read where they were staged) must write exactly what it writes for the changed
/// blocks ``PageExpander`` makes of the same capture, epoch after epoch: the same bytes, statistics, block
/// tables, unchanged pages and pages the backup already holds.
@Suite("Staged page encoding")
struct StagedPageEncodingTests {
    /// One way through: its block tables, index and encoder.
    private final class Path {
        let tables: [BlockTable]
        let encoder: BlockDeltaEncoder<ContentIndex>
        let reader: StagedPageReader?
        let expander: PageExpander?

        init(geometry: BlockGeometry, regions: [GuestMemory], baseline: BaselineHashes, staged: Bool) {
            tables = regions.map { BlockTable(regionLength: $0.length, geometry: geometry, unknown: baseline.pageHashes != nil) }
            let index = ContentIndex(blockSize: geometry.blockSize, budgetBytes: 96 << 10, keying: .fullHash,
                                     regionBlocks: regions.map { $0.length / geometry.blockSize })
            encoder = BlockDeltaEncoder(geometry: geometry, index: index)
            reader = staged ? StagedPageReader(tables: tables, geometry: geometry, baseline: baseline) : nil
            expander = staged ? nil : PageExpander(tables: tables, geometry: geometry, baseline: baseline, crew: nil,
                                                   parallelMinimumPages: .max)
        }

        /// Encodes `pages`; returns the body, statistics and the pages held.
        func encode(_ pages: EpochCapture, sparse: Bool) -> (body: [UInt8], stats: EpochStatistics, held: Int) {
            var body = ByteWriter()
            var stats = EpochStatistics()
            if let reader {
                reader.start(pages, recordUnchanged: true)
                defer { reader.finish() }
                _ = encoder.encode(pages, staged: reader, sparse: sparse, into: &body, stats: &stats)
                return (body.array, stats, reader.pagesHeld)
            }
            let blocks = expander!.expand(pages, recordUnchanged: true)
            _ = encoder.encode(blocks, sparse: sparse, into: &body, stats: &stats)
            return (body.array, stats, blocks.pagesHeld)
        }
    }

    /// A capture of `pages` (region, page) of `regions`, staged as the copy strategy stages them.
    private static func capture(epoch: UInt64, _ pages: [(Int, Int)], of regions: [GuestMemory], baseline: Bool) -> EpochCapture {
        let capture = EpochCapture()
        capture.reset(epoch: epoch, itemSize: GuestMemory.pageSize)
        capture.holdsPages = true
        capture.comparesWithBaseline = baseline
        for (region, page) in pages {
            capture.append(BlockLocation(region: region, block: page), from: regions[region].page(page))
        }
        return capture
    }

    @Test("staged pages encode as their expanded blocks do", arguments: [64, 128, 4096], [false, true])
    func stagedPagesEncodeAsExpandedBlocks(blockSize: Int, sparse: Bool) throws {
        let geometry = try BlockGeometry(blockSize: blockSize)
        let pagesPerRegion = 96
        let regions = try (0..<2).map { _ in try GuestMemory.anonymous(length: pagesPerRegion * GuestMemory.pageSize) }
        var random = SeededRandom(seed: 5150 &+ UInt64(blockSize))
        // The backup already holds the first 32 pages of each region as they start (a resynchronisation).
        for region in regions {
            for page in 0..<pagesPerRegion where page % 3 != 0 {
                let words = region.page(page).assumingMemoryBound(to: UInt64.self)
                for word in 0..<(GuestMemory.pageSize / 8) { words[word] = random.next() >> 28 }
            }
        }
        let summary = regions.map { region in
            (0..<pagesPerRegion).map { page in
                page < 32 ? CSupport_xxh3_64(region.page(page), GuestMemory.pageSize) : random.next()
            }
        }
        let baseline = BaselineHashes(pageHashes: summary, pageSize: GuestMemory.pageSize)
        let staged = Path(geometry: geometry, regions: regions, baseline: baseline, staged: true)
        let expanded = Path(geometry: geometry, regions: regions, baseline: baseline, staged: false)
        var kinds = Set<String>()
        let every = regions.indices.flatMap { region in (0..<pagesPerRegion).map { (region, $0) } }
        for epoch in 0..<20 {
            var written: [(Int, Int)]
            if epoch == 0 {
                written = every
            } else {
                written = every.filter { _ in random.next() % 4 == 0 }
                for (region, page) in written {
                    let bytes = regions[region].page(page)
                    let blocks = GuestMemory.pageSize / 64
                    switch random.next() % 6 {
                    case 0: break   // written, yet unchanged
                    case 1: bytes.copyMemory(from: regions[Int(random.next() % 2)].page(Int(random.next() % UInt64(pagesPerRegion))),
                                             byteCount: GuestMemory.pageSize)
                    case 2: bytes.initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
                    case 3:   // a few words
                        for _ in 0...(random.next() % 5) {
                            bytes.storeBytes(of: random.next(), toByteOffset: Int(random.next() % 512) * 8, as: UInt64.self)
                        }
                    case 4:   // some blocks fresh
                        for block in 0..<blocks where random.next() % 3 == 0 {
                            for word in 0..<8 { bytes.storeBytes(of: random.next() >> 28, toByteOffset: block * 64 + word * 8, as: UInt64.self) }
                        }
                    default:   // the whole page fresh
                        for word in 0..<(GuestMemory.pageSize / 8) { bytes.storeBytes(of: random.next() >> 28, toByteOffset: word * 8, as: UInt64.self) }
                    }
                }
            }
            let results = [staged, expanded].map { path in
                let pages = Self.capture(epoch: UInt64(epoch), written, of: regions, baseline: epoch == 0)
                let result = path.encode(pages, sparse: sparse)
                return (result, pages.unchangedPages)
            }
            let (a, b) = (results[0].0, results[1].0)
            #expect(a.body == b.body, "epoch \(epoch): \(a.body.count) bytes against \(b.body.count)")
            #expect(a.stats == b.stats, "epoch \(epoch): \(a.stats) against \(b.stats)")
            #expect(a.held == b.held, "epoch \(epoch): \(a.held) pages held against \(b.held)")
            #expect(results[0].1 == results[1].1, "epoch \(epoch): unchanged pages differ")
            for region in regions.indices {
                let blocks = regions[region].length / blockSize
                #expect((0..<blocks).allSatisfy { staged.tables[region][$0] == expanded.tables[region][$0] }, "epoch \(epoch): tables differ")
            }
            if a.held > 0 { kinds.insert("held") }
            if !results[0].1.isEmpty { kinds.insert("unchanged") }
            if a.stats.sharedHits > 0 { kinds.insert("copies") }
            if a.stats.zeroBlocks > 0 { kinds.insert("zeros") }
            if a.stats.diffBlocks > 0 { kinds.insert("differences") }
        }
        #expect(kinds.isSuperset(of: ["held", "unchanged", "copies", "zeros"]), "the epochs covered \(kinds.sorted())")
        if blockSize < 4096 { #expect(kinds.contains("differences"), "the epochs covered \(kinds.sorted())") }
    }
}
