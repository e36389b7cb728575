import Testing

@testable import FGBI

/// The `page-copy` record (delta version 5), applied by the backup: the page becomes a copy of a page the
/// replica held before the epoch, in any region, even one the same epoch rewrites; a copy from a region or page
/// that does not exist, a truncated one, or one in an older version's delta is refused with the replica
/// unchanged.
@Suite("Page copy records")
struct PageCopyRecordTests {
    let geometry: BlockGeometry
    let regions: [GuestMemory]
    let before: [[UInt8]]

    init() throws {
        geometry = try BlockGeometry(blockSize: 64)
        regions = try [
            GuestMemory.anonymous(length: 4 * GuestMemory.pageSize), .anonymous(length: 3 * GuestMemory.pageSize),
        ]
        var random = SeededRandom(seed: 23)
        for memory in regions {
            let words = memory.base.assumingMemoryBound(to: UInt64.self)
            for word in 0..<(memory.length / 8) { words[word] = random.next() }
        }
        before = regions.map { Array($0.bytes) }
    }

    /// (region step, page) then the page-copy kind and its source.
    private func pageCopy(step: Int, page: Int, from source: (region: Int, page: Int)) -> [UInt8] {
        DeltaBodies.uleb(step) + DeltaBodies.uleb(page) + [DeltaFormat.RecordKind.pageCopy.rawValue]
            + DeltaBodies.uleb(source.region) + DeltaBodies.uleb(source.page)
    }

    private func delta(_ body: [UInt8], records: Int, version: UInt16? = nil) throws -> [UInt8] {
        let assembler = DeltaAssembler(mode: .fgbi, compression: Compression.none, geometry: geometry, regionCount: 2)
        var writer = ByteWriter()
        _ = try body.withUnsafeBytes { try assembler.assemble(epoch: 0, records: records, body: $0, into: &writer) }
        var bytes = writer.array
        if let version {
            withUnsafeBytes(of: version.littleEndian) { bytes.replaceSubrange(4..<6, with: $0) }
            DeltaBodies.recomputeChecksum(&bytes)
        }
        return bytes
    }

    private func page(_ bytes: [UInt8], _ index: Int) -> ArraySlice<UInt8> {
        bytes[(index * GuestMemory.pageSize)..<((index + 1) * GuestMemory.pageSize)]
    }

    @Test func pagesAreCopiedAsTheReplicaHeldThemBeforeTheEpoch() throws {
        let replica = Replica(regions: regions, geometry: geometry)
        // Region 0 page 0 and region 1 page 2 trade contents; region 0 page 3 copies region 0 page 0 as it was.
        let body =
            pageCopy(step: 0, page: 0, from: (1, 2)) + pageCopy(step: 0, page: 2, from: (0, 0)) // page 3 (a gap of 2)
            + pageCopy(step: 1, page: 2, from: (0, 0))
        try replica.apply(try delta(body, records: 3))
        let after = regions.map { Array($0.bytes) }
        #expect(page(after[0], 0) == page(before[1], 2))
        #expect(page(after[0], 1) == page(before[0], 1))
        #expect(page(after[0], 3) == page(before[0], 0))
        #expect(page(after[1], 2) == page(before[0], 0))
        #expect(page(after[0], 2) == page(before[0], 2))
        #expect(page(after[1], 0) == page(before[1], 0) && page(after[1], 1) == page(before[1], 1))
    }

    @Test(arguments: [
        ("a region that does not exist", 2, 0),
        ("a page past its region", 1, 3),
        ("a page far past its region", 0, 1 << 40),
    ])
    func copiesOfNothingAreRefusedWithTheReplicaUnchanged(_ what: String, region: Int, page: Int) throws {
        let replica = Replica(regions: regions, geometry: geometry)
        // A good record first: the refusal must undo nothing it staged.
        let body = pageCopy(step: 0, page: 0, from: (1, 0)) + pageCopy(step: 0, page: 0, from: (region, page))
        #expect(throws: DeltaError.self, "\(what)") { try replica.apply(try delta(body, records: 2)) }
        #expect(regions.map { Array($0.bytes) } == before, "\(what)")
    }

    @Test func aTruncatedCopyOrOneInAnOlderDeltaIsRefused() throws {
        let replica = Replica(regions: regions, geometry: geometry)
        let whole = pageCopy(step: 0, page: 1, from: (1, 1))
        #expect(throws: DeltaError.self) { try replica.apply(try delta(Array(whole.dropLast()), records: 1)) }
        #expect(throws: DeltaError.self) { try replica.apply(try delta(whole, records: 1, version: 4)) }
        #expect(regions.map { Array($0.bytes) } == before)
        try replica.apply(try delta(whole, records: 1))
        #expect(page(Array(regions[0].bytes), 1) == page(before[1], 1))
    }
}
