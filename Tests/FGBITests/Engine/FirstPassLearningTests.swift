import Testing

@testable import FGBI

/// A first pass teaches the encoders' stores only the captures whose content they would keep past the pass
/// (``FirstPassLearning``): what they learn decides which later small writes go as differences, never what the
/// backup rebuilds.
@Suite("First-pass learning")
struct FirstPassLearningTests {
    /// The rule: learnt when the pages still to come would fill less than the store, at the copies per page seen.
    @Test func learnsWhatOutlivesThePass() {
        var learning = FirstPassLearning(copiesPerPage: 64)
        #expect(learning.learns(pagesAfter: nil, capacity: 1), "outside a first pass, always")
        #expect(learning.copiesPerPageSoFar == 64, "a whole page's worth before any page")
        #expect(learning.learns(pagesAfter: 15, capacity: 1024))
        #expect(!learning.learns(pagesAfter: 16, capacity: 1024))
        #expect(learning.learns(pagesAfter: 0, capacity: 1))
        // Half the blocks of the pages so far were zeros: twice as many pages fit.
        learning.record(pages: 100, copies: 3200)
        #expect(learning.copiesPerPageSoFar == 32)
        #expect(learning.learns(pagesAfter: 31, capacity: 1024))
        #expect(!learning.learns(pagesAfter: 32, capacity: 1024))
        // Pages of zeros only: at least one copy per page is assumed; never more than a page's worth.
        learning.record(pages: 10_000, copies: 0)
        #expect(learning.copiesPerPageSoFar == 1)
        learning.record(pages: 1, copies: 1 << 40)
        #expect(learning.copiesPerPageSoFar == 1)
        var cache = FirstPassLearning(copiesPerPage: 1)
        cache.record(pages: 64, copies: 64)
        #expect(cache.learns(pagesAfter: 63, capacity: 64) && !cache.learns(pagesAfter: 64, capacity: 64))
    }

    /// One region of 128 pages of random bytes, replicated through a first pass of eight pre-copy steps of 16
    /// pages and then epochs that change one byte in each of the last and then the first 16 pages. With a store of
    /// 16 pages, only the last step is learnt from (the only one looked up in the index), so only the last
    /// pages' changes find their previous content; with a store larger than the region, every page's do.
    /// Learning the whole pass (``EngineConfiguration/learnsWholeFirstPass``), every step is looked up. The
    /// backup equals the primary after every step. For fgbi on one thread and split over two, with 64- and
    /// 128-byte blocks, and for xbzrle (whose page cache, after the pass, has evicted nothing unless it learnt the
    /// whole pass: its differences alone would not tell, since either way it ends the pass with the last pages).
    @Test("a first pass learns only what its store keeps", arguments: ["fgbi", "fgbi-split", "fgbi-128", "xbzrle"])
    func firstPassLearnsOnlyWhatTheStoreKeeps(variant: String) throws {
        let pages = 128
        let mode: ReplicationMode = variant == "xbzrle" ? .xbzrle : .fgbi
        for (budgetPages, whole) in [(16, false), (16, true), (2 * pages, false)] {
            var configuration = EngineConfiguration(mode: mode, blockSize: variant == "fgbi-128" ? 128 : 64)
            if variant == "fgbi-split" {
                configuration.encodeThreads = 2
                configuration.parallelEncodeMinimumBlocks = 0
                configuration.choosesEncodeThreadsByTime = false
            }
            configuration.learnsWholeFirstPass = whole
            configuration.captureStrategy = .copyPages
            configuration.setCacheBudget(bytes: budgetPages * GuestMemory.pageSize)
            let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: pages)
            var random = SeededRandom(seed: 29)
            let words = harness.primary[0].base.assumingMemoryBound(to: UInt64.self)
            for word in 0..<(pages * GuestMemory.pageSize / 8) { words[word] = random.next() | 1 }
            var consulted: [Int] = []
            for step in 0..<8 {
                try harness.engine.capturePrecopy(
                    [PrimaryEngine.PageSpan(region: 0, start: step * 16, count: 16)], firstPass: true,
                    into: harness.capture)
                #expect(harness.capture.firstPassPagesAfter == (whole ? nil : pages - 16 * (step + 1)))
                let (delta, statistics) = try harness.engine.encode(harness.capture)
                try harness.replica.apply(delta)
                consulted.append(statistics.blocksConsulted)
            }
            harness.engine.completeFirstPass()
            try harness.step([DirtyPageSet()])
            #expect(harness.identical, "after the first pass: first difference at \(harness.firstDifference)")
            if mode == .fgbi {
                let everyStep = budgetPages > pages || whole
                let learnt = consulted.map { $0 > 0 }
                #expect(learnt == Array(repeating: everyStep, count: 7) + [true], "blocks looked up: \(consulted)")
            } else {
                // The page cache stored the last step's 16 pages only (none evicted), or every page of the pass
                // (112 evicted from a cache of 16; none from one larger than the region).
                let evicted = try #require(harness.engine.pageEncoder).cacheEvictions
                #expect(evicted == (whole && budgetPages < pages ? pages - budgetPages : 0), "\(evicted) evicted")
            }
            for (firstPage, expectDifferences) in [(pages - 16, true), (0, budgetPages > pages)] {
                let bytes = harness.primary[0].base.assumingMemoryBound(to: UInt8.self)
                for page in firstPage..<(firstPage + 16) { bytes[page * GuestMemory.pageSize + 4000] ^= 0xFF }
                let (_, statistics) = try harness.step([DirtyPageSet(pages: firstPage..<(firstPage + 16))])
                #expect(harness.identical, "pages from \(firstPage): first difference at \(harness.firstDifference)")
                #expect(
                    (statistics.diffBlocks == 16) == expectDifferences,
                    "budget \(budgetPages) pages, pages from \(firstPage): \(statistics.diffBlocks) differences")
            }
        }
    }
}
