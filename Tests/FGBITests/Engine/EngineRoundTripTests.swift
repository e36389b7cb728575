import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Applying each epoch's delta to a replica gives memory bit-identical to the primary at that epoch, for
/// every mode, block size and compressor, under adversarial writes and forced index collisions, with the
/// `fgbi` encoder on one thread and split between several.
@Suite("Engine round trip")
struct EngineRoundTripTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var mode: ReplicationMode
        var blockSize: Int
        var compression: Compression?
        var keying: IndexKeying
        var encodeThreads = 1
        var splicing = false

        var testDescription: String {
            let compressor = compression.map(String.init(describing:)) ?? "default"
            return "\(mode) \(blockSize)B \(compressor)\(keying == .fullHash ? "" : " forced-collisions")"
                + (encodeThreads > 1 ? " \(encodeThreads) encode threads" : "") + (splicing ? " splicing" : "")
        }
    }

    static let cases: [Case] =
        BlockGeometry.supportedBlockSizes.flatMap { size in
            [1, 2].flatMap { threads in
                [
                    Case(mode: .fgbi, blockSize: size, compression: nil, keying: .fullHash, encodeThreads: threads),
                    Case(mode: .fgbi, blockSize: size, compression: nil, keying: .lowBits(3), encodeThreads: threads),
                ]
            }
        } + [
            Case(mode: .fgbi, blockSize: 64, compression: nil, keying: .fullHash, encodeThreads: 4),
            Case(mode: .fgbi, blockSize: 64, compression: nil, keying: .lowBits(1), encodeThreads: 3),
            Case(mode: .fgbi, blockSize: 64, compression: Compression.none, keying: .fullHash),
            Case(mode: .fgbi, blockSize: 64, compression: nil, keying: .fullHash, splicing: true),
            Case(mode: .fgbi, blockSize: 256, compression: nil, keying: .lowBits(3), encodeThreads: 2, splicing: true),
            Case(mode: .fgbi, blockSize: 64, compression: .zstd(level: 1), keying: .fullHash),
            Case(mode: .fgbi, blockSize: 128, compression: .zstd(level: 3), keying: .lowBits(1)),
            Case(mode: .page, blockSize: 64, compression: nil, keying: .fullHash),
            Case(mode: .pageLZ4, blockSize: 64, compression: nil, keying: .fullHash),
            Case(mode: .xbzrle, blockSize: 64, compression: nil, keying: .fullHash),
            Case(mode: .xbzrle, blockSize: 64, compression: .lz4, keying: .fullHash),
        ]

    @Test("adversarial epochs replicate exactly", arguments: cases)
    func adversarialEpochs(_ testCase: Case) throws {
        var configuration = EngineConfiguration(
            mode: testCase.mode, blockSize: testCase.blockSize, compression: testCase.compression)
        configuration.indexKeying = testCase.keying
        configuration.encodeThreads = testCase.encodeThreads
        configuration.splicing = testCase.splicing
        configuration.parallelEncodeMinimumBlocks = 0
        configuration.choosesEncodeThreadsByTime = false
        // A small content budget so eviction happens during the test too.
        configuration.contentBudgetBytes = 256 << 10
        configuration.pageCacheBudgetBytes = 64 * GuestMemory.pageSize
        let harness = try EngineHarness(configuration: configuration)
        var mutator = Mutator(regions: harness.primary, blockSize: testCase.blockSize, seed: UInt64(testCase.blockSize))
        // Epoch 0 carries the initial content (here: some writes before replication starts).
        for _ in 0..<200 { mutator.act() }
        _ = mutator.takeDirty()
        try harness.step([])
        #expect(harness.identical, "epoch 0: first difference at \(harness.firstDifference)")
        for epoch in 1...12 {
            for _ in 0..<(epoch == 5 ? 0 : 60) { mutator.act() }
            try harness.step(mutator.takeDirty())
            #expect(harness.identical, "epoch \(epoch): first difference at \(harness.firstDifference)")
            if !harness.identical { break }
        }
        if testCase.keying != .fullHash {
            #expect(harness.totals.collisions > 0, "forced collisions must be detected by the bitwise comparison")
        }
        if testCase.mode == .fgbi {
            // With forced collisions the few keys are mostly held by other content, so sharing may not happen.
            if testCase.keying == .fullHash {
                #expect(harness.totals.sharedHits > 0, "duplicates must travel as references")
            }
            #expect(harness.totals.zeroBlocks > 0)
        }
    }

    @Test(
        "parallel capture gives the same deltas as one thread", arguments: [ReplicationMode.fgbi, .page, .xbzrle],
        [2, 3])
    func parallelCaptureMatchesSerial(mode: ReplicationMode, threads: Int) throws {
        var serial = EngineConfiguration(mode: mode)
        serial.captureThreads = 1
        var parallel = serial
        parallel.captureThreads = threads
        parallel.parallelCaptureMinimumPages = 1
        let one = try EngineHarness(configuration: serial)
        let many = try EngineHarness(configuration: parallel)
        var first = Mutator(regions: one.primary, blockSize: 64, seed: 11)
        var second = Mutator(regions: many.primary, blockSize: 64, seed: 11)
        for epoch in 0..<8 {
            for _ in 0..<(epoch == 0 ? 300 : 80) {
                first.act()
                second.act()
            }
            let (a, _) = try one.step(first.takeDirty())
            let (b, _) = try many.step(second.takeDirty())
            #expect(a == b, "epoch \(epoch): the deltas differ")
            #expect(many.identical, "epoch \(epoch): first difference at \(many.firstDifference)")
        }
    }

    /// Each capture strategy pinned: under `auto` the harnesses may capture an epoch differently (the choice is
    /// by measured time), and the literal form's sample, of pages or of blocks, may then decide differently.
    @Test(
        "the deltas of 1, 2 and 4 encode threads are the same bytes and rebuild identical memory on the same history",
        arguments: [64, 256], [CaptureStrategy.rehash, .copyPages])
    func encodeThreadsRebuildIdenticalMemory(blockSize: Int, strategy: CaptureStrategy) throws {
        let harnesses = try [1, 2, 4].map { threads in
            var configuration = EngineConfiguration(mode: .fgbi, blockSize: blockSize)
            configuration.captureStrategy = strategy
            configuration.encodeThreads = threads
            configuration.parallelEncodeMinimumBlocks = 0
            configuration.choosesEncodeThreadsByTime = false
            configuration.contentBudgetBytes = 512 << 10
            return (threads, try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: 256))
        }
        var mutators = harnesses.map { Mutator(regions: $0.1.primary, blockSize: blockSize, seed: 17) }
        var shared = [Int](repeating: 0, count: harnesses.count)
        for epoch in 0..<16 {
            var deltas: [[UInt8]] = []
            for index in harnesses.indices {
                for _ in 0..<(epoch == 0 ? 400 : 150) { mutators[index].act() }
                let (delta, statistics) = try harnesses[index].1.step(mutators[index].takeDirty())
                deltas.append(delta)
                shared[index] += statistics.sharedHits
                let (threads, harness) = harnesses[index]
                #expect(
                    harness.identical,
                    "\(threads) threads, epoch \(epoch): first difference at \(harness.firstDifference)")
                #expect(
                    statistics.encodeThreads == (statistics.blocksDirty > 0 ? threads : 1),
                    "\(threads) threads, epoch \(epoch): encoded on \(statistics.encodeThreads)")
            }
            // One content index, consulted in the same order whatever the thread count: the same delta.
            for (index, delta) in deltas.enumerated().dropFirst() {
                let same = delta == deltas[0]
                #expect(
                    same,
                    """
                    epoch \(epoch): \(harnesses[index].0) threads wrote \(delta.count) bytes, one thread \
                    \(deltas[0].count)
                    """
                )
            }
            // The same history: every primary holds the same bytes, so every replica does too.
            for index in harnesses.indices.dropFirst() {
                for (a, b) in zip(harnesses[0].1.backup, harnesses[index].1.backup) {
                    #expect(
                        memcmp(a.base, b.base, a.length) == 0,
                        "epoch \(epoch): the replicas of 1 and \(harnesses[index].0) threads differ")
                }
            }
        }
        #expect(shared.allSatisfy { $0 > 0 }, "duplicates travel as references at every thread count: \(shared)")
    }

    /// Threads capture and encode (copied pages are then rehashed on the encode threads too).
    /// A location rewritten whole has a base unrelated to its new content: its long difference loses to the
    /// sparse form where that is shorter; a small change keeps its difference.
    @Test("a rewritten block goes in the shorter of difference and sparse form")
    func rewrittenBlocksTakeTheShorterForm() throws {
        let harness = try EngineHarness(configuration: EngineConfiguration(mode: .fgbi), regions: 1, pagesPerRegion: 4)
        let memory = harness.primary[0]
        var random = SeededRandom(seed: 99)
        // Words of small values (two non-zero bytes of eight), then other small values in every word: the
        // difference fits (the zero high bytes are equal) but is longer than the sparse form.
        func writeSmallWords() {
            for word in 0..<(GuestMemory.pageSize / 8) {
                memory.base.storeBytes(of: random.next() & 0xFFFF | 0x0101, toByteOffset: word * 8, as: UInt64.self)
            }
        }
        writeSmallWords()
        try harness.step([])
        writeSmallWords()
        let (_, rewritten) = try harness.step([DirtyPageSet(pages: [0])])
        #expect(harness.identical, "first difference at \(harness.firstDifference)")
        #expect(
            rewritten.sparseBlocks == 64 && rewritten.diffBlocks == 0,
            "sparse \(rewritten.sparseBlocks), diff \(rewritten.diffBlocks)")
        for block in 0..<64 { memory.base.storeBytes(of: UInt8(7), toByteOffset: block * 64 + 3, as: UInt8.self) }
        let (_, touched) = try harness.step([DirtyPageSet(pages: [0])])
        #expect(harness.identical, "first difference at \(harness.firstDifference)")
        #expect(
            touched.diffBlocks == 64 && touched.sparseBlocks == 0,
            "diff \(touched.diffBlocks), sparse \(touched.sparseBlocks)")
    }

    @Test("capture strategies replicate exactly", arguments: CaptureStrategy.allCases, [1, 2])
    func captureStrategies(strategy: CaptureStrategy, threads: Int) throws {
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.captureStrategy = strategy
        configuration.captureThreads = threads
        configuration.parallelCaptureMinimumPages = 1
        configuration.encodeThreads = threads
        configuration.parallelEncodeMinimumBlocks = 0
        configuration.choosesEncodeThreadsByTime = false
        let harness = try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: 256)
        var mutator = Mutator(regions: harness.primary, blockSize: 64, seed: 5)
        var seen = Set<String>()
        for epoch in 0..<40 {
            for _ in 0..<(epoch == 0 ? 300 : 120) { mutator.act() }
            let (_, statistics) = try harness.step(mutator.takeDirty())
            if epoch > 0 { seen.insert(statistics.captureStrategy) }
            #expect(
                harness.identical,
                "epoch \(epoch) (\(statistics.captureStrategy)): first difference at \(harness.firstDifference)")
            if !harness.identical { break }
        }
        switch strategy {
        case .rehash: #expect(seen == ["rehash"])
        case .copyPages: #expect(seen == ["copy"])
        case .automatic: #expect(seen == ["rehash", "copy"], "the chooser measures both strategies")
        }
    }

    @Test func splitKeepsOrderAndBalance() {
        let work = [
            PrimaryEngine.Span(region: 0, start: 0, count: 5), PrimaryEngine.Span(region: 1, start: 10, count: 6),
        ]
        let pieces = PrimaryEngine.split(work, into: 3)
        #expect(pieces.map { $0.reduce(0) { $0 + $1.count } } == [4, 4, 3])
        let flattened = pieces.flatMap { $0 }.flatMap { span in
            (span.start..<(span.start + span.count)).map { (span.region, $0) }
        }
        #expect(flattened.map(\.0) == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
        #expect(flattened.map(\.1) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15])
    }

    @Test("a written page whose content did not change sends no block", arguments: [64, 4096])
    func unchangedPagesSendNothing(blockSize: Int) throws {
        let harness = try EngineHarness(
            configuration: EngineConfiguration(mode: .fgbi, blockSize: blockSize), regions: 1, pagesPerRegion: 16)
        try harness.step([])
        let (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<16)])
        #expect(statistics.pagesWritten == 16)
        #expect(statistics.blocksRehashed == 16 * GuestMemory.pageSize / blockSize)
        #expect(statistics.blocksDirty == 0)
        #expect(harness.identical)
    }

    @Test(
        "captured pages that proved unchanged are listed, only when asked",
        arguments: [CaptureStrategy.rehash, .copyPages])
    func unchangedPagesAreListedWhenAsked(strategy: CaptureStrategy) throws {
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.captureStrategy = strategy
        let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 16)
        try harness.step([])
        harness.capture.recordsUnchangedPages = true
        harness.primary[0].page(3).storeBytes(of: UInt64(7), as: UInt64.self)
        try harness.step([DirtyPageSet(pages: 2..<6)])
        #expect(
            harness.capture.unchangedPages.map(\.block) == [2, 4, 5],
            "page 3 changed; 2, 4 and 5 were reported but not written")
        #expect(harness.identical)
        harness.capture.recordsUnchangedPages = false
        try harness.step([DirtyPageSet(pages: 2..<6)])
        #expect(harness.capture.unchangedPages.isEmpty)
    }

    /// A large body of random bytes (nothing for LZ4 to find) goes uncompressed under the default
    /// minimum saving and compressed when every body must be; a large compressible body is compressed either
    /// way; each epoch applies exactly.
    @Test("the compressor runs only where a sample shows it pays", arguments: [0.0, 0.10])
    func compressionIsSkippedWhereItDoesNotPay(minimumSaving: Double) throws {
        var configuration = EngineConfiguration(mode: .fgbi)
        configuration.compressionMinimumSaving = minimumSaving
        let harness = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 1024)
        let memory = harness.primary[0]
        var random = SeededRandom(seed: 77)
        let words = memory.base.assumingMemoryBound(to: UInt64.self)
        for word in 0..<(memory.length / 8) { words[word] = random.next() }
        let all = DirtyPageSet(pages: Array(0..<memory.pageCount))
        let incompressible = try harness.step([all]).statistics
        #expect(incompressible.bodyBytes > DeltaAssembler.sampleThreshold)
        #expect(incompressible.bodiesStoredRaw == (minimumSaving > 0 ? 1 : 0))
        #expect(harness.identical, "\(harness.firstDifference)")
        // Every block rewritten as eight copies of one word made of its number and the round: unique blocks,
        // none a copy of earlier content and every byte different from the block's last, each easy for LZ4. A
        // sampled decision lasts until 16 times its sample's bytes (384 KiB) are seen (``SampleCadence``): this
        // 4 MiB body may still reuse it, the next is sampled.
        var compressible = EpochStatistics()
        for round in 0..<2 {
            let mark = 0x5A5A_5A5A_5A5A_5A5A &* UInt64(round + 1)
            for word in 0..<(memory.length / 8) { words[word] = (UInt64(word / 8) &* 0x0101_0101) ^ mark }
            compressible = try harness.step([all]).statistics
        }
        #expect(compressible.bodyBytes > DeltaAssembler.sampleThreshold)
        #expect(compressible.bodiesStoredRaw == 0)
        #expect(compressible.wireBytes < compressible.bodyBytes / 2)
        #expect(harness.identical, "\(harness.firstDifference)")
    }

    /// Blocks with no previous content go in sparse form when their words hold small values (zero high
    /// bytes, no repeats for LZ4) and as literals for LZ4 when they repeat (text); both apply exactly.
    @Test func theLiteralFormFollowsTheContent() throws {
        let harness = try EngineHarness(
            configuration: EngineConfiguration(mode: .fgbi), regions: 1, pagesPerRegion: 1024)
        let memory = harness.primary[0]
        var random = SeededRandom(seed: 79)
        let words = memory.base.assumingMemoryBound(to: UInt64.self)
        for word in 0..<(memory.length / 8) { words[word] = random.next() >> 28 }
        let small = try harness.step([DirtyPageSet(pages: 0..<1024)]).statistics
        #expect(small.sparseChosen == 1)
        #expect(small.sparseBlocks > small.blocksDirty / 2)
        #expect(harness.identical, "\(harness.firstDifference)")
        let text = Array("key-000123 value: the quick brown fox jumps over the lazy dog; ".utf8)
        let bytes = memory.base.assumingMemoryBound(to: UInt8.self)
        // A decision lasts until 64 times its sample's bytes (384 KiB) are captured
        // (``LiteralFormChooser/cadenceBytesFactor``): the next five 4 MiB epochs may still reuse it, the sixth
        // is sampled.
        for round in 0..<6 {
            for offset in 0..<memory.length {
                bytes[offset] = text[(offset * 7 + offset / 4096 + round) % text.count] &+ UInt8(offset / 65536 % 3)
            }
            if round < 5 { _ = try harness.step([DirtyPageSet(pages: 0..<1024)]) }
        }
        let repetitive = try harness.step([DirtyPageSet(pages: 0..<1024)]).statistics
        #expect(repetitive.sparseChosen == 0)
        #expect(repetitive.sparseBlocks == 0)
        #expect(repetitive.wireBytes < repetitive.bodyBytes / 2)
        #expect(harness.identical, "\(harness.firstDifference)")
    }

    /// The baselines stay what they model: `page-lz4` compresses even a body LZ4 cannot shrink, unless told.
    @Test func pageLZ4CompressesEveryBodyByDefault() throws {
        #expect(EngineConfiguration(mode: .fgbi).effectiveCompressionMinimumSaving == 0.10)
        #expect(EngineConfiguration(mode: .pageLZ4).effectiveCompressionMinimumSaving == 0)
        let harness = try EngineHarness(
            configuration: EngineConfiguration(mode: .pageLZ4), regions: 1, pagesPerRegion: 1024)
        var random = SeededRandom(seed: 78)
        let words = harness.primary[0].base.assumingMemoryBound(to: UInt64.self)
        for word in 0..<(harness.primary[0].length / 8) { words[word] = random.next() }
        let statistics = try harness.step([DirtyPageSet(pages: 0..<1024)]).statistics
        #expect(statistics.bodyBytes > DeltaAssembler.sampleThreshold)
        #expect(statistics.bodiesStoredRaw == 0)
        #expect(harness.identical)
    }

    @Test func duplicatesAcrossRegionsTravelAsReferences() throws {
        let harness = try EngineHarness(configuration: EngineConfiguration(mode: .fgbi), regions: 2, pagesPerRegion: 8)
        var random = SeededRandom(seed: 9)
        for i in 0..<(GuestMemory.pageSize / 8) {
            harness.primary[0].base.storeBytes(of: random.next(), toByteOffset: i * 8, as: UInt64.self)
        }
        try harness.step([])
        // Region 1 gets a copy of region 0's page 0: every block is content the backup already holds.
        harness.primary[1].page(3).copyMemory(from: harness.primary[0].page(0), byteCount: GuestMemory.pageSize)
        let (_, statistics) = try harness.step([DirtyPageSet(), DirtyPageSet(pages: [3])])
        #expect(statistics.blocksDirty == 64)
        #expect(statistics.sharedHits == 64)
        #expect(statistics.literalBlocks == 0)
        #expect(harness.identical)
    }

    @Test func sparseWritesSendDifferencesAgainstTheCachedBlock() throws {
        let harness = try EngineHarness(configuration: EngineConfiguration(mode: .fgbi), regions: 1, pagesPerRegion: 64)
        var random = SeededRandom(seed: 4)
        for i in 0..<(64 * GuestMemory.pageSize / 8) {
            harness.primary[0].base.storeBytes(of: random.next(), toByteOffset: i * 8, as: UInt64.self)
        }
        try harness.step([])
        for page in 0..<64 {
            harness.primary[0].page(page).storeBytes(
                of: random.next(), toByteOffset: 8 * Int(random.next() % 512), as: UInt64.self)
        }
        let (delta, statistics) = try harness.step([DirtyPageSet(pages: 0..<64)])
        #expect(statistics.blocksDirty == 64 && statistics.diffBlocks == 64)
        #expect(delta.count < 64 * 32, "\(delta.count) bytes for 64 eight-byte writes")
        #expect(harness.identical)
    }
}
