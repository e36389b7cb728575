import Testing

@testable import FGBI

/// Page copies (of pages the replica held before the epoch) are read from their region at the commit rather
/// than staged, zero pages filled there and pages given whole copied from the delta's body; a page copy whose
/// source an earlier place of the same epoch rewrites is staged first. Random epochs of blocks records
/// (literal, zero, sparse, held-copy and copy-epoch blocks), page-zero, page-raw and page-copy records over two small
/// regions (so sources and places collide often, both ways, within a page and across regions), applied, with
/// the body stored as it is or compressed, must leave exactly what a model reading every held source from a
/// snapshot of the epoch before computes; as a synchronisation step, taken back, they must leave the snapshot.
@Suite("Held copies at the commit")
struct HeldCopyCommitTests {
    static let pagesPerRegion = 4
    static let regionCount = 2

    /// An epoch's body, its record count, and the regions' bytes it must leave.
    struct Epoch {
        var body: [UInt8] = []
        var records = 0
        var expected: [[UInt8]]
    }

    /// A random epoch over regions that hold `before`.
    static func randomEpoch(before: [[UInt8]], random: inout SeededRandom) -> Epoch {
        let pageSize = GuestMemory.pageSize
        let blocksPerRegion = pagesPerRegion * 64
        var epoch = Epoch(expected: before)
        var stream: [[UInt8]] = [] // the new content of the epoch's blocks, in order
        var lastRegion = 0
        var lastPage = -1
        for region in 0..<regionCount {
            for page in 0..<pagesPerRegion where random.next() % 5 < 3 {
                let step = region - lastRegion
                epoch.body += DeltaBodies.uleb(step) + DeltaBodies.uleb(step > 0 ? page : page - lastPage - 1)
                (lastRegion, lastPage) = (region, page)
                epoch.records += 1
                let placeStart = page * pageSize
                let kind = random.next() % 7
                if kind == 6 {
                    let content = (0..<pageSize).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                    epoch.body += [DeltaFormat.RecordKind.pageRaw.rawValue] + content
                    epoch.expected[region].replaceSubrange(placeStart..<(placeStart + pageSize), with: content)
                    continue
                }
                if kind == 0 {
                    epoch.body += [DeltaFormat.RecordKind.pageZero.rawValue]
                    epoch.expected[region].replaceSubrange(
                        placeStart..<(placeStart + pageSize), with: [UInt8](repeating: 0, count: pageSize))
                    continue
                }
                if kind < 3 {
                    let source = (region: Int(random.next() % 2), page: Int(random.next() % UInt64(pagesPerRegion)))
                    epoch.body +=
                        [DeltaFormat.RecordKind.pageCopy.rawValue] + DeltaBodies.uleb(source.region)
                        + DeltaBodies.uleb(source.page)
                    let start = source.page * pageSize
                    epoch.expected[region].replaceSubrange(
                        placeStart..<(placeStart + pageSize), with: before[source.region][start..<(start + pageSize)])
                    continue
                }
                // A blocks record of a random set of at least 8 blocks (mask form), often whole runs.
                var mask: UInt64 = random.next() % 3 == 0 ? ~0 : random.next() | 0xFF
                if mask.nonzeroBitCount < 8 { mask |= 0xFF }
                epoch.body += [DeltaFormat.RecordKind.blocks.rawValue, UInt8(mask.nonzeroBitCount)]
                withUnsafeBytes(of: mask.littleEndian) { epoch.body += $0 }
                // A run of copies from one source block on, as a copied page or object gives; one record in four
                // all sparse blocks (decoded a run at a time), which copy-epoch blocks then read.
                var runSource = (region: 0, block: 0)
                let allSparse = random.next() % 4 == 0
                while mask != 0 {
                    let block = mask.trailingZeroBitCount
                    mask &= mask - 1
                    let content: [UInt8]
                    switch allSparse ? 3 : random.next() % 7 {
                    case 0:
                        content = (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                        epoch.body += [DeltaFormat.BlockOp.literal.rawValue] + content
                    case 1:
                        content = [UInt8](repeating: 0, count: 64)
                        epoch.body += [DeltaFormat.BlockOp.zero.rawValue]
                    case 2 where !stream.isEmpty:
                        let ordinal = Int(random.next() % UInt64(stream.count))
                        content = stream[ordinal]
                        epoch.body += [DeltaFormat.BlockOp.copyEpoch.rawValue] + DeltaBodies.uleb(ordinal)
                    case 3:
                        var bytes = [UInt8](repeating: 0, count: 64)
                        for _ in 0..<(1 + random.next() % 12) {
                            bytes[Int(random.next() % 64)] = UInt8(truncatingIfNeeded: random.next() | 1)
                        }
                        content = bytes
                        epoch.body += [DeltaFormat.BlockOp.sparse.rawValue] + DeltaBodies.sparseForm(bytes)
                    default:
                        if random.next() % 3 == 0 {
                            runSource = (Int(random.next() % 2), Int(random.next() % UInt64(blocksPerRegion)))
                        } else {
                            runSource.block = (runSource.block + 1) % blocksPerRegion
                        }
                        let start = runSource.block * 64
                        content = Array(before[runSource.region][start..<(start + 64)])
                        epoch.body +=
                            [DeltaFormat.BlockOp.copy.rawValue] + DeltaBodies.uleb(runSource.region)
                            + DeltaBodies.uleb(runSource.block)
                    }
                    stream.append(content)
                    let place = placeStart + block * 64
                    epoch.expected[region].replaceSubrange(place..<(place + 64), with: content)
                }
            }
        }
        return epoch
    }

    @Test(arguments: [false, true])
    func randomEpochsLeaveWhatTheSnapshotModelComputes(precopy: Bool) throws {
        let geometry = try BlockGeometry(blockSize: 64)
        let regions = try (0..<Self.regionCount).map { _ in
            try GuestMemory.anonymous(length: Self.pagesPerRegion * GuestMemory.pageSize)
        }
        var random = SeededRandom(seed: precopy ? 91 : 90)
        for memory in regions {
            let words = memory.base.assumingMemoryBound(to: UInt64.self)
            for word in 0..<(memory.length / 8) { words[word] = random.next() }
        }
        let replica = Replica(regions: regions, geometry: geometry)
        replica.adopt(epoch: 0) // the random content is a committed epoch, which a rollback returns to
        // Stored as it is, the body is read where it lies in the delta; compressed (always, at no minimum
        // saving), from the replica's decompressed copy.
        let assemblers = [Compression.none, .lz4].map {
            DeltaAssembler(mode: .fgbi, compression: $0, geometry: geometry, regionCount: Self.regionCount)
        }
        var delta = ByteWriter()
        for round in 0..<300 {
            let before = regions.map { Array($0.bytes) }
            let epoch = Self.randomEpoch(before: before, random: &random)
            _ = try epoch.body.withUnsafeBytes {
                try assemblers[round % 2].assemble(
                    epoch: UInt64(round + 1), records: epoch.records, body: $0, into: &delta)
            }
            try replica.apply(delta.array, precopy: precopy)
            for region in 0..<Self.regionCount {
                #expect(Array(regions[region].bytes) == epoch.expected[region], "round \(round) region \(region)")
            }
            if precopy {
                replica.rollBack()
                #expect(regions.map { Array($0.bytes) } == before, "round \(round): rolled back")
                replica.adopt(epoch: UInt64(round + 1))
            }
        }
    }
}
