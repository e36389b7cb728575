import CSupport

/// Finds a changed block's bytes, at any offset, among the blocks sent earlier in the same epoch, so that the
/// `fgbi` encoder can send the block as a splice (``DeltaFormat/BlockOp/spliced``): pieces copied from the
/// epoch's earlier new content and literal bytes between them. For memory whose content moves (B-tree pages
/// copied on write, nodes shifted within pages, objects moved by a collector) the same bytes come back at
/// another offset within the epoch, where neither a copy (whole aligned blocks) nor a difference (the same
/// offset) finds them.
///
/// The encoder records each block it sends (``record(_:ordinal:)``): its bytes go to a stream in the epoch's
/// order, and its *anchors* to a table. An anchor is a position whose 4 bytes hash, through one
/// multiplication, to a value with its top bits clear (one position in ``anchorOneIn``), found by
/// `CSupport_block_anchors` (8 positions per multiply with AVX2): chosen by content, so the same bytes are
/// anchors wherever they lie. Its table entry comes from its 8 bytes. ``splice(_:ordinal:limit:)`` looks up
/// the anchors of a new block, confirms each candidate bitwise (8 bytes, then extended both ways), and keeps
/// the pieces when they are shorter than `limit`. A table entry is only a hint: a stale or colliding one fails
/// the bitwise comparison, so the table is never cleared, and a piece is sent only where the bytes are equal.
/// A block's anchors are found once, when the encoder prefetches its table entries a few blocks ahead
/// (``prefetchEntries(_:ordinal:)``), and kept for its lookup and its record.
///
/// Positions in the stream are those of the backup's staging order: the `ordinal`-th block of the epoch
/// starts at `ordinal * blockSize` (``DeltaFormat``), and a piece names its source by the distance back from
/// its block's start. Recorded blocks need not be consecutive (zero blocks and blocks encoded without the
/// index are not recorded): a match extends across two recorded blocks only when their ordinals follow.
/// Allocates only when the stream outgrows what it held before; the stream stops at ``maximumStreamBytes``.
final class EpochMatcher {
    /// One position in this many, on average, is an anchor.
    static let anchorOneIn = 8
    /// Pieces shorter than this go as literal bytes: a piece costs a head and a distance (2-5 bytes).
    static let minimumPiece = 10
    /// The most bytes an epoch's stream holds (positions are 32-bit); blocks beyond are not recorded.
    static let maximumStreamBytes = 1 << 30
    /// Blocks whose anchors are kept between ``prefetchEntries(_:ordinal:)`` and ``record(_:ordinal:)``.
    static let anchorSets = 16

    private let blockSize: Int
    private let blockShift: Int
    /// Per anchor hash (direct-mapped): 32 bits of the hash above the stream position + 1 of the last anchor
    /// seen with it (0: none), so that most misses are told apart without reading the stream.
    private let table: UnsafeMutablePointer<UInt64>
    private let tableMask: Int
    // The mutable state is only ever used by the one encoder that owns the matcher: unchecked, as a checked
    // class property costs a runtime exclusivity check per access.
    /// The recorded blocks' bytes, in order, and each one's ordinal.
    @exclusivity(unchecked) private var stream: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var ordinals: UnsafeMutablePointer<UInt32>
    @exclusivity(unchecked) private var capacityBlocks: Int
    @exclusivity(unchecked) private var recorded = 0
    /// The anchors of the last ``anchorSets`` blocks looked at, by ordinal: for each, the ordinal (-1: none),
    /// the count, and per anchor its offset and its table entry's index and tag.
    private let anchorOrdinals: UnsafeMutablePointer<Int>
    private let anchorCounts: UnsafeMutablePointer<Int>
    private let anchorOffsets: UnsafeMutablePointer<UInt16>
    private let anchorEntries: UnsafeMutablePointer<UInt64>
    /// The pieces of the splice being built.
    @exclusivity(unchecked) private var pieces = ByteWriter(reservingCapacity: 1024)

    /// A matcher for blocks of `blockSize` bytes with a table of `tableEntries` anchors (a power of two).
    init(blockSize: Int, tableEntries: Int = 1 << 20) {
        precondition(tableEntries > 0 && tableEntries & (tableEntries - 1) == 0, "table of \(tableEntries)")
        precondition(blockSize >= 16 && blockSize & (blockSize - 1) == 0, "blocks of \(blockSize) bytes")
        self.blockSize = blockSize
        blockShift = blockSize.trailingZeroBitCount
        tableMask = tableEntries - 1
        table = HugePageMemory.allocate(UInt64.self, capacity: tableEntries)
        table.initialize(repeating: 0, count: tableEntries)
        capacityBlocks = 1024
        stream = .allocate(byteCount: capacityBlocks * blockSize, alignment: 64)
        ordinals = .allocate(capacity: capacityBlocks)
        anchorOrdinals = .allocate(capacity: Self.anchorSets)
        anchorOrdinals.initialize(repeating: -1, count: Self.anchorSets)
        anchorCounts = .allocate(capacity: Self.anchorSets)
        anchorCounts.initialize(repeating: 0, count: Self.anchorSets)
        anchorOffsets = .allocate(capacity: Self.anchorSets * blockSize)
        anchorEntries = .allocate(capacity: Self.anchorSets * blockSize)
    }

