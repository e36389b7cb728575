import Testing

@testable import FGBI

/// A delta's spliced blocks (`DeltaFormat.BlockOp.spliced`), applied by the backup: pieces of literal bytes,
/// of bytes given earlier in the same delta (at any offset, across block boundaries, from blocks that were
/// themselves spliced) and of bytes the regions held before the epoch (in the block's region or another, up to
/// a region's ends, from blocks the same delta overwrites); and every malformed splice refused with the
/// replica left as it was.
@Suite("Spliced blocks")
struct SplicedBlockTests {
    private static let literal = DeltaFormat.SplicePiece.literal.rawValue
    private static let earlier = DeltaFormat.SplicePiece.earlier.rawValue
    private static let heldNearby = DeltaFormat.SplicePiece.heldNearby.rawValue
    private static let heldAt = DeltaFormat.SplicePiece.heldAt.rawValue

    /// A spliced block's operation: pieces of literal bytes (`.literal`), of `length` bytes from `distance`
    /// back in the epoch's stream, or of bytes held before the epoch `displacement` bytes from the block's
    /// start in its region, or at `offset` in `region`.
    private enum Piece {
        case literal([UInt8])
        case earlier(length: Int, distance: Int)
        case held(length: Int, displacement: Int)
        case heldAt(length: Int, region: Int, offset: Int)
    }

    private static func spliced(_ pieces: [Piece]) -> [UInt8] {
        [DeltaFormat.BlockOp.spliced.rawValue]
            + pieces.flatMap { piece -> [UInt8] in
                switch piece {
                case .literal(let bytes): return DeltaBodies.uleb(bytes.count << 2 | Int(literal)) + bytes
                case .earlier(let length, let distance):
                    return DeltaBodies.uleb(length << 2 | Int(earlier)) + DeltaBodies.uleb(distance)
                case .held(let length, let displacement):
                    let zigzag = UInt64(bitPattern: Int64(displacement) << 1 ^ Int64(displacement) >> 63)
                    return DeltaBodies.uleb(length << 2 | Int(heldNearby)) + DeltaBodies.uleb(Int(zigzag))
                case .heldAt(let length, let region, let offset):
                    return DeltaBodies.uleb(length << 2 | Int(heldAt)) + DeltaBodies.uleb(region)
                        + DeltaBodies.uleb(offset)
                }
            }
    }

    private static func delta(
        _ body: [UInt8], records: Int, version: UInt16 = DeltaFormat.version, regions: Int = 1
    ) throws -> [UInt8] {
        let geometry = try BlockGeometry(blockSize: 64)
        let assembler = DeltaAssembler(
            mode: .fgbi, compression: Compression.none, geometry: geometry, regionCount: regions)
        var delta = ByteWriter()
        _ = try body.withUnsafeBytes { try assembler.assemble(epoch: 0, records: records, body: $0, into: &delta) }
        var bytes = delta.array
        guard version != DeltaFormat.version else { return bytes }
        // An older version: the header's field, and the checksum over header and body.
        bytes[4] = UInt8(version & 0xFF)
        bytes[5] = UInt8(version >> 8)
        DeltaBodies.recomputeChecksum(&bytes)
        return bytes
    }

    /// Random words, and a replica of 4 pages (and with `second`, a second region of 2).
    private static func replica(second: Bool = false) throws -> (Replica, GuestMemory, [UInt8]) {
        let memory = try GuestMemory.anonymous(length: 4 * GuestMemory.pageSize)
        var regions = [memory]
        if second { regions.append(try GuestMemory.anonymous(length: 2 * GuestMemory.pageSize)) }
        var random = SeededRandom(seed: 29)
        for region in regions {
            let words = region.base.assumingMemoryBound(to: UInt64.self)
            for word in 0..<(region.length / 8) { words[word] = random.next() }
        }
        return (Replica(regions: regions, geometry: try BlockGeometry(blockSize: 64)), memory, Array(memory.bytes))
    }

    @Test func piecesRebuildShiftedContentAcrossBlocksAndFromSplices() throws {
        let (replica, memory, _) = try Self.replica()
        // Page 0: literal blocks of fresh bytes (the stream's first 4096 bytes).
        var random = SeededRandom(seed: 31)
        let fresh = (0..<GuestMemory.pageSize).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let page0 = (0..<64).map { [DeltaFormat.BlockOp.literal.rawValue] + Array(fresh[($0 * 64)..<($0 * 64 + 64)]) }
        // Page 1, block k (stream position 4096 + 64k): 3 literal bytes, then 40 bytes from stream position
        // 64k + 5 (page 0, shifted by 2), then 21 bytes from 64k + 60 (across page 0's blocks k and k + 1;
        // for the last block, into page 1's first block, itself spliced).
        let page1 = (0..<64).map { k -> [UInt8] in
            let here = 4096 + 64 * k
            return Self.spliced([
                .literal([0xA0, UInt8(k), 0xA2]),
                .earlier(length: 40, distance: here - (64 * k + 5)),
                .earlier(length: 21, distance: here - (64 * k + 60)),
            ])
        }
        // Page 2, block k: the whole of the stream's first block, once read as a splice of one piece
        // (distance = here: the stream's start), once of page 1's block k in two pieces.
        let page2 = (0..<64).map { k -> [UInt8] in
            let here = 8192 + 64 * k
            return k.isMultiple(of: 2)
                ? Self.spliced([.earlier(length: 64, distance: here)])
                : Self.spliced([.earlier(length: 30, distance: 4096), .earlier(length: 34, distance: 4096 - 30)])
        }
        let body =
            DeltaBodies.record(gap: 0, ops: page0) + DeltaBodies.record(gap: 0, ops: page1)
            + DeltaBodies.record(gap: 0, ops: page2)
        try replica.apply(try Self.delta(body, records: 3))

        var stream = fresh
        for k in 0..<64 {
            var block: [UInt8] = [0xA0, UInt8(k), 0xA2]
            block += stream[(64 * k + 5)..<(64 * k + 45)]
            // Bytes past the stream's end at this point are this block's own: none here (64k + 81 <= 4096 + 64k).
            block += stream[(64 * k + 60)..<(64 * k + 81)]
            stream += block
        }
        for k in 0..<64 {
            let here = 8192 + 64 * k
            stream += k.isMultiple(of: 2) ? Array(stream[0..<64]) : Array(stream[(here - 4096)..<(here - 4096 + 64)])
        }
        let after = Array(memory.bytes)
        #expect(Array(after[0..<(3 * GuestMemory.pageSize)]) == stream)
    }

