import CSupport

/// How `apply` stages a record's bytes before the commit: copies, zeros, differences, sparse and spliced blocks,
/// appended to the staging area with where in the regions each goes.
extension Replica {
    /// Stages a block given in sparse form (its mask of non-zero bytes, then those bytes) and with it, in one
    /// shim call, the blocks right after it whose forms are sparse too, at most `most` blocks in all (the caller
    /// counts the blocks that follow it in place). Returns the blocks staged, one after another from the first's
    /// staging offset; the reader moves past their forms and the operation bytes between them.
    func stageSparseRun(_ reader: inout ByteReader, region: Int, offset: Int, most: Int, what: Place)
        throws(DeltaError) -> Int
    {
        let blockSize = geometry.blockSize
        let forms = (reader.base + reader.offset).assumingMemoryBound(to: UInt8.self)
        let available = reader.remaining
        let stagingOffset = staging.count
        var blocks = -1
        var consumed = 0
        staging.append(upTo: most * blockSize) { destination, _ in
            blocks = CSupport_sparse_decode_blocks(
                forms, available, most, blockSize, DeltaFormat.BlockOp.sparse.rawValue,
                destination.assumingMemoryBound(to: UInt8.self), &consumed)
            return max(blocks, 0) * blockSize
        }
        guard blocks > 0 else { throw .truncated("\(what) sparse form") }
        _ = try reader.bytes(consumed, "\(what) sparse forms")
        append(Staged(region: region, offset: offset, length: blocks * blockSize, source: .staging(stagingOffset)))
        return blocks
    }

    /// Stages a copy of the block the replica held, before this epoch, at the (region, block) that follows. The
    /// bytes are staged (unlike a page copy's): a page's blocks, whatever their forms, then commit as one copy,
    /// where a block read at the commit would cut the page's entry in pieces (on LMDB's pages, a slower apply).
    func stageCopyOfHeldBlock(_ reader: inout ByteReader, region: Int, offset: Int, what: Place) throws(DeltaError) {
        let blockSize = geometry.blockSize
        let sourceRegion = try reader.uleb("\(what) source region")
        let sourceBlock = try reader.uleb("\(what) source block")
        guard sourceRegion < UInt64(regions.count),
            sourceBlock < UInt64(regions[Int(sourceRegion)].length / blockSize)
        else {
            throw .malformed(
                "\(what): copy from region \(sourceRegion) block \(sourceBlock), which does not exist")
        }
        stageCopy(
            of: regions[Int(sourceRegion)].base + Int(sourceBlock) * blockSize, region: region, offset: offset,
            length: blockSize)
    }

    /// Stages a copy of the page the replica held, before this epoch, at the (region, page) that follows (a
    /// ``DeltaFormat/RecordKind/pageCopy`` record), read at the commit.
    func stageCopyOfHeldPage(_ reader: inout ByteReader, region: Int, offset: Int, record: Int) throws(DeltaError) {
        let pageSize = geometry.pageSize
        let sourceRegion = try reader.uleb("record \(record) source region")
        let sourcePage = try reader.uleb("record \(record) source page")
        guard sourceRegion < UInt64(regions.count), sourcePage < UInt64(regions[Int(sourceRegion)].pageCount) else {
            throw .malformed(
                "record \(record): copy of region \(sourceRegion) page \(sourcePage), which does not exist")
        }
        stageHeld(
            region: region, offset: offset, length: pageSize,
            from: .held(region: Int(sourceRegion), offset: Int(sourcePage) * pageSize))
    }

