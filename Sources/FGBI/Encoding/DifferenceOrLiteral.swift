import CSupport

/// Writes `length` bytes as a run-length difference against `base` (operation `differenceCode`) when the
/// base is known and the difference is smaller than the bytes by a margin; else, when `sparseCode` is given,
/// in sparse form (a mask of its non-zero bytes, then those bytes) when that is smaller by the same margin;
/// else as the bytes themselves (operation `literalCode`). A difference longer than a sparse form's mask is
/// also weighed against the sparse form, and the shorter goes: a base unrelated to the new content (the
/// location was rewritten whole) makes a long difference. Shared by the block encoder (`fgbi`) and the page
/// encoder (`xbzrle`, which as QEMU's has no sparse form). `scratch` holds `length + 16` bytes, twice that
/// with a `sparseCode`. A 64-byte block (the default) is weighed and written in one pass by the shim
/// (`CSupport_block64_encode`, the same choice and bytes), straight into `body`.
@inline(__always)
func writeDifferenceOrLiteral(
    _ bytes: UnsafeRawPointer, length: Int, base: UnsafeRawPointer?, scratch: UnsafeMutablePointer<UInt8>,
    differenceCode: UInt8, sparseCode: UInt8? = nil, literalCode: UInt8,
    into body: inout ByteWriter, stats: inout EpochStatistics
) {
    let newBytes = bytes.assumingMemoryBound(to: UInt8.self)
    if length == 64 {
        // The default block size: both forms weighed from one pass, only the winner written.
        var form: Int32 = 0
        body.append(upTo: 74) { out, _ in
            Int(
                CSupport_block64_encode(
                    base?.assumingMemoryBound(to: UInt8.self), newBytes, sparseCode == nil ? 0 : 1,
                    differenceCode, sparseCode ?? 0, literalCode,
                    out.assumingMemoryBound(to: UInt8.self), &form))
        }
        switch form {
        case 1: stats.diffBlocks += 1
        case 2: stats.sparseBlocks += 1
        default:
            stats.literalBlocks += 1
            stats.literalBytes += length
        }
        return
    }
    if let base {
        let encoded = CSupport_diff_encode(
            base.assumingMemoryBound(to: UInt8.self), newBytes, length, scratch, length - 4)
        if encoded >= 0 {
            if let sparseCode, encoded > length / 8 + 1 {
                // Strictly shorter on the wire than the difference with its length prefix.
                let prefix = encoded < 128 ? 1 : encoded < 16384 ? 2 : 3
                let sparse = scratch + length + 16
                let sparseLength = CSupport_sparse_encode(newBytes, length, sparse, encoded + prefix - 1)
                if sparseLength > 0 {
                    body.byte(sparseCode)
                    body.raw(sparse, count: sparseLength)
                    stats.sparseBlocks += 1
                    return
                }
            }
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
