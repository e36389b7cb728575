/// The binary layout of an epoch delta (Docs/PROTOCOL.md is the reference; keep them in step).
///
///     header (48 bytes, little-endian)
///       0  magic "FGBD"            4  version (u16)         6  mode (u8)           7  compression (u8)
///       8  block size (u32)       12  page size (u32)      16  epoch (u64)
///      24  region count (u32)     28  record count (u32)   32  body length (u64)  40  stored length (u64)
///     stored body (stored length bytes: the body, compressed as the header says)
///     checksum: XXH3-64 of header and stored body (u64)
package enum DeltaFormat {
    package static let magic: [UInt8] = Array("FGBD".utf8)
    /// Written by this build: 2 added the block operation ``BlockOp/sparse``, 3 ``BlockOp/spliced``, 4 the
    /// splice pieces taken from what the backup holds (``SplicePiece/heldNearby``, ``SplicePiece/heldAt``),
    /// 5 the record kind ``RecordKind/pageCopy``.
    package static let version: UInt16 = 5
    /// Read by this build (a version-1 delta is a version-2 one without `sparse`, a version-2 one a version-3
    /// one without `spliced`, a version-3 one a version-4 one without held pieces, a version-4 one a version-5
    /// one without page copies).
    static let readableVersions: ClosedRange<UInt16> = 1...5
    package static let headerLength = 48
    package static let checksumLength = 8

    /// What a record describes: one page of one region.
    enum RecordKind: UInt8 {
        /// The whole page follows, as is.
        case pageRaw = 0
        /// A run-length difference against the backup's current page follows (ULEB128 length first).
        case pageDiff = 1
        /// The page is now all zeros.
        case pageZero = 2
        /// Some blocks of the page changed: a block list, then one block operation each.
        case blocks = 3
        /// The page is now a copy of the page the backup held, before this epoch, at (region, page), given as
        /// two ULEB128s. Version 5 on.
        case pageCopy = 4
    }

    /// How one changed block's new content is given.
    enum BlockOp: UInt8 {
        /// The block's bytes follow.
        case literal = 0
        /// A run-length difference against the backup's current block follows (ULEB128 length first).
        case diff = 1
        /// The block is all zeros.
        case zero = 2
        /// Copy the block the backup held, before this epoch, at (region, block) given as two ULEB128s.
        case copy = 3
        /// Copy the new content of an earlier block of this epoch, given by its ordinal (ULEB128).
        case copyEpoch = 4
        /// The block's non-zero bytes: a mask of block size / 8 bytes (bit i set: byte i is not zero), then
        /// those bytes in order. Version 2 on.
        case sparse = 5
        /// The block's bytes as pieces, in order, that cover it exactly: each a head (ULEB128: the piece's
        /// length shifted left by two, ored with its ``SplicePiece`` kind), then its literal bytes or where its
        /// source is (``SplicePiece``). Version 3 on.
        case spliced = 6
    }

    /// The kind of a piece of a ``BlockOp/spliced`` block (the low two bits of its head).
    enum SplicePiece: UInt64 {
        /// The piece's bytes follow.
        case literal = 0
        /// The piece repeats bytes given earlier in this epoch's delta: the distance (ULEB128) back from this
        /// block's start in the epoch's stream (the new content of this delta's blocks, in order) to the
        /// piece's source, which lies wholly before the block.
        case earlier = 1
        /// The piece repeats bytes the backup held before this epoch in this block's region: the source's
        /// byte position minus this block's, zigzag-encoded (ULEB128 of `d << 1 ^ d >> 63`). Version 4 on.
        case heldNearby = 2
        /// The piece repeats bytes the backup held before this epoch anywhere: the region, then the byte
        /// offset in it (two ULEB128s). Version 4 on.
        case heldAt = 3
    }
}

/// Why an epoch delta was refused. The replica is left exactly as it was.
public enum DeltaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The buffer ends before the structure it should hold.
    case truncated(String)
    /// Not an FGBI epoch delta.
    case badMagic
    /// A version this build does not read.
    case unsupportedVersion(UInt16)
    /// The checksum does not match the bytes: corrupted in transit or storage.
    case checksumMismatch
    /// The delta was made for other memory (block size, page size or region count differ).
    case geometryMismatch(String)
    /// An epoch other than the one expected next.
    case epochOutOfOrder(expected: UInt64, got: UInt64)
    /// A field is malformed or points outside the replica.
    case malformed(String)

    public var description: String {
        switch self {
        case .truncated(let what): return "epoch delta truncated: \(what)"
        case .badMagic: return "not an FGBI epoch delta (bad magic)"
        case .unsupportedVersion(let version):
            return
                """
                epoch delta version \(version) is not supported (this build reads \
                \(DeltaFormat.readableVersions.lowerBound) to \(DeltaFormat.readableVersions.upperBound))
                """
        case .checksumMismatch: return "epoch delta checksum mismatch: corrupted in transit or storage"
        case .geometryMismatch(let what): return "epoch delta does not fit this replica: \(what)"
        case .epochOutOfOrder(let expected, let got): return "epoch delta for epoch \(got), expected \(expected)"
        case .malformed(let what): return "malformed epoch delta: \(what)"
        }
    }
}
