import CSupport
import Testing

@testable import FGBI

/// The `fgbi` encoder's page loop (64-byte blocks: the blocks that need no index encoded per page by one shim
/// call) must write exactly what the block-by-block loop writes, epoch after epoch, while the index thins its
/// sample and comes back, evicts, finds copies, zeros and differences, and encodes fresh pages in bulk
/// (``BlockDeltaEncoder/encodeFresh``, which the block loop never takes).
@Suite("Page loop encoding")
struct PageLoopEncodingTests {
    /// One epoch's changed blocks, as a capture both encoders read.
    private static func capture(epoch: UInt64, blocks: [(location: BlockLocation, old: UInt64, bytes: [UInt8])])
        -> EpochCapture
    {
        let capture = EpochCapture()
        capture.reset(epoch: epoch, itemSize: 64)
        capture.holdsBlocks = true
        for block in blocks {
            block.bytes.withUnsafeBytes { raw in
                capture.append(
                    block.location, from: raw.baseAddress!, oldHash: block.old,
                    newHash: CSupport_xxh3_64(raw.baseAddress!, 64))
            }
        }
        return capture
    }

    /// A fresh page holding a block of other bytes under the zero block's hash (XXH3 can be made to collide on
    /// purpose) goes block by block, as the block loop takes it, while the fresh pages beside it go in bulk, the
    /// region's first two pages too (before any copy, no block is within reach of a copied run).
    @Test func aFreshPageWithABlockUnderTheZeroHashGoesBlockByBlock() throws {
        let geometry = try BlockGeometry()
        func encoder(byPage: Bool) -> BlockDeltaEncoder<ContentIndex> {
            let index = ContentIndex(blockSize: 64, budgetBytes: 1 << 20, keying: .fullHash, regionBlocks: [64 * 64])
            return BlockDeltaEncoder(geometry: geometry, index: index, encodesByPage: byPage)
        }
        let byPage = encoder(byPage: true)
        let byBlock = encoder(byPage: false)
        var random = SeededRandom(seed: 99)
        func freshBlock() -> [UInt8] { (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next() | 1) } }
        // Epoch 0: 40 fresh pages, which put the encoders on anchors only; epoch 1: five more, page 61 with block 5
        // hashed as zeros.
        for (epoch, pages) in [(0, Array(20..<60)), (1, [0, 1, 60, 61, 62])] {
            let capture = EpochCapture()
            capture.reset(epoch: UInt64(epoch), itemSize: 64)
            capture.holdsBlocks = true
            for page in pages {
                for block in 0..<64 {
                    freshBlock().withUnsafeBytes { raw in
                        let forged = page == 61 && block == 5
                        capture.append(
                            BlockLocation(region: 0, block: page * 64 + block), from: raw.baseAddress!,
                            oldHash: geometry.zeroBlockHash,
                            newHash: forged ? geometry.zeroBlockHash : CSupport_xxh3_64(raw.baseAddress!, 64))
                    }
                }
            }
            var results: [(body: [UInt8], stats: EpochStatistics)] = []
            for encoder in [byPage, byBlock] {
                var body = ByteWriter()
                var stats = EpochStatistics()
                _ = encoder.encode(capture, sparse: true, into: &body, stats: &stats)
                results.append((body.array, stats))
            }
            #expect(results[0].body == results[1].body, "epoch \(epoch): the loops' bytes differ")
            var work = results[0].stats
            work.pagesEncodedFresh = 0
            #expect(work == results[1].stats)
            if epoch == 0 {
                try #require(byPage.anchors.anchorsOnly, "40 fresh pages put the encoder on anchors only")
            } else {
                #expect(
                    results[0].stats.pagesEncodedFresh == 4, "pages 0, 1, 60 and 62 in bulk, 61 block by block")
            }
        }
    }

    @Test(
        "the index mask marks held and sampled blocks, eight at a time as one by one",
        arguments: SIMDLevels.available)
    func indexMaskMarksHeldAndSampledBlocks(level: Int32) throws {
        try SIMDLevels.at(level) {
            let zeroHash = try BlockGeometry().zeroBlockHash
            var random = SeededRandom(seed: 6464)
            for trial in 0..<2000 {
                let count = 1 + Int(random.next() % 64)
                let sampleMask: UInt64 = [0, 7, 63, 511][trial % 4]
                let held = trial % 5 == 0 ? 0 : random.next()
                // Offsets in order within one page (as a page's changed blocks are), some hashes zero's or sampled.
                let offsets = Array((0..<64).shuffled(using: &random).prefix(count)).sorted()
                let locations = offsets.map { UInt64(1) << 40 | UInt64(5 * 64 + $0) }
                let hashes = (0..<count).map { _ -> UInt64 in
                    switch random.next() % 4 {
                    case 0: return zeroHash
                    case 1: return random.next() & ~sampleMask
                    default: return random.next()
                    }
                }
                var expected: UInt64 = 0
                for k in 0..<count
                where (held >> (locations[k] & 63)) & 1 == 1 || (hashes[k] & sampleMask == 0 && hashes[k] != zeroHash) {
                    expected |= 1 << UInt64(k)
                }
                let need = CSupport_block64_index_mask(hashes, locations, count, held, sampleMask, zeroHash)
                try #require(need == expected, "trial \(trial): \(count) blocks, sample mask \(sampleMask)")
            }
        }
    }

    /// The page loop at each instruction-set level against the block loop on the portable one.
    @Test("the page loop writes the block loop's bytes", arguments: [false, true], SIMDLevels.available)
    func thePageLoopWritesTheBlockLoopsBytes(sparse: Bool, level: Int32) throws {
        let geometry = try BlockGeometry()
        let pages = 512
        let blocksPerPage = 64
        func encoder(byPage: Bool) -> BlockDeltaEncoder<ContentIndex> {
            let index = ContentIndex(
                blockSize: 64, budgetBytes: 96 << 10, keying: .fullHash, regionBlocks: [pages * blocksPerPage])
            return BlockDeltaEncoder(geometry: geometry, index: index, encodesByPage: byPage)
        }
        let byPage = encoder(byPage: true)
        let byBlock = encoder(byPage: false)
        var memory = [[UInt8]](repeating: [UInt8](repeating: 0, count: 64), count: pages * blocksPerPage)
        var hashes = [UInt64](repeating: geometry.zeroBlockHash, count: pages * blocksPerPage)
        var random = SeededRandom(seed: 77)
        var kinds = Set<String>()
        for epoch in 0..<24 {
            // Fresh content over many pages for a few epochs (the sample thins), then a mix: small changes,
            // copies of other blocks, zeros, fresh blocks, a few blocks or a whole page at a time.
            var changed = Set<Int>()
            let fresh = epoch % 8 < 3
            for _ in 0..<(fresh ? 120 : 90) {
                let page = Int(random.next() % UInt64(pages))
                if fresh && epoch >= 16 && random.next() % 6 == 0 {
                    // A page copied whole from another (in the last fresh epochs: copies that pay keep the sample
                    // whole): the copy of fresh content is found through its anchors.
                    let source = Int(random.next() % UInt64(pages))
                    for block in 0..<blocksPerPage where memory[source * 64 + block] != memory[page * 64 + block] {
                        memory[page * 64 + block] = memory[source * 64 + block]
                        changed.insert(page * 64 + block)
                    }
                    continue
                }
                let whole = fresh || random.next() % 4 == 0
                for block in 0..<blocksPerPage where whole || random.next() % 8 == 0 {
                    let location = page * blocksPerPage + block
                    var bytes = memory[location]
                    switch fresh ? 3 : random.next() % 5 {
                    case 0: bytes[Int(random.next() % 64)] &+= 1
                    case 1: bytes = memory[Int(random.next() % UInt64(memory.count))]
                    case 2: bytes = [UInt8](repeating: 0, count: 64)
                    default:
                        for i in 0..<64 {
                            bytes[i] = random.next() % 3 == 0 ? 0 : UInt8(truncatingIfNeeded: random.next())
                        }
                    }
                    if bytes != memory[location] {
                        memory[location] = bytes
                        changed.insert(location)
                    }
                }
            }
            let blocks = changed.sorted().map {
                (location: BlockLocation(region: 0, block: $0), old: hashes[$0], bytes: memory[$0])
            }
            let capture = Self.capture(epoch: UInt64(epoch), blocks: blocks)
            var bodies: [[UInt8]] = []
            var statistics: [EpochStatistics] = []
            for (encoder, encoderLevel) in [(byPage, level), (byBlock, Int32(CSUPPORT_SIMD_PORTABLE))] {
                var body = ByteWriter()
                var stats = EpochStatistics()
                let records = SIMDLevels.at(encoderLevel) {
                    encoder.encode(capture, sparse: sparse, into: &body, stats: &stats)
                }
                #expect(records > 0)
                bodies.append(body.array)
                statistics.append(stats)
            }
            #expect(
                bodies[0] == bodies[1],
                "epoch \(epoch): the loops' bytes differ (\(bodies[0].count) and \(bodies[1].count))")
            // Only the page loop encodes fresh pages in bulk.
            let stats = statistics[0]
            statistics[0].pagesEncodedFresh = 0
            #expect(statistics[0] == statistics[1], "epoch \(epoch): \(statistics[0]) against \(statistics[1])")
            if stats.pagesEncodedFresh > 0 { kinds.insert("fresh") }
            if stats.blocksConsulted < stats.blocksDirty - stats.zeroBlocks { kinds.insert("sampled") }
            if stats.sharedHits > 0 { kinds.insert("copies") }
            if stats.diffBlocks > 0 { kinds.insert("differences") }
            if stats.zeroBlocks > 0 { kinds.insert("zeros") }
            for location in changed {
                hashes[location] = memory[location].withUnsafeBytes { CSupport_xxh3_64($0.baseAddress!, 64) }
            }
        }
        #expect(
            kinds == ["sampled", "copies", "differences", "zeros", "fresh"], "the epochs covered \(kinds.sorted())")
    }
}
