import CSupport

/// Writes `length` bytes as a run-length difference against `base` (operation `differenceCode`) when the
/// base is known and the difference is smaller than the bytes by a margin; else, when `sparseCode` is given,
/// in sparse form (a mask of its non-zero bytes, then those bytes) when that is smaller by the same margin;
/// else as the bytes themselves (operation `literalCode`). Shared by the block encoder (`fgbi`) and the page
/// encoder (`xbzrle`, which as QEMU's has no sparse form).
@inline(__always)
func writeDifferenceOrLiteral(_ bytes: UnsafeRawPointer, length: Int, base: UnsafeRawPointer?, scratch: UnsafeMutablePointer<UInt8>,
                              differenceCode: UInt8, sparseCode: UInt8? = nil, literalCode: UInt8,
                              into body: inout ByteWriter, stats: inout EpochStatistics) {
    let newBytes = bytes.assumingMemoryBound(to: UInt8.self)
    if let base {
        let encoded = CSupport_diff_encode(base.assumingMemoryBound(to: UInt8.self), newBytes, length, scratch, length - 4)
        if encoded >= 0 {
            body.byte(differenceCode)
            body.uleb(encoded)
            body.raw(scratch, count: encoded)
            stats.diffBlocks += 1
            return
        }
    }
    if let sparseCode {
        let encoded = CSupport_sparse_encode(newBytes, length, scratch, length - 4)
        if encoded > 0 {
            body.byte(sparseCode)
            body.raw(scratch, count: encoded)
            stats.sparseBlocks += 1
            return
        }
    }
    body.byte(literalCode)
    body.raw(bytes, count: length)
    stats.literalBlocks += 1
    stats.literalBytes += length
}