    deinit {
        table.deallocate()
        stream.deallocate()
        ordinals.deallocate()
        anchorOrdinals.deallocate()
        anchorCounts.deallocate()
        anchorOffsets.deallocate()
        anchorEntries.deallocate()
    }

    /// Bytes held: the table and the stream as grown so far.
    var metadataBytes: Int {
        (tableMask + 1) * 8 + capacityBlocks * (blockSize + 4) + Self.anchorSets * blockSize * 16 + pieces.count
    }

    /// Starts a new epoch: the stream empties (the table's entries go stale, and fail their comparison).
    func beginEpoch() {
        recorded = 0
        anchorOrdinals.update(repeating: -1, count: Self.anchorSets)
    }

    /// Starts loading the table entries of the anchors of `bytes`, the epoch's `ordinal`-th block, which is
    /// about to be looked up or recorded (within the next ``anchorSets`` blocks).
    @inline(__always)
    func prefetchEntries(_ bytes: UnsafeRawPointer, ordinal: Int) {
        let set = anchors(of: bytes, ordinal: ordinal)
        let first = set * blockSize
        for anchor in first..<(first + anchorCounts[set]) {
            CSupport_prefetch(table + Int(truncatingIfNeeded: anchorEntries[anchor] & 0xFFFF_FFFF))
        }
    }

    /// Adds a block sent as the epoch's `ordinal`-th (ordinals increase) to the stream and its anchors to
    /// the table. Blocks past ``maximumStreamBytes``, or with an ordinal past 32 bits, are not recorded.
    @inline(__always)
    func record(_ bytes: UnsafeRawPointer, ordinal: Int) {
        guard (recorded + 1) << blockShift <= Self.maximumStreamBytes, ordinal <= UInt32.max else { return }
        if recorded == capacityBlocks { grow() }
        let set = anchors(of: bytes, ordinal: ordinal)
        let start = recorded << blockShift
        (stream + start).copyMemory(from: bytes, byteCount: blockSize)
        ordinals[recorded] = UInt32(truncatingIfNeeded: ordinal)
        let first = set * blockSize
        for anchor in first..<(first + anchorCounts[set]) {
            let entry = anchorEntries[anchor]
            table[Int(truncatingIfNeeded: entry & 0xFFFF_FFFF)] =
                entry & ~0xFFFF_FFFF | UInt64(start + Int(anchorOffsets[anchor]) + 1)
        }
        recorded += 1
    }

    /// Finds pieces for `bytes`, the epoch's `ordinal`-th block, and returns whether they take (with the
    /// operation's code) fewer than `limit` bytes: then ``writeSplice(code:into:)`` writes them.
    @inline(__always)
    func splice(_ bytes: UnsafeRawPointer, ordinal: Int, limit: Int) -> Bool {
        guard recorded > 0 else { return false }
        let set = anchors(of: bytes, ordinal: ordinal)
        let count = anchorCounts[set]
        guard count > 0 else { return false }
        let here = UInt64(ordinal) << UInt64(blockShift)
        let streamEnd = recorded << blockShift
        pieces.removeAll()
        var covered = 0
        var references = 0
        let first = set * blockSize
        for anchor in first..<(first + count) {
            let offset = Int(anchorOffsets[anchor])
            guard offset >= covered else { continue }
            let wanted = anchorEntries[anchor]
            let entry = table[Int(truncatingIfNeeded: wanted & 0xFFFF_FFFF)]
            let position = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
            guard entry >> 32 == wanted >> 32, position >= 0, position + 8 <= streamEnd else { continue }
            guard let match = extend(bytes, at: offset, source: position, from: covered, streamEnd: streamEnd)
            else { continue }
            let sourcePosition =
                UInt64(ordinals[match.source >> blockShift]) << UInt64(blockShift)
                + UInt64(match.source & (blockSize - 1))
            guard sourcePosition + UInt64(match.length) <= here else { continue }
            writeLiteral(bytes, from: covered, to: match.start)
            pieces.uleb(UInt64(match.length) << 2 | DeltaFormat.SplicePiece.earlier.rawValue)
            pieces.uleb(here - sourcePosition)
            covered = match.start + match.length
            references += 1
            if pieces.count >= limit { return false }
        }
        guard references > 0 else { return false }
        writeLiteral(bytes, from: covered, to: blockSize)
        return pieces.count + 1 < limit
    }

    /// Writes the splice the last ``splice(_:ordinal:limit:)`` found: operation `code`, then its pieces.
    @inline(__always)
    func writeSplice(code: UInt8, into body: inout ByteWriter) {
        body.byte(code)
        body.raw(pieces.bytes.baseAddress!, count: pieces.count)
    }

