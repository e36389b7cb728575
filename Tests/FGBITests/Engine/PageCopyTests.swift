import CSupport
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Page copies (``PageCopyFinder``): written pages that are whole copies of pages the backup holds go as
/// `page-copy` records, zero pages as `page-zero`, and every epoch still rebuilds memory bit-identical to the
/// primary's at its capture, in every block size, across regions and on two encode threads; a source the
/// guest writes after the capture is never used, even when the index leads to it; without a witness there
/// are none; a page that stays zeros is listed unchanged.
@Suite("Page copies", .requiring(.uffdAsync, because: "page copies are vouched for by the uffd-async tracker"))
struct PageCopyTests {
    /// A primary's regions, engine and trackers beside a backup's replica, after the session's first epoch.
    final class Pair {
        let regions: [GuestMemory]
        let backup: [GuestMemory]
        let engine: PrimaryEngine
        let replica: Replica
        let trackers: [AsyncWriteProtectTracker]
        let capture = EpochCapture()
        var random = SeededRandom(seed: 71)

        init(pages: [Int], blockSize: Int = 64, encodeThreads: Int = 1, witnesses: Bool = true) throws {
            regions = try pages.map { try GuestMemory.anonymous(length: $0 * GuestMemory.pageSize) }
            backup = try pages.map { try GuestMemory.anonymous(length: $0 * GuestMemory.pageSize) }
            for memory in regions {
                let words = memory.base.assumingMemoryBound(to: UInt64.self)
                for word in 0..<(memory.length / 8) { words[word] = random.next() }
            }
            var configuration = EngineConfiguration(mode: .fgbi, blockSize: blockSize)
            configuration.captureStrategy = .copyPages
            configuration.encodeThreads = encodeThreads
            configuration.parallelEncodeMinimumBlocks = 0
            configuration.choosesEncodeThreadsByTime = false
            engine = try PrimaryEngine(regions: regions, configuration: configuration)
            replica = Replica(regions: backup, geometry: engine.geometry)
            trackers = try regions.map { try AsyncWriteProtectTracker(memory: $0) }
            if witnesses { try engine.attachWitnesses(trackers.map { $0 }) }
            for tracker in trackers { try tracker.start() }
            try engine.capture([], into: capture)
            try replica.apply(try engine.encode(capture).delta)
        }

        /// Collects and captures the epoch's writes, as a paused epoch does.
        func capturePaused() throws {
            var dirty: [DirtyPageSet] = []
            for tracker in trackers {
                var set = DirtyPageSet()
                try tracker.collect(into: &set)
                dirty.append(set)
            }
            try engine.capture(dirty, into: capture)
        }

        /// Encodes the capture and applies it; returns its statistics.
        func encodeAndApply() throws -> EpochStatistics {
            let (delta, statistics) = try engine.encode(capture)
            try replica.apply(delta)
            return statistics
        }

        func copyPage(_ source: (region: Int, page: Int), to destination: (region: Int, page: Int)) {
            regions[destination.region].page(destination.page).copyMemory(
                from: regions[source.region].page(source.page), byteCount: GuestMemory.pageSize)
        }

        func page(_ memory: GuestMemory, _ page: Int) -> [UInt8] {
            Array(UnsafeRawBufferPointer(start: memory.page(page), count: GuestMemory.pageSize))
        }

        /// The page-key index's key of a page holding `bytes`.
        func key(of bytes: [UInt8]) -> UInt64 {
            let blocks = engine.geometry.blocksPerPage
            return bytes.withUnsafeBytes { bytes in
                var hashes = [UInt64](repeating: 0, count: 2 * blocks)
                return hashes.withUnsafeMutableBufferPointer { hashes in
                    _ = CSupport_rehash_page(
                        bytes.baseAddress!, engine.geometry.blockSize, blocks, hashes.baseAddress!,
                        hashes.baseAddress! + blocks)
                    return PageKeyIndex.key(ofHashes: hashes.baseAddress!, count: blocks)
                }
            }
        }

