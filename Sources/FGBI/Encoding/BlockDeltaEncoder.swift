import CSupport

#if canImport(Glibc)
import Glibc
#endif

/// The `fgbi` mode's encoder: turns an epoch's changed blocks into `blocks` records, choosing per block
/// the cheapest form the backup can rebuild exactly:
/// 1. zero: the block is all zeros;
/// 2. copy-epoch: identical (bitwise) to a block sent earlier in this epoch;
/// 3. copy: identical (bitwise) to content the backup holds, found through the ``ContentIndex``;
/// 4. diff: a run-length difference against the block's previous content, when the index still holds it;
/// 5. literal: the bytes.
/// Then the index learns the epoch's new content. Runs after the guest resumes: it reads only the capture
/// and the index's own copies, never guest memory.
final class BlockDeltaEncoder {
    private let geometry: BlockGeometry
    private let index: ContentIndex
    /// This epoch's blocks by content key, for duplicates within the epoch; cleared after each epoch.
    private let epochBlocks: SlotTable
    private let epochCapacity: Int
    private var epochKeys: [UInt64] = []
    private var diff: UnsafeMutablePointer<UInt8>
    private var positions = RecordPositionWriter()

    init(geometry: BlockGeometry, index: ContentIndex, epochDuplicateCapacity: Int = 1 << 18) {
        self.geometry = geometry
        self.index = index
        epochCapacity = epochDuplicateCapacity
        epochBlocks = SlotTable(maximumCount: epochDuplicateCapacity)
        diff = .allocate(capacity: geometry.blockSize + 16)
    }

    deinit { diff.deallocate() }

    var metadataBytes: Int { epochBlocks.metadataBytes + geometry.blockSize }

    /// Encodes `capture` into `body`; returns the record count and fills the block counters of `stats`.
    func encode(_ capture: EpochCapture, into body: inout ByteWriter, stats: inout EpochStatistics) -> Int {
        let blocksPerPageShift = geometry.blocksPerPage.trailingZeroBitCount
        let maskBytes = (geometry.blocksPerPage + 7) / 8
        let locations = capture.locations
        positions.reset()
        var records = 0
        var i = 0
        let count = capture.count
        while i < count {
            let first = locations[i]
            let page = first.block >> blocksPerPageShift
            var end = i + 1
            while end < count, locations[end].region == first.region, locations[end].block >> blocksPerPageShift == page { end += 1 }
            positions.write(region: first.region, page: page, to: &body)
            body.byte(DeltaFormat.RecordKind.blocks.rawValue)
            writeBlockList(locations, from: i, to: end, maskBytes: maskBytes, into: &body)
            for item in i..<end { encodeBlock(item, capture, into: &body, stats: &stats) }
            records += 1
            i = end
        }
        learn(capture)
        stats.blocksDirty = count
        return records
    }

    /// The changed blocks of one page: their count, then their indices when that is shorter, else a mask.
    @inline(__always)
    private func writeBlockList(_ locations: UnsafeMutablePointer<BlockLocation>, from start: Int, to end: Int, maskBytes: Int,
                                into body: inout ByteWriter) {
        let indexMask = geometry.blocksPerPage - 1
        let count = end - start
        body.byte(UInt8(count))
        if count < maskBytes {
            for item in start..<end { body.byte(UInt8(locations[item].block & indexMask)) }
        } else {
            var mask: UInt64 = 0
            for item in start..<end { mask |= 1 << UInt64(locations[item].block & indexMask) }
            for byte in 0..<maskBytes { body.byte(UInt8(truncatingIfNeeded: mask >> UInt64(8 * byte))) }
        }
    }

    @inline(__always)
    private func encodeBlock(_ item: Int, _ capture: EpochCapture, into body: inout ByteWriter, stats: inout EpochStatistics) {
        let blockSize = geometry.blockSize
        let bytes = UnsafeRawPointer(capture.item(item))
        if CSupport_is_zero(bytes, blockSize) != 0 {
            body.byte(DeltaFormat.BlockOp.zero.rawValue)
            stats.zeroBlocks += 1
            return
        }
        let hash = capture.newHashes[item]
        let key = index.keying.key(hash)
        if let earlier = epochBlocks.find(key) {
            if memcmp(capture.item(Int(earlier)), bytes, blockSize) == 0 {
                body.byte(DeltaFormat.BlockOp.copyEpoch.rawValue)
                body.uleb(Int(earlier))
                stats.sharedHits += 1
                return
            }
            stats.collisions += 1
        } else if epochKeys.count < epochCapacity {
            epochBlocks.set(key, UInt32(item))
            epochKeys.append(key)
        }
        if let candidate = index.candidate(for: hash) {
            if memcmp(candidate.bytes, bytes, blockSize) == 0 {
                body.byte(DeltaFormat.BlockOp.copy.rawValue)
                body.uleb(candidate.location.region)
                body.uleb(candidate.location.block)
                stats.sharedHits += 1
                return
            }
            stats.collisions += 1
        }
        if let previous = index.content(at: capture.locations[item], hash: capture.oldHashes[item]) {
            let length = CSupport_diff_encode(previous.assumingMemoryBound(to: UInt8.self), bytes.assumingMemoryBound(to: UInt8.self),
                                              blockSize, diff, blockSize - 4)
            if length >= 0 {
                body.byte(DeltaFormat.BlockOp.diff.rawValue)
                body.uleb(length)
                body.raw(diff, count: length)
                stats.diffBlocks += 1
                return
            }
        }
        body.byte(DeltaFormat.BlockOp.literal.rawValue)
        body.raw(bytes, count: blockSize)
        stats.literalBlocks += 1
        stats.literalBytes += blockSize
    }

    /// After the epoch: retire index entries for content the backup no longer holds, then add the new
    /// content, and forget this epoch's duplicate table.
    private func learn(_ capture: EpochCapture) {
        let (locations, oldHashes, newHashes) = (capture.locations, capture.oldHashes, capture.newHashes)
        for item in 0..<capture.count {
            index.retire(hash: oldHashes[item], at: locations[item])
        }
        let blockSize = geometry.blockSize
        for item in 0..<capture.count where CSupport_is_zero(capture.item(item), blockSize) == 0 {
            index.add(hash: newHashes[item], at: locations[item], bytes: capture.item(item))
        }
        for key in epochKeys { epochBlocks.remove(key) }
        epochKeys.removeAll(keepingCapacity: true)
    }
}
