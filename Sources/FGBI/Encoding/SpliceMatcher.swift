import CSupport

/// Finds a changed block's bytes, at any offset, in the blocks the content index stores, so that the `fgbi`
/// encoder can send the block as a splice (``DeltaFormat/BlockOp/spliced``): pieces copied from content the
/// backup holds or will hold, and literal bytes between them. For memory whose content moves (B-tree pages
/// copied on write, nodes shifted within pages, objects moved by a collector) the same bytes come back at
/// another offset, where neither a copy (whole aligned blocks) nor a difference (the same offset) finds them.
///
/// The sources are the index's stored copies (``ContentIndex``), each of which names content the backup has:
/// a copy stored this epoch is the new content of the epoch's block with its ordinal (a piece from
/// ``DeltaFormat/SplicePiece/earlier`` in the epoch's stream); a copy still in use, or retired this epoch,
/// is what the backup held before this epoch at its location (a piece held in the regions,
/// ``DeltaFormat/SplicePiece/heldNearby`` or ``DeltaFormat/SplicePiece/heldAt``). The index says which
/// (``ContentIndex/spliceSource(_:)``) when a piece is found, so a table entry never goes out of date in a way
/// that matters: the slot it names is read as it is now.
///
/// The encoder records each block the index stores (``record(_:ordinal:hash:slot:)``): the block's *anchors* go to
/// a table, each naming the slot and the anchor's offset in it. An anchor is a position whose 4 bytes hash,
/// through one multiplication, to a value with its top bits clear (one position in ``anchorOneIn``), found by
/// `CSupport_block_anchors` (8 positions per multiply with AVX2): chosen by content, so the same bytes are
/// anchors wherever they lie. Its table entry comes from its 8 bytes, and keeps 23 bits of their hash as a
/// tag. ``splice(_:ordinal:hash:location:limit:index:)`` looks up the anchors of a new block, confirms each
/// candidate bitwise (8 bytes, then extended both ways within the block, and across the source block's edges
/// where the index holds what continues it), and keeps the pieces when they are shorter than `limit`. A table
/// entry is only a hint: a stale or colliding one fails the bitwise comparison, so the table is never cleared,
/// and a piece is sent only where the bytes are equal. A block's anchors are found once, when the encoder
/// prefetches its table entries a few blocks ahead (``prefetchEntries(_:ordinal:hash:)``), and kept for its lookup
/// and its record. Allocates only at creation.
final class SpliceMatcher {
    /// One position in this many, on average, is an anchor.
    static let anchorOneIn = 8
    /// Pieces shorter than this go as literal bytes: a piece costs a head and where its source is (2-6 bytes).
    static let minimumPiece = 10
    /// Blocks whose anchors are kept between ``prefetchEntries(_:ordinal:hash:)`` and ``record(_:ordinal:hash:slot:)``.
    static let anchorSets = 16
    /// A table entry: the tag in the top 23 bits, the slot + 1 in the 29 below, the offset in the low 12.
    private static let tagShift: UInt64 = 41
    private static let tagMask: UInt64 = ~(1 << 41 - 1)
    private static let slotShift: UInt64 = 12

    private let blockSize: Int
    private let blockShift: Int
    private let table: UnsafeMutablePointer<UInt64>
    private let tableMask: Int
    /// The anchors of the last ``anchorSets`` blocks looked at, by ordinal: for each, the ordinal (-1: none),
    /// the count, and per anchor its offset and its table entry's index and tag.
    private let anchorOrdinals: UnsafeMutablePointer<Int>
    private let anchorCounts: UnsafeMutablePointer<Int>
    private let anchorOffsets: UnsafeMutablePointer<UInt16>
    private let anchorEntries: UnsafeMutablePointer<UInt64>
    // The mutable state is only ever used by the one encoder that owns the matcher: unchecked, as a checked
    // class property costs a runtime exclusivity check per access.
    /// The pieces of the splice being built.
    @exclusivity(unchecked) private var pieces: ByteWriter
    /// Which blocks this epoch takes, from what the last epoch's splices saved.
    @exclusivity(unchecked) private(set) var admission = SpliceAdmission()

    /// A matcher for blocks of `blockSize` bytes (at most 4 KiB) with a table of `tableEntries` anchors (a
    /// power of two).
    init(blockSize: Int, tableEntries: Int = 1 << 22) {
        precondition(tableEntries > 0 && tableEntries & (tableEntries - 1) == 0, "table of \(tableEntries)")
        precondition(blockSize >= 16 && blockSize <= 4096 && blockSize & (blockSize - 1) == 0, "blocks of \(blockSize)")
        self.blockSize = blockSize
        blockShift = blockSize.trailingZeroBitCount
        tableMask = tableEntries - 1
        table = HugePageMemory.allocate(UInt64.self, capacity: tableEntries)
        table.initialize(repeating: 0, count: tableEntries)
        anchorOrdinals = .allocate(capacity: Self.anchorSets)
        anchorOrdinals.initialize(repeating: -1, count: Self.anchorSets)
        anchorCounts = .allocate(capacity: Self.anchorSets)
        anchorCounts.initialize(repeating: 0, count: Self.anchorSets)
        anchorOffsets = .allocate(capacity: Self.anchorSets * blockSize)
        anchorEntries = .allocate(capacity: Self.anchorSets * blockSize)
        // A splice is never longer than the block's literal form: head and bytes, plus a few pieces' heads.
        pieces = ByteWriter(reservingCapacity: 2 * blockSize + 64)
    }

