import Testing

@testable import FGBI

/// A run of blocks in sparse form (`DeltaFormat.BlockOp.sparse`), which the backup decodes in one shim call
/// (`CSupport_sparse_decode_blocks`) up to the first block that is not sparse or not next in place: runs cut by
/// other operations and by gaps in the page's mask land where they belong, with every block size, and a form
/// or an operation byte cut short is refused with the replica left as it was.
@Suite("Sparse runs")
struct SparseRunTests {
    /// A block of `size` bytes, zero but for a few bytes that depend on `seed`.
    private static func sparseBlock(_ size: Int, seed: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        for k in 0..<(1 + seed % 7) { bytes[(seed * 13 + k * 29) % size] = UInt8(truncatingIfNeeded: seed + k + 1) }
        return bytes
    }

    /// The delta of one `blocks` record for page 0 of one region, `mask` its blocks, `body` their operations.
    private static func delta(geometry: BlockGeometry, mask: UInt64, operations: [UInt8]) throws -> [UInt8] {
        let maskBytes = (geometry.blocksPerPage + 7) / 8
        var body: [UInt8] = [0, 0, DeltaFormat.RecordKind.blocks.rawValue, UInt8(mask.nonzeroBitCount)]
        if mask.nonzeroBitCount < maskBytes { // a list of the blocks' indices, shorter than the mask
            body += (0..<geometry.blocksPerPage).filter { mask >> UInt64($0) & 1 != 0 }.map { UInt8($0) }
        } else {
            withUnsafeBytes(of: mask.littleEndian) { body += $0.prefix(maskBytes) }
        }
        body += operations
        let assembler = DeltaAssembler(mode: .fgbi, compression: Compression.none, geometry: geometry, regionCount: 1)
        var delta = ByteWriter()
        _ = try body.withUnsafeBytes { try assembler.assemble(epoch: 0, records: 1, body: $0, into: &delta) }
        return delta.array
    }

    @Test("runs cut by other operations and by gaps decode to their places", arguments: [64, 128, 256, 1024])
    func runsDecodeToTheirPlaces(blockSize: Int) throws {
        let geometry = try BlockGeometry(blockSize: blockSize)
        let blocks = geometry.blocksPerPage
        let memory = try GuestMemory.anonymous(length: GuestMemory.pageSize)
        var expected = [UInt8](repeating: 0, count: GuestMemory.pageSize)
        // Every block but a gap of two in the middle; a literal after the first three sparse ones, a zero block
        // later: runs of 3, of the rest before the gap, and after it.
        var mask: UInt64 = blocks == 64 ? ~0 : (1 << UInt64(blocks)) - 1
        let gap = blocks / 2
        mask &= ~(3 << UInt64(gap))
        var operations: [UInt8] = []
        var pending = mask
        while pending != 0 {
            let index = pending.trailingZeroBitCount
            pending &= pending - 1
            let content: [UInt8]
            switch index {
            case 3:
                content = (0..<blockSize).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
                operations += [DeltaFormat.BlockOp.literal.rawValue] + content
            case blocks - 2:
                content = [UInt8](repeating: 0, count: blockSize)
                operations += [DeltaFormat.BlockOp.zero.rawValue]
            default:
                content = Self.sparseBlock(blockSize, seed: index)
                operations += [DeltaFormat.BlockOp.sparse.rawValue] + DeltaBodies.sparseForm(content)
            }
            expected.replaceSubrange((index * blockSize)..<((index + 1) * blockSize), with: content)
        }
        let replica = Replica(regions: [memory], geometry: geometry)
        try replica.apply(try Self.delta(geometry: geometry, mask: mask, operations: operations))
        #expect(Array(memory.bytes) == expected)
    }

    @Test("a form or an operation byte cut short is refused and nothing is written")
    func cutShortIsRefused() throws {
        let geometry = try BlockGeometry(blockSize: 64)
        let memory = try GuestMemory.anonymous(length: GuestMemory.pageSize)
        memory.base.initializeMemory(as: UInt8.self, repeating: 0xA5, count: memory.length)
        let before = Array(memory.bytes)
        let replica = Replica(regions: [memory], geometry: geometry)
        var whole: [UInt8] = []
        for index in 0..<3 {
            whole +=
                [DeltaFormat.BlockOp.sparse.rawValue] + DeltaBodies.sparseForm(Self.sparseBlock(64, seed: index + 1))
        }
        // Three blocks in the mask: the third form one byte short, then its operation byte missing.
        for cut in [1, DeltaBodies.sparseForm(Self.sparseBlock(64, seed: 3)).count + 1] {
            let delta = try Self.delta(geometry: geometry, mask: 0b111, operations: Array(whole.dropLast(cut)))
            #expect(throws: DeltaError.self, "cut by \(cut)") { try replica.apply(delta) }
            #expect(Array(memory.bytes) == before, "cut by \(cut)")
        }
        // And whole, it applies.
        try replica.apply(try Self.delta(geometry: geometry, mask: 0b111, operations: whole))
        #expect(Array(memory.bytes[0..<64]) == Self.sparseBlock(64, seed: 1))
        #expect(Array(memory.bytes[128..<192]) == Self.sparseBlock(64, seed: 3))
    }
}