    /// Stages a block given as pieces (``DeltaFormat/BlockOp/spliced``): literal bytes, bytes repeated from
    /// earlier in this epoch's stream (the staged new content of the delta's blocks so far, in order: block
    /// `k` of the stream is staged at `blockOrdinals[k]`), and, from `version` 4 on, bytes the regions held
    /// before this epoch. Every piece is checked before any byte is staged.
    func stageSpliced(_ reader: inout ByteReader, region: Int, offset: Int, version: UInt16, what: Place)
        throws(DeltaError)
    {
        let blockSize = geometry.blockSize
        let here = (blockOrdinals.count - 1) * blockSize // this block's start in the stream
        let first = reader
        var covered = 0
        while covered < blockSize {
            let head = try reader.uleb("\(what) piece")
            let length = head >> 2
            guard length >= 1, length <= UInt64(blockSize - covered) else {
                throw .malformed("\(what): a piece of \(length) bytes at byte \(covered) of \(blockSize)")
            }
            let kind = DeltaFormat.SplicePiece(rawValue: head & 3)!
            guard version >= 4 || kind == .literal || kind == .earlier else {
                throw .malformed("\(what): piece kind \(kind.rawValue) in a version-\(version) delta")
            }
            switch kind {
            case .literal:
                _ = try reader.bytes(Int(length), "\(what) piece bytes")
            case .earlier:
                let distance = try reader.uleb("\(what) piece distance")
                guard distance >= length, distance <= UInt64(here) else {
                    throw .malformed(
                        "\(what): a piece of \(length) bytes from \(distance) back, not wholly earlier in this epoch")
                }
            case .heldNearby, .heldAt:
                _ = try heldSource(&reader, kind: kind, length: Int(length), region: region, offset: offset, what: what)
            }
            covered += Int(length)
        }
        let ordinals = blockOrdinals
        var pieces = first
        stage(region: region, offset: offset, length: blockSize) { destination, stagingStart in
            // Read again: every piece was checked above, so none of these reads fails.
            var at = 0
            while at < blockSize {
                guard let head = try? pieces.uleb("piece"), head >> 2 > 0 else { return }
                let length = Int(head >> 2)
                switch DeltaFormat.SplicePiece(rawValue: head & 3)! {
                case .literal:
                    guard let bytes = try? pieces.bytes(length, "piece bytes") else { return }
                    (destination + at).copyMemory(from: bytes, byteCount: length)
                case .earlier:
                    guard let distance = try? pieces.uleb("piece distance") else { return }
                    var source = here - Int(distance)
                    var done = 0
                    while done < length {
                        let within = source % blockSize
                        let chunk = min(length - done, blockSize - within)
                        (destination + at + done).copyMemory(
                            from: stagingStart + ordinals[source / blockSize] + within, byteCount: chunk)
                        done += chunk
                        source += chunk
                    }
                case let kind:
                    guard
                        let source = try? heldSource(
                            &pieces, kind: kind, length: length, region: region, offset: offset, what: what)
                    else { return }
                    (destination + at).copyMemory(from: source, byteCount: length)
                }
                at += length
            }
        }
    }

    /// The bytes a held piece (``DeltaFormat/SplicePiece/heldNearby`` or ``DeltaFormat/SplicePiece/heldAt``)
    /// of `length` bytes names, for the block at (`region`, `offset`): the regions as they were before this
    /// epoch (staging leaves them untouched until the commit). Throws unless they lie wholly inside a region.
    private func heldSource(
        _ reader: inout ByteReader, kind: DeltaFormat.SplicePiece, length: Int, region: Int, offset: Int, what: Place
    ) throws(DeltaError) -> UnsafeRawPointer {
        let sourceRegion: UInt64
        let position: UInt64
        if kind == .heldNearby {
            let zigzag = try reader.uleb("\(what) piece displacement")
            let displacement = Int64(bitPattern: zigzag >> 1 ^ (0 &- (zigzag & 1)))
            sourceRegion = UInt64(region)
            position = UInt64(bitPattern: Int64(offset) &+ displacement)
        } else {
            sourceRegion = try reader.uleb("\(what) piece source region")
            position = try reader.uleb("\(what) piece source offset")
        }
        guard sourceRegion < UInt64(regions.count), position < UInt64(regions[Int(sourceRegion)].length),
            UInt64(length) <= UInt64(regions[Int(sourceRegion)].length) - position
        else {
            throw .malformed(
                """
                \(what): a piece of \(length) bytes held at region \(sourceRegion) byte \
                \(Int64(bitPattern: position)), outside the regions
                """
            )
        }
        return UnsafeRawPointer(regions[Int(sourceRegion)].base + Int(position))
    }

