import CSupport

/// One 64-bit XXH3 hash per block of a region: the hash of the content the backup holds there.
///
/// Starts with every block hashed as zeros, since a new backup's replica starts zero-filled (or as unknown, for
/// a backup that holds content of its own and is resynchronised); each epoch the
/// pages the tracker reports are rehashed in place and the changed blocks found (``rehash(page:in:previous:)``).
package final class BlockTable: @unchecked Sendable {
    public let geometry: BlockGeometry
    /// Blocks in the region.
    public let blockCount: Int
    private let hashes: UnsafeMutablePointer<UInt64>

    /// The hash of a block of zeros at this geometry's block size.
    public let zeroHash: UInt64

    /// A hash standing for "content unknown": a resynchronised backup's blocks start at it, so every block
    /// of a page that differs from the backup's counts as changed and is sent.
    public static let unknownHash: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// A table for a region whose backup holds zeros, or (`unknown`) content this table cannot know.
    public init(regionLength: Int, geometry: BlockGeometry, unknown: Bool = false) {
        self.geometry = geometry
        blockCount = regionLength / geometry.blockSize
        zeroHash = geometry.zeroBlockHash
        hashes = HugePageMemory.allocate(UInt64.self, capacity: blockCount)
        hashes.initialize(repeating: unknown ? Self.unknownHash : zeroHash, count: blockCount)
    }

    deinit { hashes.deallocate() }

    /// The recorded hash of `block`.
    @inline(__always)
    public subscript(block: Int) -> UInt64 { hashes[block] }

    /// The recorded hashes of page `page`'s blocks, in order (valid as long as the table).
    @inline(__always)
    func hashes(ofPage page: Int) -> UnsafeMutablePointer<UInt64> { hashes + page * geometry.blocksPerPage }

    /// Rehashes the blocks of page `page` read from `pageBytes`, storing the new hashes; the old ones are
    /// written to `previous[0..<blocksPerPage]`. Returns a mask with bit i set when block i changed.
    @inline(__always)
    public func rehash(page: Int, in pageBytes: UnsafeRawPointer, previous: UnsafeMutablePointer<UInt64>) -> UInt64 {
        let blocks = geometry.blocksPerPage
        return CSupport_rehash_page(pageBytes, geometry.blockSize, blocks, hashes + page * blocks, previous)
    }

    /// Records `hashes` (`blocksPerPage` per page, in order) as what the backup holds in the pages from
    /// `firstPage` on: a resynchronisation that learned them from the backup (``BlockHashExchange``).
    func record(_ hashes: ArraySlice<UInt64>, fromPage firstPage: Int) {
        precondition(
            hashes.count % geometry.blocksPerPage == 0
                && firstPage * geometry.blocksPerPage + hashes.count <= blockCount)
        var block = firstPage * geometry.blocksPerPage
        for hash in hashes {
            self.hashes[block] = hash
            block += 1
        }
    }

    /// Bytes of metadata this table holds.
    public var metadataBytes: Int { blockCount * MemoryLayout<UInt64>.stride }
}
