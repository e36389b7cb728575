/// The blocks one shard of ``ParallelBlockDeltaEncoder``'s first step set aside because they need the content
/// index, in the epoch's order: a capture of their locations, hashes and bytes (copied, so that they stay valid
/// whatever the shard's reader does next), their numbers among the shard's blocks, and where each one's
/// encoding belongs in the shard's segment (its hole). The second step notes where each one's encoding ends in
/// its body (``ends``). Allocates only when an epoch sets aside more blocks than every earlier one.
final class SetAsideBlocks {
    private let blocks = EpochCapture()
    private let blockSize: Int
    private(set) var ordinals: [Int] = []
    private(set) var holes: [Int] = []
    /// Where each block's encoding ends in the second step's body, filled by it.
    var ends: [Int] = []

    init(blockSize: Int) {
        self.blockSize = blockSize
        blocks.reset(epoch: 0, itemSize: blockSize)
    }

    var count: Int { blocks.count }

    /// Forgets the last epoch's blocks (their memory is reused).
    func reset() {
        blocks.reset(epoch: 0, itemSize: blockSize)
        ordinals.removeAll(keepingCapacity: true)
        holes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    /// Keeps block `item` of `page`, numbered `ordinal` in the shard, to be encoded at `hole`.
    @inline(__always)
    func keep(_ page: EpochCapture.View, item: Int, ordinal: Int, hole: Int) {
        blocks.append(
            page.locations[item], from: page.item(item), oldHash: page.oldHashes[item], newHash: page.newHashes[item])
        ordinals.append(ordinal)
        holes.append(hole)
    }

    /// The blocks as a capture view (numbered by ``ordinals``, not by their place in it).
    var view: EpochCapture.View { blocks.view }

    /// Bytes held.
    var metadataBytes: Int { blocks.metadataBytes + (ordinals.capacity + holes.capacity + ends.capacity) * 8 }
}