    deinit {
        table.deallocate()
        anchorOrdinals.deallocate()
        anchorCounts.deallocate()
        anchorOffsets.deallocate()
        anchorEntries.deallocate()
    }

    /// Bytes held: the table, the anchor sets and the pieces' buffer.
    var metadataBytes: Int { (tableMask + 1) * 8 + Self.anchorSets * (blockSize * 10 + 16) + 2 * blockSize + 64 }

    /// Starts a new epoch: the anchor sets kept by ordinal are dropped (ordinals start again); counts in
    /// `stats` whether it is thinned.
    func beginEpoch(counting stats: inout EpochStatistics) {
        anchorOrdinals.update(repeating: -1, count: Self.anchorSets)
        stats.spliceThinnedEpochs = admission.thinned ? 1 : 0
    }

    /// Ends the epoch: which blocks the next one takes is chosen from this one's savings (``SpliceAdmission``).
    func endEpoch() { admission.endEpoch() }

    /// Notes the share of its bytes that the last delta body kept through the compressor, by which the
    /// splices' savings are weighed.
    func noteStoredShare(_ share: Double) { admission.noteStoredShare(share) }

    /// Starts loading the table entries of the anchors of `bytes`, the epoch's `ordinal`-th block (new hash
    /// `hash`), which is about to be looked up or recorded (within the next ``anchorSets`` blocks), if this
    /// epoch takes it.
    @inline(__always)
    func prefetchEntries(_ bytes: UnsafeRawPointer, ordinal: Int, hash: UInt64) {
        guard admission.admits(hash) else { return }
        let set = anchors(of: bytes, ordinal: ordinal)
        let first = set * blockSize
        for anchor in first..<(first + anchorCounts[set]) {
            CSupport_prefetch(table + Int(truncatingIfNeeded: anchorEntries[anchor] & 0xFFFF_FFFF))
        }
    }

    /// Enters the anchors of `bytes`, the epoch's `ordinal`-th block (new hash `hash`), just stored by the
    /// index in slot `slotPlusOne` - 1 (0: not stored, nothing to do), into the table, if this epoch takes it.
    @inline(__always)
    func record(_ bytes: UnsafeRawPointer, ordinal: Int, hash: UInt64, slot slotPlusOne: UInt32) {
        guard slotPlusOne != 0, admission.admits(hash) else { return }
        admission.countRecord()
        let set = anchors(of: bytes, ordinal: ordinal)
        let first = set * blockSize
        let named = UInt64(slotPlusOne) << Self.slotShift
        for anchor in first..<(first + anchorCounts[set]) {
            let entry = anchorEntries[anchor]
            table[Int(truncatingIfNeeded: entry & 0xFFFF_FFFF)] =
                entry & Self.tagMask | named | UInt64(anchorOffsets[anchor])
        }
    }

    /// Finds pieces for `bytes`, the epoch's `ordinal`-th block (new hash `hash`), at `location`, in the
    /// slots of `index`, if this epoch takes it, and returns whether they take (with the operation's code)
    /// fewer than `limit` bytes: then ``writeSplice(code:into:)`` writes them.
    @inline(__always)
    func splice<Index: BlockIndex>(
        _ bytes: UnsafeRawPointer, ordinal: Int, hash: UInt64, location: BlockLocation, limit: Int, index: Index
    ) -> Bool {
        guard admission.admits(hash) else { return false }
        let found = findPieces(bytes, ordinal: ordinal, location: location, limit: limit, index: index)
        admission.countLookup(saving: found ? limit - 1 - pieces.count : 0)
        return found
    }

    /// ``splice(_:ordinal:hash:location:limit:index:)``'s search.
    @inline(__always)
    private func findPieces<Index: BlockIndex>(
        _ bytes: UnsafeRawPointer, ordinal: Int, location: BlockLocation, limit: Int, index: Index
    ) -> Bool {
        let set = anchors(of: bytes, ordinal: ordinal)
        let count = anchorCounts[set]
        guard count > 0 else { return false }
        pieces.removeAll()
        var covered = 0
        var references = 0
        let first = set * blockSize
        for anchor in first..<(first + count) {
            let offset = Int(anchorOffsets[anchor])
            guard offset >= covered else { continue }
            let wanted = anchorEntries[anchor]
            let entry = table[Int(truncatingIfNeeded: wanted & 0xFFFF_FFFF)]
            guard entry >> Self.tagShift == wanted >> Self.tagShift,
                let source = index.spliceSource(UInt32(truncatingIfNeeded: entry >> Self.slotShift) & 0x1FFF_FFFF)
            else { continue }
            let sourceOffset = Int(entry & 0xFFF)
            guard sourceOffset + 8 <= blockSize,
                let match = extend(
                    bytes, at: offset, source: source, at: sourceOffset, from: covered, index: index),
                writePiece(match, source: source, ordinal: ordinal, location: location, bytes: bytes, from: covered)
            else { continue }
            covered = match.start + match.length
            references += 1
            if pieces.count >= limit { return false }
        }
        guard references > 0 else { return false }
        writeLiteral(bytes, from: covered, to: blockSize)
        return pieces.count + 1 < limit
    }

