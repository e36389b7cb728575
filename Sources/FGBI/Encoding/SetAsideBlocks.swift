/// The blocks one shard of ``ParallelBlockDeltaEncoder``'s first step set aside because they need the content
/// index, in the epoch's order: their locations, old and new hashes and bytes (copied, so that they stay valid
/// whatever the shard's reader does next), their numbers among the shard's blocks, and where each one's
/// encoding belongs in the shard's segment (its hole). The second step writes where each one's encoding ends
/// in its body (``ends``). Allocates only when an epoch sets aside more blocks than every earlier one.
final class SetAsideBlocks {
    let blockSize: Int
    private(set) var count = 0
    private var capacity = 0
    private(set) var locations: UnsafeMutablePointer<BlockLocation>
    private(set) var oldHashes: UnsafeMutablePointer<UInt64>
    private(set) var newHashes: UnsafeMutablePointer<UInt64>
    private(set) var ordinals: UnsafeMutablePointer<Int>
    private(set) var holes: UnsafeMutablePointer<Int>
    private(set) var ends: UnsafeMutablePointer<Int>
    private(set) var bytes: UnsafeMutableRawPointer

    init(blockSize: Int) {
        self.blockSize = blockSize
        locations = .allocate(capacity: 1)
        oldHashes = .allocate(capacity: 1)
        newHashes = .allocate(capacity: 1)
        ordinals = .allocate(capacity: 1)
        holes = .allocate(capacity: 1)
        ends = .allocate(capacity: 1)
        bytes = .allocate(byteCount: blockSize, alignment: 64)
    }

    deinit {
        locations.deallocate()
        oldHashes.deallocate()
        newHashes.deallocate()
        ordinals.deallocate()
        holes.deallocate()
        ends.deallocate()
        bytes.deallocate()
    }

    /// Forgets the last epoch's blocks (their memory is reused).
    func reset() { count = 0 }

    /// Keeps block `item` of `page`, numbered `ordinal` in the shard, to be encoded at `hole`.
    @inline(__always)
    func keep(_ page: EpochCapture.View, item: Int, ordinal: Int, hole: Int) {
        if count == capacity { grow() }
        locations[count] = page.locations[item]
        oldHashes[count] = page.oldHashes[item]
        newHashes[count] = page.newHashes[item]
        ordinals[count] = ordinal
        holes[count] = hole
        (bytes + count * blockSize).copyMemory(from: page.item(item), byteCount: blockSize)
        count += 1
    }

    /// The blocks as a capture view (numbered by ``ordinals``, not by their place in it).
    var view: EpochCapture.View {
        EpochCapture.View(locations: locations, oldHashes: oldHashes, newHashes: newHashes, arena: bytes, itemSize: blockSize,
                          count: count, firstOrdinal: 0)
    }

    /// Bytes held.
    var metadataBytes: Int { capacity * (blockSize + MemoryLayout<BlockLocation>.stride + 5 * 8) }

    /// Twice the room (at least 4096 blocks), keeping the blocks held.
    private func grow() {
        let newCapacity = max(capacity * 2, 4096)
        func moved<T>(_ old: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
            let new = UnsafeMutablePointer<T>.allocate(capacity: newCapacity)
            new.moveInitialize(from: old, count: count)
            old.deallocate()
            return new
        }
        locations = moved(locations)
        oldHashes = moved(oldHashes)
        newHashes = moved(newHashes)
        ordinals = moved(ordinals)
        holes = moved(holes)
        ends = moved(ends)
        let newBytes = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * blockSize, alignment: 64)
        newBytes.copyMemory(from: bytes, byteCount: count * blockSize)
        bytes.deallocate()
        bytes = newBytes
        capacity = newCapacity
    }
}
