/// The header of a `blocks` record (DeltaFormat): the page's position, the record kind, and its changed
/// blocks as a count followed by their indices or, when that is shorter, a mask; and where a capture's
/// blocks of one page end. Shared by the one-thread and the parallel `fgbi` encoders.
enum BlockRecordHeader {
    /// Where the blocks of the page of item `start` end (at most `limit`); `limit` when `start` is.
    @inline(__always)
    static func pageEnd(
        _ locations: UnsafeMutablePointer<BlockLocation>, from start: Int, limit: Int, blocksPerPageShift: Int
    ) -> Int {
        guard start < limit else { return limit }
        var end = start + 1
        while end < limit, samePage(locations[end], locations[start], blocksPerPageShift: blocksPerPageShift) {
            end += 1
        }
        return end
    }

    /// Writes the header of the `blocks` record of the page whose changed blocks are `start..<end`.
    @inline(__always)
    static func write(
        _ locations: UnsafeMutablePointer<BlockLocation>, from start: Int, to end: Int,
        blocksPerPageShift: Int, maskBytes: Int, positions: inout RecordPositionWriter,
        into body: inout ByteWriter
    ) {
        let first = locations[start]
        positions.write(region: first.region, page: first.block >> blocksPerPageShift, to: &body)
        writeKindAndBlocks(
            locations, from: start, to: end, blocksPerPageShift: blocksPerPageShift, maskBytes: maskBytes, into: &body)
    }

    /// Writes the header of the `blocks` record of the page whose changed blocks are `start..<end`, after its
    /// position: its kind and block list.
    @inline(__always)
    static func writeKindAndBlocks(
        _ locations: UnsafeMutablePointer<BlockLocation>, from start: Int, to end: Int,
        blocksPerPageShift: Int, maskBytes: Int, into body: inout ByteWriter
    ) {
        body.byte(DeltaFormat.RecordKind.blocks.rawValue)
        writeBlockList(
            locations, from: start, to: end, blocksPerPage: 1 << blocksPerPageShift, maskBytes: maskBytes, into: &body)
    }

    /// Whether two block locations lie in the same page.
    @inline(__always)
    static func samePage(_ a: BlockLocation, _ b: BlockLocation, blocksPerPageShift: Int) -> Bool {
        a.region == b.region && a.block >> blocksPerPageShift == b.block >> blocksPerPageShift
    }

    /// The changed blocks of one page: their count, then their indices when that is shorter, else a mask.
    @inline(__always)
    private static func writeBlockList(
        _ locations: UnsafeMutablePointer<BlockLocation>, from start: Int, to end: Int, blocksPerPage: Int,
        maskBytes: Int, into body: inout ByteWriter
    ) {
        let indexMask = blocksPerPage - 1
        let count = end - start
        body.byte(UInt8(count))
        if count < maskBytes {
            for item in start..<end { body.byte(UInt8(locations[item].block & indexMask)) }
        } else {
            var mask: UInt64 = 0
            if count == blocksPerPage {
                mask = blocksPerPage == 64 ? ~0 : (1 << UInt64(blocksPerPage)) - 1
            } else {
                for item in start..<end { mask |= 1 << UInt64(locations[item].block & indexMask) }
            }
            if maskBytes == 8 {
                body.littleEndian(mask)
            } else {
                for byte in 0..<maskBytes { body.byte(UInt8(truncatingIfNeeded: mask >> UInt64(8 * byte))) }
            }
        }
    }
}