        /// Records `page`'s key anew, so that a full bucket cannot have pushed it out of the index.
        func keyAnew(_ page: Int) throws {
            let finder = try #require(engine.blockEncoder?.pageCopyFinder)
            finder.keys.record(region: 0, page: page, key: key(of: self.page(regions[0], page)))
        }

        /// Makes the finder's index lead from the key of `bytes` (a captured page's) to `source` instead of
        /// `real`, and the guest write those bytes into `source`: what the witness must catch.
        func leadAway(_ bytes: [UInt8], from real: Int, to source: Int) throws {
            let finder = try #require(engine.blockEncoder?.pageCopyFinder)
            finder.keys.record(region: 0, page: source, key: key(of: bytes))
            finder.keys.forget(region: 0, page: real)
            regions[0].page(source).copyMemory(from: bytes, byteCount: GuestMemory.pageSize)
        }

        var identical: Bool {
            zip(regions, backup).allSatisfy { memcmp($0.base, $1.base, $0.length) == 0 }
        }
    }

    @Test(arguments: BlockGeometry.supportedBlockSizes)
    func copiedAndZeroedPagesRebuildTheSameMemory(blockSize: Int) throws {
        let pair = try Pair(pages: [96], blockSize: blockSize)
        var copied = 0
        var zeroBlocks = 0
        for epoch in 0..<6 {
            for page in stride(from: epoch % 3, to: 96, by: 7) {
                let source = (page * 31 + 5 + epoch) % 96
                if source != page { pair.copyPage((0, source), to: (0, page)) }
            }
            pair.regions[0].page(90 - epoch).initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
            pair.regions[0].page(40 + epoch).storeBytes(of: pair.random.next(), toByteOffset: 64, as: UInt64.self)
            try pair.capturePaused()
            let statistics = try pair.encodeAndApply()
            copied += statistics.pagesCopied
            zeroBlocks += statistics.zeroBlocks
            #expect(pair.identical, "epoch \(epoch)")
        }
        #expect(copied > 20, "whole copies of unwritten pages go as page copies")
        #expect(zeroBlocks >= 6 * (GuestMemory.pageSize / blockSize))
    }

    @Test func copiesCrossRegionsAndTwoEncodeThreadsRebuildTheSame() throws {
        for threads in [1, 2] {
            let pair = try Pair(pages: [48, 32], encodeThreads: threads)
            var copied = 0
            for epoch in 0..<4 {
                for page in 0..<12 { pair.copyPage((1, (page + epoch) % 32), to: (0, page * 4)) }
                for page in 0..<6 { pair.copyPage((0, 1 + page * 4), to: (1, 30 - page)) }
                try pair.capturePaused()
                copied += try pair.encodeAndApply().pagesCopied
                #expect(pair.identical, "\(threads) threads, epoch \(epoch)")
            }
            #expect(copied > 40, "\(threads) threads: \(copied) copied")
        }
    }

    /// The guest writes a page's bytes into the source after the capture: the live source then equals the
    /// copied page, while the backup holds the source's old bytes. The index is made to lead to that source
    /// (as a stale key or a hash collision would): only the witness stands between the encoder and a wrong
    /// copy.
    @Test func aSourceWrittenAfterTheCaptureIsNeverUsed() throws {
        let pair = try Pair(pages: [16])
        let (copy, source) = (3, 11)
        pair.copyPage((0, 7), to: (0, copy))
        try pair.capturePaused()
        let captured = pair.page(pair.regions[0], copy)
        let sourceBefore = pair.page(pair.regions[0], source)
        // Page 7, the real source, no longer leads anywhere: only page 11 does.
        try pair.leadAway(captured, from: 7, to: source)
        let statistics = try pair.encodeAndApply()
        #expect(statistics.pagesCopied == 0, "page \(source) was written after the capture")
        let copyRebuilt = pair.page(pair.backup[0], copy) == captured
        let sourceKept = pair.page(pair.backup[0], source) == sourceBefore
        #expect(copyRebuilt, "the copied page as captured")
        #expect(sourceKept, "the source's write is the next epoch's")
        try pair.capturePaused()
        _ = try pair.encodeAndApply()
        #expect(pair.identical)
    }

