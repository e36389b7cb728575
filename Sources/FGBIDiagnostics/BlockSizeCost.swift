import FGBI

/// What one block size would have cost for a traced run, in a simple model of FGBI's `blocks` records
/// (Docs/PROTOCOL.md): per changed page, a record header (position and kind) and a block list; per changed
/// block, an operation byte and the block's bytes; plus the 8-byte hash per block of the region that the
/// primary keeps. Compression, copies, zero and difference operations are left out: the model compares
/// block sizes, it does not predict the wire.
public struct BlockSizeCost: Codable, Sendable, Equatable {
    /// Bytes per block.
    public var blockSize: Int
    /// Whether `--block-size` accepts this size (``BlockGeometry/supportedBlockSizes``).
    public var supported: Bool
    /// Changed blocks over the run.
    public var changedBlocks: Int
    /// Their bytes: changed blocks times the block size.
    public var changedBytes: Int
    /// Record headers, block lists and operation bytes over the run.
    public var recordBytes: Int
    /// One 8-byte hash per block of the region.
    public var hashBytes: Int
    /// `changedBytes + recordBytes + hashBytes`.
    public var totalBytes: Int

    public init(
        blockSize: Int, supported: Bool, changedBlocks: Int, changedBytes: Int, recordBytes: Int, hashBytes: Int
    ) {
        self.blockSize = blockSize
        self.supported = supported
        self.changedBlocks = changedBlocks
        self.changedBytes = changedBytes
        self.recordBytes = recordBytes
        self.hashBytes = hashBytes
        totalBytes = changedBytes + recordBytes + hashBytes
    }
}

/// Accumulates, page by page, what every candidate block size from 64 bytes to a page would have sent, from
/// each changed page's 64-byte change mask: a larger block changed when any of its 64-byte parts did.
public struct BlockSizeSweep: Sendable {
    /// The candidate block sizes: every power of two from 64 bytes to a 4 KiB page.
    public static let candidateSizes = [64, 128, 256, 512, 1024, 2048, 4096]
    /// Bytes of a record's position and kind: a page gap and a kind byte, about 3 bytes.
    public static let recordHeaderBytes = 3

    private var changedBlocks = [Int](repeating: 0, count: candidateSizes.count)
    private var recordBytes = [Int](repeating: 0, count: candidateSizes.count)

    public init() {}

    /// Counts one page whose 64-byte blocks changed as `mask64` says (bit i: bytes 64i..<64i+64).
    public mutating func add(mask64: UInt64) {
        guard mask64 != 0 else { return }
        for (index, size) in Self.candidateSizes.enumerated() {
            let blocksPerPage = 4096 / size
            let changed = Self.fold(mask64, factor: size / 64).nonzeroBitCount
            changedBlocks[index] += changed
            // count byte, then indices or a mask (whichever the format picks), then one op byte per block
            let maskBytes = (blocksPerPage + 7) / 8
            let list = changed < maskBytes ? changed : maskBytes
            recordBytes[index] += Self.recordHeaderBytes + 1 + list + changed
        }
    }

    /// The cost of every candidate size for a region of `regionLength` bytes.
    public func costs(regionLength: Int) -> [BlockSizeCost] {
        Self.candidateSizes.enumerated().map { index, size in
            BlockSizeCost(
                blockSize: size, supported: BlockGeometry.supportedBlockSizes.contains(size),
                changedBlocks: changedBlocks[index], changedBytes: changedBlocks[index] * size,
                recordBytes: recordBytes[index], hashBytes: regionLength / size * 8)
        }
    }

    /// The cheapest size among those `--block-size` accepts (ties go to the smaller size).
    public static func cheapest(_ costs: [BlockSizeCost]) -> BlockSizeCost? {
        costs.filter(\.supported).min { ($0.totalBytes, $0.blockSize) < ($1.totalBytes, $1.blockSize) }
    }

    /// Folds a 64-bit change mask of 64-byte blocks into one of blocks `factor` times larger: bit j of the
    /// result is set when any of bits `factor*j ..< factor*(j+1)` is. `factor` is a power of two up to 64.
    public static func fold(_ mask: UInt64, factor: Int) -> UInt64 {
        guard factor > 1 else { return mask }
        let groupMask: UInt64 = factor >= 64 ? ~0 : (UInt64(1) << UInt64(factor)) - 1
        var result: UInt64 = 0
        for group in 0..<(64 / factor) where (mask >> UInt64(group * factor)) & groupMask != 0 {
            result |= UInt64(1) << UInt64(group)
        }
        return result
    }
}
