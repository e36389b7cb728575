/// Where a block lives: a region and the block's index in it, packed in 64 bits (24 for the region, 40 for
/// the block, enough for 64 TiB of 64-byte blocks per region).
package struct BlockLocation: Hashable, Sendable, CustomStringConvertible {
    public let packed: UInt64

    public static let maxRegions = 1 << 24
    public static let maxBlocksPerRegion: UInt64 = 1 << 40

    public init(region: Int, block: Int) {
        packed = UInt64(region) << 40 | UInt64(block)
    }

    init(packed: UInt64) { self.packed = packed }

    public var region: Int { Int(packed >> 40) }
    public var block: Int { Int(packed & (Self.maxBlocksPerRegion - 1)) }

    public var description: String { "region \(region) block \(block)" }
}