    @Test func heldPiecesRebuildWhatTheRegionsHeldBeforeTheEpoch() throws {
        let (replica, memory, before) = try Self.replica(second: true)
        let other = replica.regions[1]
        let otherBefore = Array(other.bytes)
        // Page 0, block k: overwritten with fresh bytes, first in the delta.
        var random = SeededRandom(seed: 37)
        let fresh = (0..<GuestMemory.pageSize).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let page0 = (0..<64).map { [DeltaFormat.BlockOp.literal.rawValue] + Array(fresh[($0 * 64)..<($0 * 64 + 64)]) }
        // Page 3 (the region's last), block k: 20 bytes page 0 held at 64k + 3 (which this delta overwrote
        // before), 24 bytes of its own block's old bytes shifted by 5 (a B-tree shift; the last block's reach the
        // region's end), 20 bytes region 1 held at 64k + 1.
        let page3 = (0..<64).map { k -> [UInt8] in
            let here = 3 * 4096 + 64 * k
            return Self.spliced([
                .held(length: 20, displacement: 64 * k + 3 - here),
                .held(length: 24, displacement: k == 63 ? 40 : 25),
                .heldAt(length: 20, region: 1, offset: 64 * k + 1),
            ])
        }
        let body = DeltaBodies.record(gap: 0, ops: page0) + DeltaBodies.record(gap: 2, ops: page3)
        try replica.apply(try Self.delta(body, records: 2, regions: 2))

        var expected = fresh + Array(before[4096..<(3 * 4096)])
        for k in 0..<64 {
            let here = 3 * 4096 + 64 * k
            expected += before[(64 * k + 3)..<(64 * k + 23)]
            let shifted = here + (k == 63 ? 40 : 25)
            expected += before[shifted..<(shifted + 24)]
            expected += otherBefore[(64 * k + 1)..<(64 * k + 21)]
        }
        #expect(Array(memory.bytes) == expected)
        #expect(Array(other.bytes) == otherBefore)
    }

    @Test(
        "a malformed splice is refused and changes no byte",
        arguments: [
            "a piece from its own block", "a piece before the stream", "a piece past the block", "an empty piece",
            "pieces short of the block", "a splice in a version-2 delta", "a held piece in a version-3 delta",
            "a held piece before the region", "a held piece past the region's end", "a held piece in no region",
        ])
    func malformedSplicesAreRefused(_ defect: String) throws {
        let (replica, memory, before) = try Self.replica()
        let literal = (0..<64).map { _ in [DeltaFormat.BlockOp.literal.rawValue] + [UInt8](repeating: 7, count: 64) }
        var ops = literal
        var version = DeltaFormat.version
        let here = 4096 + 64 * 9 // page 1, block 9
        switch defect {
        case "a piece from its own block": ops[9] = Self.spliced([.earlier(length: 64, distance: 32)])
        case "a piece before the stream": ops[9] = Self.spliced([.earlier(length: 64, distance: here + 1)])
        case "a piece past the block":
            ops[9] = Self.spliced([.literal([1, 2]), .earlier(length: 63, distance: 100)])
        case "an empty piece": ops[9] = Self.spliced([.literal([]), .earlier(length: 64, distance: 100)])
        case "pieces short of the block": ops[9] = Self.spliced([.earlier(length: 60, distance: 100)])
        case "a held piece in a version-3 delta":
            ops[9] = Self.spliced([.held(length: 64, displacement: 64)])
            version = 3
        case "a held piece before the region": ops[9] = Self.spliced([.held(length: 64, displacement: -here - 1)])
        case "a held piece past the region's end":
            ops[9] = Self.spliced([.literal([1]), .held(length: 63, displacement: 4 * 4096 - here - 62)])
        case "a held piece in no region": ops[9] = Self.spliced([.heldAt(length: 64, region: 1, offset: 0)])
        default:
            ops[9] = Self.spliced([.earlier(length: 64, distance: 100)])
            version = 2
        }
        let body = DeltaBodies.record(gap: 0, ops: literal) + DeltaBodies.record(gap: 0, ops: ops)
        #expect(throws: DeltaError.self) { try replica.apply(try Self.delta(body, records: 2, version: version)) }
        #expect(Array(memory.bytes) == before)
    }
}
