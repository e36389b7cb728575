import Testing

@testable import FGBI

/// Admission by measured use (``IndexAdmission``): the index is sampled while its lookups do not pay, fully used
/// when they do, and a short burst of fresh content does not cost later epochs their difference bases.
@Suite("Index admission")
struct IndexAdmissionTests {
    /// Admission by measured use: after `IndexAdmission.patience` large epochs of fresh content in a row (no
    /// copy found, no difference sent) the encoder consults the index for a content-chosen eighth of the
    /// blocks, after a further one a sixty-fourth; copies of content it then learnt are still found, every
    /// epoch replicates exactly, and once the sample finds copies again every block is consulted.
    @Test("the index is sampled while it does not pay and fully used when it does", arguments: [1, 2])
    func theIndexIsSampledWhileItDoesNotPayAndFullyUsedWhenItDoes(encodeThreads: Int) throws {
        let pages = 256
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.encodeThreads = encodeThreads
        configuration.parallelEncodeMinimumBlocks = 0
        configuration.choosesEncodeThreadsByTime = false
        let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: pages)
        var random = SeededRandom(seed: 21)
        func fresh(_ range: Range<Int>) {
            for page in range {
                for word in 0..<(GuestMemory.pageSize / 8) {
                    harness.primary[0].page(page).storeBytes(
                        of: random.next() | 1, toByteOffset: word * 8, as: UInt64.self)
                }
            }
        }
        func copy(_ sources: Range<Int>, to first: Int) {
            for (offset, page) in sources.enumerated() {
                harness.primary[0].page(first + offset).copyMemory(
                    from: harness.primary[0].page(page), byteCount: GuestMemory.pageSize)
            }
        }
        let blocksPerPage = GuestMemory.pageSize / 64
        fresh(0..<pages)
        // Fresh content everywhere: every block consulted, nothing found; after enough such epochs in a row
        // the next epoch samples.
        var (_, statistics) = try harness.step([])
        #expect(statistics.blocksConsulted == pages * blocksPerPage && statistics.sharedHits == 0)
        #expect(harness.identical)
        for _ in 1..<IndexAdmission.patience {
            fresh(0..<pages)
            (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<pages)])
            #expect(statistics.blocksConsulted == pages * blocksPerPage && statistics.sharedHits == 0)
            #expect(harness.identical)
        }
        fresh(0..<pages)
        (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<pages)])
        let sampled = statistics.blocksConsulted
        #expect(
            sampled > 0 && sampled < pages * blocksPerPage / 4,
            "\(sampled) of \(pages * blocksPerPage) blocks consulted while sampling")
        #expect(harness.identical)
        // Still nothing found: the sample thins.
        fresh(0..<pages)
        (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<pages)])
        let thinned = statistics.blocksConsulted
        #expect(thinned > 0 && thinned < sampled / 3, "\(thinned) blocks consulted after \(sampled)")
        #expect(harness.identical)
        // Copies of content learnt while sampling: the sampled share of them is found (content chooses the
        // sample, so a copy of a sampled block is sampled), which switches sampling off.
        copy(128..<pages, to: 0)
        (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<128)])
        #expect(
            statistics.sharedHits > 0 && statistics.sharedHits == statistics.blocksConsulted,
            "\(statistics.sharedHits) copies found of \(statistics.blocksConsulted) consulted")
        #expect(harness.identical)
        // Every block consulted again: a copy within the epoch is found whole.
        fresh(0..<32)
        copy(0..<32, to: 32)
        (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<64)])
        #expect(statistics.blocksConsulted == 64 * blocksPerPage)
        #expect(statistics.sharedHits == 32 * blocksPerPage, "\(statistics.sharedHits)")
        #expect(harness.identical)
    }

    /// A burst of fresh content shorter than the patience (a program loading values it will update in place):
    /// every block is still looked up and stored, so the small updates that follow go as differences against
    /// the stored copies, not as literals. With one useless epoch enough to start the sample, a redis trace
    /// sent 17% more bytes (Docs/BENCHMARKS.md).
    @Test("a burst of fresh content keeps the copies its later updates differ from")
    func aBurstOfFreshContentKeepsItsDifferenceBases() throws {
        let pages = 256
        let harness = try EngineHarness(
            configuration: EngineConfiguration(mode: .fgbi), regions: 1, pagesPerRegion: pages)
        var random = SeededRandom(seed: 33)
        let blocksPerPage = GuestMemory.pageSize / 64
        func fresh() {
            for page in 0..<pages {
                for word in 0..<(GuestMemory.pageSize / 8) {
                    harness.primary[0].page(page).storeBytes(
                        of: random.next() | 1, toByteOffset: word * 8, as: UInt64.self)
                }
            }
        }
        fresh()
        try harness.step([])
        // The first epoch and the burst: one useless epoch fewer than the patience.
        for _ in 0..<max(IndexAdmission.patience - 2, 0) {
            fresh()
            let (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<pages)])
            #expect(statistics.blocksConsulted == pages * blocksPerPage, "the burst's blocks were sampled")
        }
        // One word of every block updated in place, twice: each block differs from its stored copy in 8 bytes.
        // The first update epoch offers the previous content to a sample only (``DifferenceAdmission`` judged
        // the burst, whose differences saved nothing), the rest go as literals and are stored; the second
        // finds every block's previous content stored and sends differences.
        var statistics = EpochStatistics()
        for _ in 0..<2 {
            for page in 0..<pages {
                for block in 0..<blocksPerPage {
                    harness.primary[0].page(page).storeBytes(
                        of: random.next(), toByteOffset: block * 64 + 8 * Int(random.next() % 8), as: UInt64.self)
                }
            }
            (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<pages)])
            #expect(harness.identical)
        }
        #expect(
            statistics.diffBlocks == pages * blocksPerPage,
            "\(statistics.diffBlocks) differences, \(statistics.literalBlocks) literals of \(pages * blocksPerPage)")
        #expect(harness.identical)
    }
}
