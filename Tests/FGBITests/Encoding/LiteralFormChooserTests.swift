import Testing

@testable import FGBI

/// The literal form's margin (``LiteralFormChooser/marginFactor``): a sample of whole pages overstates what
/// the compressor finds in the body's literals, because its repeats include blocks the index sends as copies.
@Suite("Literal form chooser")
struct LiteralFormChooserTests {
    /// Pages of random words with no zero byte (the sparse form saves nothing on them), of which `copied` in
    /// every 20 repeat the page before: LZ4 finds about `copied / 20` of the sample's bytes again, and so
    /// does the content index (copies of blocks earlier in the epoch).
    private static func fill(_ memory: GuestMemory, copied: Int, seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let pageWords = 4096 / 8
        let words = memory.base.assumingMemoryBound(to: UInt64.self)
        for page in 0..<(memory.length / 4096) {
            for word in 0..<pageWords {
                words[page * pageWords + word] =
                    page % 20 < copied && page > 0
                    ? words[(page - 1) * pageWords + word] : random.next() | 0x0101_0101_0101_0101
            }
        }
    }

    /// One epoch of every page of 1,024 filled with `copied` pages in 20 repeated, under `minimumSaving`.
    private static func epoch(copied: Int, minimumSaving: Double) throws -> EpochStatistics {
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.compressionMinimumSaving = minimumSaving
        let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 1024)
        fill(harness.primary[0], copied: copied, seed: 83)
        let statistics = try harness.step([DirtyPageSet(pages: 0..<1024)]).statistics
        #expect(harness.identical, "\(harness.firstDifference)")
        return statistics
    }

    @Test("a sample saving between the minimum and twice it keeps the sparse form, and the body is no larger")
    func aSmallWinInTheSampleKeepsTheSparseForm() throws {
        // 3 pages in 20 repeated: the sample compresses by about 15%, between 10% and twice it.
        let kept = try Self.epoch(copied: 3, minimumSaving: 0.10)
        #expect(kept.sparseChosen == 1)
        // Half the minimum saving: a 10% margin, which the sample's 15% clears, so literals are chosen.
        let literal = try Self.epoch(copied: 3, minimumSaving: 0.05)
        #expect(literal.sparseChosen == 0)
        // The index sent the repeated pages as copies in both, so the literals left nothing to compress.
        #expect(kept.sharedHits == literal.sharedHits)
        #expect(kept.sharedHits >= 3 * 51 * 64 - 64)
        #expect(Double(kept.wireBytes) <= Double(literal.wireBytes) * 1.01, "sparse \(kept), literal \(literal)")
    }

    @Test("a sample saving over twice the minimum chooses literals")
    func aLargeWinInTheSampleChoosesLiterals() throws {
        // 7 pages in 20 repeated: about 35%, over twice the minimum saving.
        let statistics = try Self.epoch(copied: 7, minimumSaving: 0.10)
        #expect(statistics.sparseChosen == 0)
        #expect(statistics.sparseBlocks == 0)
    }

    /// A decision lasts until the bytes captured since its sample reach 64 times the sample's (384 KiB at most)
    /// or for 16 epochs, both doubled by each sample that makes the same choice again, up to four times: a small
    /// capture is sampled at epochs 0 and 17 (then 50), one of 4 MiB at 0, 6, 18 and 42, one of 8 MiB at 0, 3,
    /// 9 and every 12th from then on.
    @Test("a decision lasts 64 times its sample's bytes or 16 epochs, stretched while samples confirm it")
    func samplingIsBudgetedByTheBytesCaptured() throws {
        #expect(LiteralFormChooser.cadenceBytesFactor == 64)
        let memory = try GuestMemory.anonymous(length: 2048 * 4096)
        Self.fill(memory, copied: 0, seed: 5)
        for (pages, expected) in [(64, 2), (1024, 4), (2048, 6)] {
            let capture = EpochCapture()
            capture.reset(epoch: 1, itemSize: 4096)
            for page in 0..<pages { capture.append(BlockLocation(region: 0, block: page), from: memory.page(page)) }
            EpochCapture.finishStores()
            let chooser = LiteralFormChooser(compression: .lz4, minimumSaving: 0.10, blockSize: 64)
            for _ in 0..<48 { _ = try chooser.prefersSparse(capture.view) }
            #expect(chooser.samples == expected, "\(pages) pages per epoch: \(chooser.samples) samples in 48 epochs")
        }
    }
}