    /// Appends a literal piece of `bytes[start..<end]` to the pieces, if not empty.
    @inline(__always)
    private func writeLiteral(_ bytes: UnsafeRawPointer, from start: Int, to end: Int) {
        guard end > start else { return }
        pieces.uleb(UInt64(end - start) << 2 | DeltaFormat.SplicePiece.literal.rawValue)
        pieces.raw(bytes + start, count: end - start)
    }

    /// The longest run of equal bytes through `bytes[offset..<offset + 8]` and the stream at `source`, from
    /// no earlier than `floor` in the block, if it is at least ``minimumPiece`` long. Compared 8 bytes at a time;
    /// the stream counts as continuous across a recorded block's end only where the next one's ordinal follows.
    @inline(__always)
    private func extend(_ bytes: UnsafeRawPointer, at offset: Int, source: Int, from floor: Int, streamEnd: Int)
        -> (start: Int, source: Int, length: Int)?
    {
        guard continuous(from: source, to: source + 8),
            bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                == stream.loadUnaligned(fromByteOffset: source, as: UInt64.self)
        else { return nil }
        // Forward, from the 8 bytes on: at most one recorded block's end lies within reach (under a block).
        let to = source + 8
        var ahead = min(blockSize - offset - 8, streamEnd - to)
        let end = ((to - 1) >> blockShift + 1) << blockShift
        if to + ahead > end, !continuous(from: end - 1, to: end + 1) { ahead = end - to }
        let forward = Self.commonPrefix(bytes + offset + 8, stream + to, ahead)
        // Backward, from the 8 bytes' start.
        var back = min(offset - floor, source)
        let start = (source >> blockShift) << blockShift
        if source - back < start, !continuous(from: start - 1, to: start + 1) { back = source - start }
        let backward = Self.commonSuffix(bytes + offset, stream + source, back)
        let length = backward + 8 + forward
        guard length >= Self.minimumPiece else { return nil }
        return (offset - backward, source - backward, length)
    }

    /// How many of the first `count` bytes at `a` and `b` are equal, up to the first that differs.
    @inline(__always)
    private static func commonPrefix(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Int {
        var done = 0
        while done + 8 <= count {
            let difference =
                a.loadUnaligned(fromByteOffset: done, as: UInt64.self)
                ^ b.loadUnaligned(fromByteOffset: done, as: UInt64.self)
            if difference != 0 { return done + UInt64(littleEndian: difference).trailingZeroBitCount / 8 }
            done += 8
        }
        while done < count, a.load(fromByteOffset: done, as: UInt8.self) == b.load(fromByteOffset: done, as: UInt8.self)
        {
            done += 1
        }
        return done
    }

    /// How many of the `count` bytes before `a` and before `b` are equal, back to the first that differs.
    @inline(__always)
    private static func commonSuffix(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Int {
        var done = 0
        while done + 8 <= count {
            let difference =
                a.loadUnaligned(fromByteOffset: -done - 8, as: UInt64.self)
                ^ b.loadUnaligned(fromByteOffset: -done - 8, as: UInt64.self)
            if difference != 0 { return done + UInt64(littleEndian: difference).leadingZeroBitCount / 8 }
            done += 8
        }
        while done < count,
            a.load(fromByteOffset: -done - 1, as: UInt8.self) == b.load(fromByteOffset: -done - 1, as: UInt8.self)
        {
            done += 1
        }
        return done
    }

    /// Whether stream bytes `a` and `b - 1` (a < b, at most one block apart) are consecutive in the epoch:
    /// in one recorded block, or in two whose ordinals follow.
    @inline(__always)
    private func continuous(from a: Int, to b: Int) -> Bool {
        let first = a >> blockShift
        let last = (b - 1) >> blockShift
        return first == last || ordinals[last] == ordinals[first] &+ 1
    }

    /// The set of `bytes`' anchors (the epoch's `ordinal`-th block): kept from an earlier call for the same
    /// ordinal, else found now.
    @inline(__always)
    private func anchors(of bytes: UnsafeRawPointer, ordinal: Int) -> Int {
        let set = ordinal & (Self.anchorSets - 1)
        if anchorOrdinals[set] == ordinal { return set }
        anchorOrdinals[set] = ordinal
        let first = set * blockSize
        let count = CSupport_block_anchors(
            bytes.assumingMemoryBound(to: UInt8.self), blockSize, UInt32(Self.anchorOneIn.trailingZeroBitCount),
            UInt64(tableMask), anchorOffsets + first, anchorEntries + first)
        anchorCounts[set] = count
        return set
    }

    private func grow() {
        let bigger = min(capacityBlocks * 2, Self.maximumStreamBytes >> blockShift)
        let newStream = UnsafeMutableRawPointer.allocate(byteCount: bigger << blockShift, alignment: 64)
        newStream.copyMemory(from: stream, byteCount: recorded << blockShift)
        stream.deallocate()
        stream = newStream
        let newOrdinals = UnsafeMutablePointer<UInt32>.allocate(capacity: bigger)
        newOrdinals.update(from: ordinals, count: recorded)
        ordinals.deallocate()
        ordinals = newOrdinals
        capacityBlocks = bigger
    }
}