    /// Stages the replica's current bytes at (region, offset) with a run-length difference applied.
    func stageDiff(_ reader: inout ByteReader, region: Int, offset: Int, length: Int, what: Place)
        throws(DeltaError)
    {
        let encodedLength = try reader.uleb("\(what) difference length")
        guard encodedLength <= UInt64(reader.remaining) else { throw .truncated("\(what) difference") }
        let encoded = try reader.bytes(Int(encodedLength), "\(what) difference")
        let current = regions[region].base + offset
        var ok = true
        stage(region: region, offset: offset, length: length) { destination, _ in
            destination.copyMemory(from: current, byteCount: length)
            ok =
                CSupport_diff_decode(
                    encoded.assumingMemoryBound(to: UInt8.self), Int(encodedLength),
                    destination.assumingMemoryBound(to: UInt8.self), length) == 0
        }
        guard ok else { throw .malformed("\(what): difference runs past the end or is malformed") }
    }

    /// Stages `length` bytes copied from `source` for (region, offset).
    @inline(__always)
    func stageCopy(of source: UnsafeRawPointer, region: Int, offset: Int, length: Int) {
        stage(region: region, offset: offset, length: length) { destination, _ in
            destination.copyMemory(from: source, byteCount: length)
        }
    }

    /// Stages `length` bytes of the delta's body, at `bytes`, for (region, offset), copied from there at the
    /// commit: no bytes staged. For whole pages (a page's blocks are staged, so that they commit as one copy).
    @inline(__always)
    func stageFromBody(_ bytes: UnsafeRawPointer, region: Int, offset: Int, length: Int) {
        append(Staged(region: region, offset: offset, length: length, source: .body(bytes - bodyStart)))
    }

    /// Stages a zero page for (region, offset), filled at the commit: no bytes staged.
    @inline(__always)
    func stageZeroPage(region: Int, offset: Int) {
        append(Staged(region: region, offset: offset, length: geometry.pageSize, source: .zeros(at: offset)))
    }

    /// Stages `length` zero bytes for (region, offset): for a block, so that a page's blocks, whatever their
    /// forms, commit as one copy.
    @inline(__always)
    func stageZeros(region: Int, offset: Int, length: Int) {
        stage(region: region, offset: offset, length: length) { destination, _ in
            destination.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        }
    }

    /// Appends `length` staged bytes for (region, offset), filled by `fill`, which also gets the start of the
    /// staging area (staged bytes move as the area grows: never keep a pointer into it).
    @inline(__always)
    func stage(
        region: Int, offset: Int, length: Int, _ fill: (UnsafeMutableRawPointer, UnsafeRawPointer) -> Void
    ) {
        let stagingOffset = staging.count
        staging.append(upTo: length) { destination, start in
            fill(destination, start)
            return length
        }
        append(Staged(region: region, offset: offset, length: length, source: .staging(stagingOffset)))
    }

    /// Stages a copy of `length` bytes the regions held before this epoch at `source` for (region, offset), with
    /// no bytes staged: the commit reads them from the region (``commit(precopy:)``, which stages first those
    /// an earlier entry overwrites). For whole pages (``stageCopyOfHeldPage(_:region:offset:record:)``).
    @inline(__always)
    func stageHeld(region: Int, offset: Int, length: Int, from source: StagedSource) {
        heldCopies += 1
        append(Staged(region: region, offset: offset, length: length, source: source))
    }

    /// Adds `entry` to the staged entries. An entry that continues the previous one both where it writes and
    /// where it reads (the staging area, or one region's held content) extends it: the blocks of a page, or a
    /// copied run, commit as one copy.
    @inline(__always)
    private func append(_ entry: Staged) {
        if let last = staged.indices.last, staged[last].region == entry.region,
            staged[last].offset + staged[last].length == entry.offset,
            staged[last].source.region == entry.source.region,
            staged[last].source.offset + staged[last].length == entry.source.offset
        {
            staged[last].length += entry.length
        } else {
            staged.append(entry)
        }
    }
}
