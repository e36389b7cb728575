import CSupport
import Testing

@testable import FGBI

/// The `fgbi` encoder reading staged pages a page at a time (``StagedPageReader``: each page rehashed as it is
/// encoded, its changed blocks read where they were staged) must write exactly what it writes for the changed
/// blocks of the same capture expanded first (as the rehash strategy captures them), epoch after epoch: the same
/// bytes, statistics, block tables, unchanged pages and pages the backup already holds. So must the parallel
/// encoder (``ParallelBlockDeltaEncoder``) on 2, 3 and 4 threads, from staged pages and from changed blocks.
@Suite("Staged page encoding")
struct StagedPageEncodingTests {
    enum Way: CustomStringConvertible {
        /// Staged pages read by the one-thread encoder.
        case staged
        /// The pages expanded into their changed blocks first (by this test), then encoded.
        case expanded
        /// The parallel encoder on this many threads, from staged pages or from expanded blocks.
        case parallel(threads: Int, staged: Bool)

        var description: String {
            switch self {
            case .staged: return "staged"
            case .expanded: return "expanded"
            case .parallel(let threads, let staged): return "\(threads) threads, \(staged ? "staged" : "expanded")"
            }
        }
    }

    /// One way through: its block tables, index and encoder.
    private final class Path {
        let way: Way
        let geometry: BlockGeometry
        let tables: [BlockTable]
        let baseline: BaselineHashes
        let encoder: BlockDeltaEncoder<ContentIndex>
        let reader: StagedPageReader
        let parallel: ParallelBlockDeltaEncoder?

        init(_ way: Way, geometry: BlockGeometry, regions: [GuestMemory], baseline: BaselineHashes) throws {
            self.way = way
            self.geometry = geometry
            self.baseline = baseline
            tables = regions.map {
                BlockTable(regionLength: $0.length, geometry: geometry, unknown: baseline.pageHashes != nil)
            }
            let index = ContentIndex(
                blockSize: geometry.blockSize, budgetBytes: 96 << 10, keying: .fullHash,
                regionBlocks: regions.map { $0.length / geometry.blockSize })
            encoder = BlockDeltaEncoder(geometry: geometry, index: index)
            reader = StagedPageReader(tables: tables, geometry: geometry, baseline: baseline)
            if case .parallel(let threads, _) = way {
                let crew = try CaptureCrew(helpers: threads - 1, cpus: [], role: "test-encode")
                parallel = ParallelBlockDeltaEncoder(
                    geometry: geometry, crew: crew, index: index, tables: tables, baseline: baseline,
                    parallelMinimumBlocks: 0, choosesByTime: false)
            } else {
                parallel = nil
            }
        }

        /// Encodes `pages`; returns the body, statistics (threads, split epochs and index entries left out) and the
        /// pages held.
        func encode(_ pages: EpochCapture, sparse: Bool) -> (body: [UInt8], stats: EpochStatistics, held: Int) {
            var body = ByteWriter()
            var stats = EpochStatistics()
            var held: Int
            switch way {
            case .staged:
                held =
                    encoder.encode(
                        pages, reading: reader, recordUnchanged: true, sparse: sparse, into: &body, stats: &stats
                    ).pagesHeld
            case .expanded:
                let blocks = expand(pages)
                _ = encoder.encode(blocks, sparse: sparse, into: &body, stats: &stats)
                held = blocks.pagesHeld
            case .parallel(let threads, let staged):
                let input = staged ? pages : expand(pages)
                held =
                    parallel!.encode(
                        input, staged: staged, recordUnchanged: true, sparse: sparse, into: &body, stats: &stats
                    ).pagesHeld
                if input.count > 1 { #expect(stats.encodeThreads == threads) }
            }
            stats.encodeThreads = 0
            stats.epochsEncodedSplit = 0
            stats.indexEntries = 0
            return (body.array, stats, held)
        }

        /// The changed blocks of `pages` (staged pages), as the rehash strategy captures them; the unchanged pages
        /// listed in `pages`.
        private func expand(_ pages: EpochCapture) -> EpochCapture {
            let blocks = EpochCapture()
            blocks.reset(epoch: pages.epoch, itemSize: geometry.blockSize)
            let previous = UnsafeMutablePointer<UInt64>.allocate(capacity: geometry.blocksPerPage)
            defer { previous.deallocate() }
            for item in 0..<pages.count {
                let location = pages.locations[item]
                let staged = pages.item(item)
                let table = tables[location.region]
                let changed = table.rehash(page: location.block, in: staged, previous: previous)
                if changed == 0 { pages.unchangedPages.append(location) }
                if pages.comparesWithBaseline
                    && baseline.holds(region: location.region, page: location.block, bytes: staged)
                {
                    blocks.pagesHeld += 1
                    continue
                }
                for offset in 0..<geometry.blocksPerPage where changed >> UInt64(offset) & 1 == 1 {
                    let block = location.block * geometry.blocksPerPage + offset
                    blocks.append(
                        BlockLocation(region: location.region, block: block),
                        from: staged + offset * geometry.blockSize,
                        oldHash: previous[offset], newHash: table[block])
                }
            }
            return blocks
        }
    }

    /// What an epoch's encoding produced, without which way the encoder went: only the one-thread encoder takes
    /// fresh pages in bulk (``BlockDeltaEncoder/encodeFresh``), writing what the block path writes.
    private static func work(_ statistics: EpochStatistics) -> EpochStatistics {
        var work = statistics
        work.pagesEncodedFresh = 0
        return work
    }

    /// A capture of `pages` (region, page) of `regions`, staged as the copy strategy stages them.

