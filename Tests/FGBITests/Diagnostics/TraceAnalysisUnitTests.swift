import FGBI
import FGBIDiagnostics
import Testing

/// The small pieces of the analysis: folding change masks, grouping shared content, the cost model.
@Suite("Trace analysis pieces")
struct TraceAnalysisUnitTests {
    @Test func foldingMarksALargerBlockWhenAnyPartChanged() {
        #expect(BlockSizeSweep.fold(0b1000_0001, factor: 1) == 0b1000_0001)
        #expect(BlockSizeSweep.fold(0b1000_0001, factor: 2) == 0b1001)
        #expect(BlockSizeSweep.fold(0b0110, factor: 2) == 0b11)
        #expect(BlockSizeSweep.fold(1 << 63, factor: 4) == 1 << 15)
        #expect(BlockSizeSweep.fold(1 << 40, factor: 64) == 1)
        #expect(BlockSizeSweep.fold(0, factor: 64) == 0)
        #expect(BlockSizeSweep.fold(~0, factor: 8) == 0xFF)
    }

    @Test func sharingGroupsCountGroupsOfTwoOrMore() {
        var hashes: [UInt64] = [5, 1, 5, 2, 5, 3, 3, 9]
        let groups = SharingGroups(grouping: &hashes)
        #expect(groups.groups == 2)
        #expect(groups.members == 5)
        #expect(groups.listedSizes == [3, 2])
        var none: [UInt64] = []
        #expect(SharingGroups(grouping: &none) == SharingGroups())
        var many = (0..<100).flatMap { [UInt64($0), UInt64($0)] }
        #expect(SharingGroups(grouping: &many).listedSizes.count == SharingGroups.listedGroups)
    }

    @Test func costModelCountsRecordsBlocksAndHashes() throws {
        var sweep = BlockSizeSweep()
        sweep.add(mask64: 0b11) // two adjacent 64-byte blocks of one page
        sweep.add(mask64: 1 << 63) // the last 64 bytes of another page
        sweep.add(mask64: 0) // an unchanged page costs nothing
        let costs = sweep.costs(regionLength: 1 << 20)
        let at64 = try #require(costs.first { $0.blockSize == 64 })
        #expect(at64.changedBlocks == 3 && at64.changedBytes == 192)
        // per page: 3 header bytes, a count byte, one index byte per block (fewer than 8), one op byte per block
        #expect(at64.recordBytes == (3 + 1 + 2 + 2) + (3 + 1 + 1 + 1))
        #expect(at64.hashBytes == (1 << 20) / 64 * 8)
        let at128 = try #require(costs.first { $0.blockSize == 128 })
        #expect(at128.changedBlocks == 2)
        let at4096 = try #require(costs.first { $0.blockSize == 4096 })
        #expect(at4096.changedBlocks == 2 && at4096.changedBytes == 8192)
        #expect(costs.first { $0.blockSize == 2048 }?.supported == false)
        #expect(BlockSizeSweep.cheapest(costs)?.supported == true)
    }
}
