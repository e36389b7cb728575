import CSupport

@testable import FGBI

/// Hand-made pieces of epoch delta bodies (Docs/PROTOCOL.md), for tests of what the backup applies.
enum DeltaBodies {
    /// `value` as an unsigned LEB128.
    static func uleb(_ value: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        return bytes + [UInt8(rest)]
    }

    /// The sparse form of `block` (a multiple of 64 bytes): its mask of non-zero bytes, then those bytes.
    static func sparseForm(_ block: [UInt8]) -> [UInt8] {
        var form = [UInt8](repeating: 0, count: block.count / 8 + block.count)
        let length = form.withUnsafeMutableBufferPointer {
            CSupport_sparse_encode(block, block.count, $0.baseAddress, $0.count)
        }
        return Array(form[..<length])
    }

    /// A `blocks` record in region 0 for every block of the page `gap` pages after the last one (64-byte
    /// blocks), with `ops` (one operation and its operands per block).
    static func record(gap: Int, ops: [[UInt8]]) -> [UInt8] {
        precondition(ops.count == 64)
        return [0, UInt8(gap), DeltaFormat.RecordKind.blocks.rawValue, 64] + [UInt8](repeating: 0xFF, count: 8)
            + ops.joined()
    }

    /// Rewrites the checksum (XXH3-64 of every byte before it, the last 8 bytes) of `delta`, after a test has
    /// changed a header field, so that only the field lies.
    static func recomputeChecksum(_ delta: inout [UInt8]) {
        let checksum = delta.withUnsafeBytes { CSupport_xxh3_64($0.baseAddress, $0.count - 8) }
        withUnsafeBytes(of: checksum.littleEndian) { delta.replaceSubrange((delta.count - 8)..<delta.count, with: $0) }
    }
}