    private static func capture(epoch: UInt64, _ pages: [(Int, Int)], of regions: [GuestMemory], baseline: Bool)
        -> EpochCapture
    {
        let capture = EpochCapture()
        capture.reset(epoch: epoch, itemSize: GuestMemory.pageSize)
        capture.holdsPages = true
        capture.comparesWithBaseline = baseline
        for (region, page) in pages {
            capture.append(BlockLocation(region: region, block: page), from: regions[region].page(page))
        }
        return capture
    }

    @Test(
        "staged pages encode as their expanded blocks do, on one thread and on several",
        arguments: [64, 128, 4096], [false, true])
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
        let baseline = BaselineHashes(summary: ReplicaSummary(pageHashes: summary), pageSize: GuestMemory.pageSize)
        let ways: [Way] = [
            .staged, .expanded, .parallel(threads: 2, staged: true), .parallel(threads: 3, staged: false),
            .parallel(threads: 4, staged: true),
        ]
        let paths = try ways.map { try Path($0, geometry: geometry, regions: regions, baseline: baseline) }
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
                    case 0: break // written, yet unchanged
                    case 1:
                        bytes.copyMemory(
                            from: regions[Int(random.next() % 2)].page(Int(random.next() % UInt64(pagesPerRegion))),
                            byteCount: GuestMemory.pageSize)
                    case 2: bytes.initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
                    case 3: // a few words
                        for _ in 0...(random.next() % 5) {
                            bytes.storeBytes(
                                of: random.next(), toByteOffset: Int(random.next() % 512) * 8, as: UInt64.self)
                        }
                    case 4: // some blocks fresh
                        for block in 0..<blocks where random.next() % 3 == 0 {
                            for word in 0..<8 {
                                bytes.storeBytes(
                                    of: random.next() >> 28, toByteOffset: block * 64 + word * 8, as: UInt64.self)
                            }
                        }
                    default: // the whole page fresh
                        for word in 0..<(GuestMemory.pageSize / 8) {
                            bytes.storeBytes(of: random.next() >> 28, toByteOffset: word * 8, as: UInt64.self)
                        }
                    }
                }
            }
            let results = paths.map { path in
                let pages = Self.capture(epoch: UInt64(epoch), written, of: regions, baseline: epoch == 0)
                let result = path.encode(pages, sparse: sparse)
                return (result, pages.unchangedPages)
            }
            let a = results[0].0
            for (path, (b, unchanged)) in zip(paths, results).dropFirst() {
                let sameBytes = a.body == b.body
                #expect(sameBytes, "epoch \(epoch), \(path.way): \(a.body.count) bytes against \(b.body.count)")
                #expect(
                    Self.work(a.stats) == Self.work(b.stats),
                    "epoch \(epoch), \(path.way): \(a.stats) against \(b.stats)")
                #expect(a.held == b.held, "epoch \(epoch), \(path.way): \(a.held) pages held against \(b.held)")
                #expect(results[0].1 == unchanged, "epoch \(epoch), \(path.way): unchanged pages differ")
                for region in regions.indices {
                    let blocks = regions[region].length / blockSize
                    #expect(
                        (0..<blocks).allSatisfy { paths[0].tables[region][$0] == path.tables[region][$0] },
                        "epoch \(epoch), \(path.way): tables differ")
                }
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

    /// Under fresh content the index samples its lookups (``IndexAdmission``): then the parallel encoder's first
    /// step encodes most blocks itself and sets aside only the sampled ones and those whose previous content a
    /// stored copy holds. Its bytes must still be the one thread's.
    @Test("under sampled lookups, the parallel encoder writes the one thread's bytes", arguments: [false, true])
    func sampledLookupsEncodeAsOneThread(sparse: Bool) throws {
        let geometry = try BlockGeometry()
        let pages = 1024
        let regions = [try GuestMemory.anonymous(length: pages * GuestMemory.pageSize)]
        let baseline = BaselineHashes(summary: nil, pageSize: GuestMemory.pageSize)
        let ways: [Way] = [.staged, .parallel(threads: 2, staged: true), .parallel(threads: 3, staged: false)]
        let paths = try ways.map { try Path($0, geometry: geometry, regions: regions, baseline: baseline) }
        var random = SeededRandom(seed: 9090)
        var sampledEpochs = 0
        for epoch in 0..<14 {
            let written = (0..<pages).filter { _ in epoch == 0 || random.next() % 2 == 0 }
            for page in written where epoch > 0 {
                let words = regions[0].page(page).assumingMemoryBound(to: UInt64.self)
                switch random.next() % 8 {
                case 0: words[Int(random.next() % 512)] = random.next() // one word: a difference
                case 1: words.update(repeating: 0, count: 512)
                default: for word in 0..<512 { words[word] = random.next() >> (random.next() % 2 == 0 ? 0 : 40) }
                }
            }
            let results = paths.map { path in
                path.encode(
                    Self.capture(epoch: UInt64(epoch), written.map { (0, $0) }, of: regions, baseline: false),
                    sparse: sparse)
            }
            if results[0].stats.blocksConsulted < results[0].stats.blocksDirty - results[0].stats.zeroBlocks {
                sampledEpochs += 1
            }
            for (path, result) in zip(paths, results).dropFirst() {
                let sameBytes = result.body == results[0].body
                #expect(
                    sameBytes,
                    "epoch \(epoch), \(path.way): \(result.body.count) bytes against \(results[0].body.count)")
                #expect(
                    Self.work(result.stats) == Self.work(results[0].stats),
                    "epoch \(epoch), \(path.way): \(result.stats) against \(results[0].stats)")
            }
        }
        #expect(sampledEpochs >= 3, "only \(sampledEpochs) epochs sampled their lookups")
    }
}
