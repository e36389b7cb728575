import CSupport

/// How FGBI cuts memory into blocks: the block size (64 bytes by default, as in the FGBI paper) and the
/// page size the tracker reports in.
public struct BlockGeometry: Sendable, Equatable, CustomStringConvertible {
    /// The block sizes FGBI supports: powers of two from 64 bytes to a page.
    public static let supportedBlockSizes = [64, 128, 256, 512, 1024, 4096]

    /// Bytes per block.
    public let blockSize: Int
    /// Bytes per page (the tracker's unit).
    public let pageSize: Int
    /// Blocks in one page (at most 64, so a page's changed blocks fit one 64-bit mask); stored, because the
    /// encoders ask per block and a division there showed in profiles.
    public let blocksPerPage: Int

    /// - Throws: ``FGBIError/invalidArgument(_:)`` for a size not in ``supportedBlockSizes`` or larger than a page.
    public init(blockSize: Int = 64, pageSize: Int = GuestMemory.pageSize) throws(FGBIError) {
        guard Self.supportedBlockSizes.contains(blockSize), blockSize <= pageSize, pageSize % blockSize == 0 else {
            throw .invalidArgument(
                """
                block size \(blockSize) is not one of \
                \(Self.supportedBlockSizes.map(String.init).joined(separator: ", "))
                """
            )
        }
        guard pageSize / blockSize <= 64 else {
            throw .invalidArgument("block size \(blockSize) gives more than 64 blocks per \(pageSize)-byte page")
        }
        self.blockSize = blockSize
        self.pageSize = pageSize
        blocksPerPage = pageSize / blockSize
    }

    /// Bytes of per-block hash metadata (one 64-bit hash per block) per GiB tracked.
    public var hashBytesPerGiB: Int { (1 << 30) / blockSize * 8 }

    /// The XXH3 hash of a block of zeros at this block size. A block whose hash differs is not all zeros, so
    /// an encoder checks the bytes only of blocks with this hash.
    public var zeroBlockHash: UInt64 {
        [UInt8](repeating: 0, count: blockSize).withUnsafeBytes { CSupport_xxh3_64($0.baseAddress, $0.count) }
    }

    public var description: String { "\(blockSize)-byte blocks in \(pageSize)-byte pages" }
}
