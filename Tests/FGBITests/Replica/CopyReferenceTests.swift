import Testing

@testable import FGBI

/// A delta's copies, applied by the backup: a copy of the replica's own block reads it as it was before the
/// epoch, even where the same epoch rewrites it, and a copy of an earlier block of the epoch reads what that
/// block became, itself a copy or a copy of one.
@Suite("Copy references")
struct CopyReferenceTests {
    @Test func copiesReadThePreviousEpochAndCopiesOfCopiesSeeThemFilled() throws {
        let geometry = try BlockGeometry(blockSize: 64)
        let memory = try GuestMemory.anonymous(length: 4 * GuestMemory.pageSize)
        var random = SeededRandom(seed: 17)
        let words = memory.base.assumingMemoryBound(to: UInt64.self)
        for word in 0..<(memory.length / 8) { words[word] = random.next() }
        let before = Array(memory.bytes)
        let replica = Replica(regions: [memory], geometry: geometry)

        // Page 0: blocks 0-39 copied from page 1, blocks 40-63 copies of this epoch's block three before (the
        // first ones of copies, the later ones of those).
        // Page 1: every block copied from page 0 as it was before the epoch (page 0 is rewritten by the same
        // epoch). Page 3: copies of page 2's blocks in reverse order.
        let copy = DeltaFormat.BlockOp.copy.rawValue
        let copyEpoch = DeltaFormat.BlockOp.copyEpoch.rawValue
        let page0 = (0..<64).map { block in
            block < 40 ? [copy, 0] + DeltaBodies.uleb(64 + block) : [copyEpoch] + DeltaBodies.uleb(block - 3)
        }
        let page1 = (0..<64).map { [copy, 0] + DeltaBodies.uleb($0) }
        let page3 = (0..<64).map { [copy, 0] + DeltaBodies.uleb(128 + 63 - $0) }
        let body =
            DeltaBodies.record(gap: 0, ops: page0) + DeltaBodies.record(gap: 0, ops: page1)
            + DeltaBodies.record(gap: 1, ops: page3)
        let assembler = DeltaAssembler(
            mode: .fgbi, compression: Compression.none, geometry: geometry, regionCount: 1)
        var delta = ByteWriter()
        _ = try body.withUnsafeBytes { try assembler.assemble(epoch: 0, records: 3, body: $0, into: &delta) }
        try replica.apply(delta.array)

        let after = Array(memory.bytes)
        func block(_ bytes: [UInt8], _ index: Int) -> ArraySlice<UInt8> { bytes[(index * 64)..<(index * 64 + 64)] }
        for index in 0..<64 {
            var source = index
            while source >= 40 { source -= 3 }
            source += 64
            #expect(block(after, index) == block(before, source), "page 0 block \(index)")
            #expect(block(after, 64 + index) == block(before, index), "page 1 block \(index)")
            #expect(block(after, 128 + index) == block(before, 128 + index), "page 2 block \(index) unchanged")
            #expect(block(after, 192 + index) == block(before, 128 + 63 - index), "page 3 block \(index)")
        }
    }
}
