import Testing

@testable import FGBI

/// The `fgbi` encoder's splices (`SpliceMatcher`): moved content found at any offset among the epoch's
/// earlier blocks and in what the backup held before the epoch (shifted within a page, moved across pages and
/// regions, from blocks the same epoch overwrites, up to a region's ends), sent as splices, and replicated
/// exactly in every block size, on one encode thread and two; candidates whose anchors collide are refused by
/// the bitwise comparison, and a stored copy retired in an earlier epoch is never a source.
@Suite("Splice matcher")
struct SpliceMatcherTests {
    /// An `fgbi` engine with splicing on `encodeThreads` threads (every epoch split among them), and its backup,
    /// over two regions of `pages` pages.
    private static func harness(blockSize: Int, encodeThreads: Int, pages: Int) throws -> EngineHarness {
        var configuration = EngineConfiguration(mode: .fgbi, blockSize: blockSize)
        configuration.splicing = true
        configuration.encodeThreads = encodeThreads
        configuration.parallelEncodeMinimumBlocks = 0
        configuration.choosesEncodeThreadsByTime = false
        return try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: pages)
    }

    @Test(
        "moved content travels as splices and replicates exactly", arguments: BlockGeometry.supportedBlockSizes, [1, 2])
    func movedContentIsSplicedExactly(blockSize: Int, encodeThreads: Int) throws {
        let pages = 64
        let harness = try Self.harness(blockSize: blockSize, encodeThreads: encodeThreads, pages: pages)
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

    @Test(
        "content the backup held travels as splices of it and replicates exactly",
        arguments: BlockGeometry.supportedBlockSizes, [1, 2])
    func heldContentIsSplicedExactly(blockSize: Int, encodeThreads: Int) throws {
        let pages = 16
        let page = GuestMemory.pageSize
        let harness = try Self.harness(blockSize: blockSize, encodeThreads: encodeThreads, pages: pages)
        var random = SeededRandom(seed: UInt64(blockSize) + 7)
        func fill(_ base: UnsafeMutableRawPointer, pages count: Int) {
            for word in 0..<(count * page / 8) {
                base.storeBytes(of: random.next() | 1, toByteOffset: word * 8, as: UInt64.self)
            }
        }
        let first = harness.primary[0].base
        let second = harness.primary[1].base
        // One region's fresh words per epoch, so that no epoch has the operations (SpliceAdmission's minimum)
        // by which an epoch whose splices find nothing thins the next.
        fill(first, pages: pages)
        _ = try harness.step([])
        fill(second, pages: pages)
        _ = try harness.step([DirtyPageSet(pages: []), DirtyPageSet(pages: 0..<pages)])
        var spliced = 0
        for epoch in 1..<5 {
            // Region 0's first 8 pages: each page's bytes shifted within it, by an odd or even count, up or down
            // (B-tree cells moved), a few bytes changed. Its last 8 pages (to the region's end): region 1's first
            // 8 shifted by a few bytes. Then region 1's first 4 pages overwritten: sources the same epoch changes.
            let shift = 1 + epoch * 3
            for index in 0..<8 {
                let start = first + index * page
                if epoch.isMultiple(of: 2) {
                    (start + shift).copyMemory(from: start, byteCount: page - shift)
                } else {
                    start.copyMemory(from: start + shift, byteCount: page - shift)
                }
                start.storeBytes(of: UInt8(truncatingIfNeeded: random.next()), toByteOffset: 1_000, as: UInt8.self)
            }
            (first + 8 * page + shift).copyMemory(from: second, byteCount: 8 * page - shift)
            fill(second, pages: 4)
            let (_, statistics) = try harness.step([DirtyPageSet(pages: 0..<16), DirtyPageSet(pages: 0..<4)])
            #expect(harness.identical, "epoch \(epoch): first difference at \(harness.firstDifference)")
            if !harness.identical { break }
            spliced += statistics.splicedBlocks
        }
        // The moved blocks (16 pages a epoch) have no source in the epoch's own new content but the backup's.
        let moved = 4 * 16 * page / blockSize
        #expect(spliced >= moved / 2, "\(spliced) spliced blocks of the \(moved) that moved")
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

    @Test func collidingAnchorsAreRefusedAndRetiredCopiesAreNoSource() throws {
        var statistics = EpochStatistics()
        let matcher = SpliceMatcher(blockSize: 64, tableEntries: 1 << 12)
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 64, keying: .fullHash, regionBlocks: [64])
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
        let held = BlockLocation(region: 0, block: 3)
        let here = BlockLocation(region: 0, block: 9)
        func splice(ordinal: Int) -> Bool {
            block.withUnsafeBytes {
                matcher.splice($0.baseAddress!, ordinal: ordinal, hash: 0, location: here, limit: 65, index: index)
            }
        }
        // Epoch 1 stores the block at `held`; from epoch 2 on the backup holds it there.
        fill(first)
        let recorded = block
        index.beginEpoch(1)
        block.withUnsafeBytes {
            index.addAbsent(hash: 1, at: held, bytes: $0.baseAddress!, ordinal: 0)
            matcher.record($0.baseAddress!, ordinal: 0, hash: 0, slot: index.slotFilledLast)
        }
        index.beginEpoch(2)
        matcher.beginEpoch(counting: &statistics)
        // The same 16 bytes around the other word: its anchor finds the first's entry, and the bytes differ.
        fill(second)
        block.replaceSubrange(8..<16, with: recorded[8..<16])
        block.replaceSubrange(24..<32, with: recorded[24..<32])
        #expect(!splice(ordinal: 1))
        // The first word again, with the same bytes around it: found, from 8 bytes before it to 8 after, as a
        // piece held 6 blocks before this one.
        block.replaceSubrange(16..<24, with: recorded[16..<24])
        #expect(splice(ordinal: 2))
        var body = ByteWriter()
        matcher.writeSplice(code: DeltaFormat.BlockOp.spliced.rawValue, into: &body)
        let displacement = (3 - 9) * 64 + 8
        let piece =
            DeltaBodies.uleb(24 << 2 | Int(DeltaFormat.SplicePiece.heldNearby.rawValue))
            + DeltaBodies.uleb(-2 * displacement - 1)
        #expect(Array(body.bytes)[(1 + 1 + 8)...].starts(with: piece))
        // Retired in epoch 3 (its location changed): still what the backup held before that epoch; from
        // epoch 4 on, no source.
        index.beginEpoch(3)
        _ = index.takePrevious(at: held, hash: 1)
        #expect(splice(ordinal: 3))
        index.beginEpoch(4)
        #expect(!splice(ordinal: 4))
    }

    /// Rebuilds a 64-byte block, the epoch's `ordinal`-th at block 9 of region 0, from splice `pieces`: held
    /// pieces from `held` (the region before the epoch), earlier ones from `stream` (the epoch's blocks).
    private static func rebuild(_ pieces: [UInt8], held: [UInt8], stream: [UInt8], ordinal: Int) -> [UInt8]? {
        var reader = pieces[...]
        func uleb() -> Int {
            var value = 0
            var shift = 0
            while let byte = reader.popFirst() {
                value |= Int(byte & 0x7F) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            return value
        }
        var block: [UInt8] = []
        while block.count < 64, !reader.isEmpty {
            let head = uleb()
            let length = head >> 2
            switch UInt64(head & 3) {
            case DeltaFormat.SplicePiece.literal.rawValue:
                block += reader.prefix(length)
                reader = reader.dropFirst(length)
            case DeltaFormat.SplicePiece.earlier.rawValue:
                let from = ordinal * 64 - uleb()
                block += stream[from..<(from + length)]
            case DeltaFormat.SplicePiece.heldNearby.rawValue:
                let zigzag = uleb()
                let from = 9 * 64 + (zigzag & 1 == 0 ? zigzag >> 1 : -(zigzag >> 1) - 1)
                block += held[from..<(from + length)]
            default: return nil
            }
        }
        return block
    }

    @Test func piecesCrossASourceBlocksEdgeOnlyIntoContentOfTheSameKind() throws {
        var statistics = EpochStatistics()
        let matcher = SpliceMatcher(blockSize: 64, tableEntries: 1 << 12)
        let index = ContentIndex(blockSize: 64, budgetBytes: 64 * 64, keying: .fullHash, regionBlocks: [64])
        var random = SeededRandom(seed: 11)
        func words(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        // Blocks 3 and 4 of fresh bytes, stored in epoch 1: the backup holds them from epoch 2 on.
        var held = [UInt8](repeating: 0, count: 64 * 64)
        held.replaceSubrange((3 * 64)..<(5 * 64), with: words(128))
        index.beginEpoch(1)
        for block in 3...4 {
            held.withUnsafeBytes {
                let bytes = $0.baseAddress! + 64 * block
                index.addAbsent(
                    hash: UInt64(block), at: BlockLocation(region: 0, block: block), bytes: bytes, ordinal: block)
                matcher.record(bytes, ordinal: block, hash: 0, slot: index.slotFilledLast)
            }
        }
        let here = BlockLocation(region: 0, block: 9)
        func splice(_ block: [UInt8], ordinal: Int) -> [UInt8]? {
            guard
                block.withUnsafeBytes({
                    matcher.splice($0.baseAddress!, ordinal: ordinal, hash: 0, location: here, limit: 65, index: index)
                })
            else { return nil }
            var body = ByteWriter()
            matcher.writeSplice(code: DeltaFormat.BlockOp.spliced.rawValue, into: &body)
            return Array(Array(body.bytes)[1...])
        }
        // Epoch 2, block 9: bytes 30..<94 of blocks 3 and 4, as one held piece across their edge.
        index.beginEpoch(2)
        matcher.beginEpoch(counting: &statistics)
        let moved = Array(held[(3 * 64 + 30)..<(3 * 64 + 94)])
        let acrossEdge =
            DeltaBodies.uleb(64 << 2 | Int(DeltaFormat.SplicePiece.heldNearby.rawValue))
            + DeltaBodies.uleb(2 * (9 * 64 - (3 * 64 + 30)) - 1)
        #expect(splice(moved, ordinal: 0) == acrossEdge)
        // Epoch 3: block 4 rewritten first (ordinal 0), with new bytes that continue block 3's old ones where
        // the old block 4 did not; block 9 (ordinal 1) is block 3's old tail and that new head. Were the new
        // content taken for held bytes across the edge, the backup would rebuild the old head.
        index.beginEpoch(3)
        matcher.beginEpoch(counting: &statistics)
        var new = words(64)
        new.replaceSubrange(0..<30, with: words(30))
        new.withUnsafeBytes {
            _ = index.takePrevious(at: BlockLocation(region: 0, block: 4), hash: 4)
            index.addAbsent(hash: 5, at: BlockLocation(region: 0, block: 4), bytes: $0.baseAddress!, ordinal: 0)
            matcher.record($0.baseAddress!, ordinal: 0, hash: 0, slot: index.slotFilledLast)
        }
        let target = Array(held[(3 * 64 + 30)..<(4 * 64)]) + Array(new[0..<30])
        let pieces = try #require(splice(target, ordinal: 1))
        #expect(Self.rebuild(pieces, held: held, stream: new, ordinal: 1) == target)
        #expect(pieces != acrossEdge)
    }
}