    /// A page of zeros written with zeros again is passed over without being hashed, and still listed
    /// unchanged (hot pages are demoted from that list), in order among copies and pages that changed.
    @Test func aPageThatStaysZerosIsListedUnchanged() throws {
        let pair = try Pair(pages: [32])
        let zeros = { (page: Int) in
            pair.regions[0].page(page).initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
        }
        zeros(5)
        zeros(12)
        try pair.capturePaused()
        _ = try pair.encodeAndApply()
        pair.capture.recordsUnchangedPages = true
        zeros(5)
        zeros(12)
        pair.copyPage((0, 20), to: (0, 2))
        pair.copyPage((0, 21), to: (0, 9))
        pair.regions[0].page(7).storeBytes(of: pair.random.next(), as: UInt64.self)
        try pair.capturePaused()
        let statistics = try pair.encodeAndApply()
        #expect(statistics.pagesCopied == 2)
        #expect(pair.capture.unchangedPages.map(\.block) == [5, 12], "pages 5 and 12 were zeros and stay zeros")
        #expect(pair.identical)
    }

    /// Pages cleared again and again (zeros before and after) count as found by the finder: it keeps trying
    /// every page, so copies among them are all found (were those pages not counted, the finder would try one
    /// page in 64 after such an epoch, and miss most copies).
    @Test func pagesThatStayZerosKeepEveryPageTried() throws {
        let pair = try Pair(pages: [256])
        let cleared = 0..<128
        for round in 0..<3 {
            for page in cleared {
                pair.regions[0].page(page).initializeMemory(as: UInt8.self, repeating: 0, count: GuestMemory.pageSize)
            }
            if round == 2 { for page in 0..<8 { pair.copyPage((0, 200 + page), to: (0, page * 16)) } }
            try pair.capturePaused()
            let statistics = try pair.encodeAndApply()
            if round == 2 { #expect(statistics.pagesCopied == 8, "\(statistics.pagesCopied) of 8 copies found") }
            #expect(pair.identical)
        }
    }

    /// Sources far apart are vouched for by separate scans: each group's answer holds for its own sources.
    @Test func sourcesFarApartAreEachVouchedFor() throws {
        let pair = try Pair(pages: [1024])
        try pair.keyAnew(7)
        try pair.keyAnew(600)
        pair.copyPage((0, 7), to: (0, 3))
        pair.copyPage((0, 600), to: (0, 500))
        pair.copyPage((0, 40), to: (0, 300))
        try pair.capturePaused()
        let captured = pair.page(pair.regions[0], 300)
        try pair.leadAway(captured, from: 40, to: 1000)
        let statistics = try pair.encodeAndApply()
        #expect(statistics.pagesCopied == 2, "pages 3 and 500; page 1000 was written after the capture")
        #expect(pair.page(pair.backup[0], 300) == captured)
        try pair.capturePaused()
        _ = try pair.encodeAndApply()
        #expect(pair.identical)
    }

    @Test func withoutAWitnessNoPageIsSentAsACopy() throws {
        let pair = try Pair(pages: [32], witnesses: false)
        for page in 0..<8 { pair.copyPage((0, 16 + page), to: (0, page)) }
        try pair.capturePaused()
        #expect(try pair.encodeAndApply().pagesCopied == 0)
        #expect(pair.identical)
    }

    /// A collection between the capture and the encode re-arms what the witness would look at: it answers
    /// nothing, and the pages go as their blocks.
    @Test func aLaterCollectionLeavesThePagesToTheirBlocks() throws {
        let pair = try Pair(pages: [32])
        for page in 0..<8 { pair.copyPage((0, 16 + page), to: (0, page)) }
        try pair.capturePaused()
        var ignored = DirtyPageSet()
        try pair.trackers[0].collect(into: &ignored)
        #expect(ignored.pageCount == 0)
        #expect(try pair.encodeAndApply().pagesCopied == 0)
        #expect(pair.identical)
    }
}