    /// Writes the splice the last ``splice(_:ordinal:hash:location:limit:index:)`` found: operation `code`, then
    /// its pieces.
    @inline(__always)
    func writeSplice(code: UInt8, into body: inout ByteWriter) {
        body.byte(code)
        body.raw(pieces.bytes.baseAddress!, count: pieces.count)
    }

    /// Appends the literal bytes from `covered` to `match`, then a piece naming `match`'s source: in the
    /// epoch's stream (distance back from this block, the `ordinal`-th, which must lie after it), or in the
    /// backup's regions (relative to `location` when in its region). Returns false, writing nothing, when the
    /// source is this epoch's and not wholly before the block.
    @inline(__always)
    private func writePiece(
        _ match: (start: Int, sourceStart: Int, length: Int), source: ContentIndex.SpliceSource, ordinal: Int,
        location: BlockLocation, bytes: UnsafeRawPointer, from covered: Int
    ) -> Bool {
        let head = UInt64(match.length) << 2
        if source.ordinal >= 0 {
            let here = ordinal << blockShift
            let from = source.ordinal << blockShift + match.sourceStart
            guard from + match.length <= here else { return false }
            writeLiteral(bytes, from: covered, to: match.start)
            pieces.uleb(head | DeltaFormat.SplicePiece.earlier.rawValue)
            pieces.uleb(UInt64(here - from))
            return true
        }
        writeLiteral(bytes, from: covered, to: match.start)
        let held = BlockLocation(packed: source.location)
        let from = held.block << blockShift + match.sourceStart
        if held.region == location.region {
            let displacement = Int64(from - location.block << blockShift)
            pieces.uleb(head | DeltaFormat.SplicePiece.heldNearby.rawValue)
            pieces.uleb(UInt64(bitPattern: displacement << 1 ^ displacement >> 63))
        } else {
            pieces.uleb(head | DeltaFormat.SplicePiece.heldAt.rawValue)
            pieces.uleb(UInt64(held.region))
            pieces.uleb(UInt64(from))
        }
        return true
    }

    /// Appends a literal piece of `bytes[start..<end]` to the pieces, if not empty.
    @inline(__always)
    private func writeLiteral(_ bytes: UnsafeRawPointer, from start: Int, to end: Int) {
        guard end > start else { return }
        pieces.uleb(UInt64(end - start) << 2 | DeltaFormat.SplicePiece.literal.rawValue)
        pieces.raw(bytes + start, count: end - start)
    }

    /// The longest run of equal bytes through `bytes[offset..<offset + 8]` (a block) and
    /// `source.bytes[sourceOffset..<+ 8]`, from no earlier than `floor` in the block, if it is at least
    /// ``minimumPiece`` long. It may cross the source block's edges, into the stored copies that continue it
    /// (``ContentIndex/spliceNeighbour(of:forward:)``): its start in the source is then negative, or its end
    /// past the block.
    @inline(__always)
    private func extend<Index: BlockIndex>(
        _ bytes: UnsafeRawPointer, at offset: Int, source: ContentIndex.SpliceSource, at sourceOffset: Int,
        from floor: Int, index: Index
    ) -> (start: Int, sourceStart: Int, length: Int)? {
        guard
            bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                == source.bytes.loadUnaligned(fromByteOffset: sourceOffset, as: UInt64.self)
        else { return nil }
        let ahead = blockSize - 8 - offset
        let aheadInSource = blockSize - 8 - sourceOffset
        var forward = Self.commonPrefix(
            bytes + offset + 8, source.bytes + sourceOffset + 8, min(ahead, aheadInSource))
        if forward == aheadInSource, ahead > aheadInSource, let next = index.spliceNeighbour(of: source, forward: true)
        {
            forward += Self.commonPrefix(bytes + offset + 8 + aheadInSource, next, ahead - aheadInSource)
        }
        let behind = offset - floor
        var backward = Self.commonSuffix(bytes + offset, source.bytes + sourceOffset, min(behind, sourceOffset))
        if backward == sourceOffset, behind > sourceOffset,
            let previous = index.spliceNeighbour(of: source, forward: false)
        {
            backward += Self.commonSuffix(bytes + offset - sourceOffset, previous + blockSize, behind - sourceOffset)
        }
        let length = backward + 8 + forward
        guard length >= Self.minimumPiece else { return nil }
        return (offset - backward, sourceOffset - backward, length)
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
}
