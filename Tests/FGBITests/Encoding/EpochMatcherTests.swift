import Testing

@testable import FGBI

/// The `fgbi` encoder's splices (`EpochMatcher`): moved content found at any offset among the epoch's
/// earlier blocks, sent as splices, and replicated exactly in every block size, on one encode thread and two;
/// candidates whose anchors collide are refused by the bitwise comparison.
@Suite("Epoch matcher")
struct EpochMatcherTests {
    @Test(
        "moved content travels as splices and replicates exactly", arguments: BlockGeometry.supportedBlockSizes, [1, 2])
    func movedContentIsSplicedExactly(blockSize: Int, encodeThreads: Int) throws {
        var configuration = EngineConfiguration(mode: .fgbi, blockSize: blockSize)
        configuration.splicing = true
        configuration.encodeThreads = encodeThreads
        configuration.parallelEncodeMinimumBlocks = 0
        let pages = 64
        let harness = try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: pages)
        var random = SeededRandom(seed: UInt64(blockSize))
        var spliced = 0
        for epoch in 0..<6 {
            // Fresh words in the first 8 pages of region 0; the next 8 pages and region 1's first 8 the same bytes
            // shifted by a few bytes (odd and even) with a few bytes changed: B-tree cells moved within and across
            // pages. Every block is looked up in the first epoch, so its splices are counted.
            let source = harness.primary[0].base
            for word in 0..<(8 * GuestMemory.pageSize / 8) {
                source.storeBytes(of: random.next() | 1, toByteOffset: word * 8, as: UInt64.self)
            }
            let shift = 1 + epoch * 3
            let length = 8 * GuestMemory.pageSize - shift
            (source + 8 * GuestMemory.pageSize + shift).copyMemory(from: source, byteCount: length)
            (harness.primary[1].base + shift).copyMemory(from: source + 100, byteCount: length - 100)
            for edit in 0..<40 {
                (source + 8 * GuestMemory.pageSize).storeBytes(
                    of: UInt8(truncatingIfNeeded: random.next()), toByteOffset: edit * 811 + 7, as: UInt8.self)
            }
            let dirty = [DirtyPageSet(pages: 0..<16), DirtyPageSet(pages: 0..<8)]
            let (_, statistics) = try harness.step(epoch == 0 ? [] : dirty)
            #expect(harness.identical, "epoch \(epoch): first difference at \(harness.firstDifference)")
            if epoch == 0 { spliced = statistics.splicedBlocks }
        }
        let blocks = 16 * GuestMemory.pageSize / blockSize
        #expect(spliced >= blocks / 2, "\(spliced) spliced blocks of the \(blocks) that moved")
    }

    /// Two different 8-byte words that are both anchors (their first 4 bytes times 0x9E3779B1 have the top 3
    /// bits clear) and whose products by 0x9E3779B97F4A7C15 differ only in the lowest 8 bits: they share a
    /// table entry and its tag.
    private static func collidingWords() -> (UInt64, UInt64) {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var inverse = multiplier
        for _ in 0..<6 { inverse = inverse &* (2 &- multiplier &* inverse) }
        func isAnchor(_ word: UInt64) -> Bool { (UInt32(truncatingIfNeeded: word) &* 0x9E37_79B1) >> 29 == 0 }
        var base: UInt64 = 0x0123_4567_89AB_CD00
        while true {
            let anchors = (0..<256).map { (base | UInt64($0)) &* inverse }.filter(isAnchor)
            if anchors.count >= 2 { return (anchors[0], anchors[1]) }
            base &+= 0x100
        }
    }

    @Test func collidingAnchorsAreRefusedByTheBitwiseComparison() throws {
        let matcher = EpochMatcher(blockSize: 64)
        let (first, second) = Self.collidingWords()
        #expect(first != second && (first &* 0x9E37_79B9_7F4A_7C15) >> 8 == (second &* 0x9E37_79B9_7F4A_7C15) >> 8)
        var block = [UInt8](repeating: 0, count: 64)
        var random = SeededRandom(seed: 5)
        func fill(_ word: UInt64) {
            for index in 0..<8 {
                block.withUnsafeMutableBytes {
                    $0.storeBytes(of: index == 2 ? word : random.next(), toByteOffset: index * 8, as: UInt64.self)
                }
            }
        }
        fill(first)
        let recorded = block
        block.withUnsafeBytes { matcher.record($0.baseAddress!, ordinal: 0) }
        // The same 16 bytes around the other word: its anchor finds the first's entry, and the bytes differ.
        fill(second)
        block.replaceSubrange(8..<16, with: recorded[8..<16])
        block.replaceSubrange(24..<32, with: recorded[24..<32])
        #expect(!block.withUnsafeBytes { matcher.splice($0.baseAddress!, ordinal: 1, limit: 65) })
        // The first word again, with the same bytes around it: found, from 8 bytes before it to 8 after.
        block.replaceSubrange(16..<24, with: recorded[16..<24])
        #expect(block.withUnsafeBytes { matcher.splice($0.baseAddress!, ordinal: 2, limit: 65) })
    }
}
