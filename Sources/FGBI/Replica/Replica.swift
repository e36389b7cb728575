import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The backup's copy of the primary's regions, brought forward one epoch delta at a time.
///
/// `apply` is atomic: it checks the checksum and every field, decodes every record into a staging
/// area (reading references and differences against the replica as it was before this epoch), and only
/// when the whole epoch decoded cleanly copies the staged bytes into the regions. A corrupted, truncated,
/// out-of-order or hostile delta throws ``DeltaError`` and leaves the replica exactly as it was.
public final class Replica: @unchecked Sendable {
    public let regions: [GuestMemory]
    public let geometry: BlockGeometry
    /// The last epoch committed (applied whole), or nil before the first.
    public private(set) var lastEpoch: UInt64?
    /// The epoch the next delta must carry.
    private var expectedEpoch: UInt64 = 0
    /// A session began and its first delta may skip ahead (``beginSession()``).
    private var mayJump = false
    /// Committed content of the pages pre-copy deltas overwrote since ``lastEpoch``.
    let undo: UndoLog

    /// Bytes the commit writes at (`region`, `offset`), and where it reads them (``StagedSource``).
    struct Staged {
        var region: Int
        var offset: Int
        var length: Int
        var source: StagedSource
    }

    // Touched once or more per block, and only by `apply` (never re-entered): unchecked, as a checked class
    // property costs a runtime exclusivity check per access.
    @exclusivity(unchecked) var staged: [Staged] = []
    @exclusivity(unchecked) var staging = ByteWriter()
    /// The start of the body of the delta being applied (where it lies, or its decompressed copy):
    /// entries read from it (``StagedSource/body(_:)``) hold offsets from here. Valid only inside `apply`.
    @exclusivity(unchecked) var bodyStart = UnsafeRawPointer(bitPattern: 1)!
    /// Staging offsets of this epoch's blocks in order, for copy-epoch references.
    @exclusivity(unchecked) var blockOrdinals: [Int] = []
    /// Staged entries that copy held content at the commit (``StagedSource/held(region:offset:)``): page copies.
    @exclusivity(unchecked) var heldCopies = 0
    /// The pages the staged entries write, marked while the commit looks for held copies they overwrite.
    @exclusivity(unchecked) var pageMarks: StagedPageMarks
    @exclusivity(unchecked) private var body = ByteWriter()
    /// Largest body a delta for these regions can need: every page, with per-block overhead.
    private let maximumBodyLength: Int

    /// Largest whole delta (header, stored body, checksum) these regions can need: what a connection accepts.
    public var maximumDeltaLength: Int {
        DeltaFormat.headerLength + max(maximumBodyLength, ZSTD_compressBound(maximumBodyLength))
            + DeltaFormat.checksumLength + 64
    }

    /// A replica of regions with these lengths and geometry; the regions start as they are (zero-filled
    /// memory for a new backup) and must match the primary's. Until an epoch commits (or ``adopt(epoch:)``
    /// declares one), they hold no epoch, and ``rollBack()`` returns the pages a synchronisation wrote to zero.
    public init(regions: [GuestMemory], geometry: BlockGeometry) {
        self.regions = regions
        self.geometry = geometry
        let pages = regions.reduce(0) { $0 + $1.pageCount }
        maximumBodyLength = pages * (geometry.pageSize + geometry.blocksPerPage * 24 + 32) + 64
        undo = UndoLog(pageCounts: regions.map(\.pageCount), pageSize: geometry.pageSize)
        pageMarks = StagedPageMarks(pageCounts: regions.map(\.pageCount))
    }

    /// Declares that the regions already hold committed epoch `epoch` (loaded from disk, say).
    public func adopt(epoch: UInt64?) {
        lastEpoch = epoch
        expectedEpoch = epoch.map { $0 + 1 } ?? 0
        undo.discard()
    }

    /// A new primary session starts: its first delta may carry any epoch after the last committed one (a
    /// primary that resynchronises numbers on from its own epochs, which may be ahead of ours).
    public func beginSession() {
        rollBack()
        mayJump = true
    }

    /// Pre-copy deltas were applied after ``lastEpoch``: the regions hold no consistent epoch until the next
    /// committed one (or ``rollBack()``).
    public var holdsUncommittedChanges: Bool { undo.pageCount > 0 }

    /// Pages saved to take uncommitted pre-copy deltas back, and their bytes.
    public var undoPages: Int { undo.pageCount }

    /// Returns the regions to ``lastEpoch`` exactly, undoing every pre-copy delta applied since.
    public func rollBack() {
        undo.restore(into: regions)
        expectedEpoch = lastEpoch.map { $0 + 1 } ?? 0
    }

    /// XXH3-64 of every page of region `region`, written to `hashes` (one per page): what a primary compares
    /// its memory against to resynchronise without sending what the backup already holds.
    public func pageHashes(region: Int, into hashes: inout [UInt64]) {
        let memory = regions[region]
        hashes.removeAll(keepingCapacity: true)
        hashes.reserveCapacity(memory.pageCount)
        for page in 0..<memory.pageCount { hashes.append(CSupport_xxh3_64(memory.page(page), geometry.pageSize)) }
    }

    /// The page hashes of every region (``pageHashes(region:into:)``), as the summary a backup holding this
    /// replica sends its primary.
    package var summary: ReplicaSummary {
        var hashes: [UInt64] = []
        return ReplicaSummary(
            pageHashes: regions.indices.map { region in
                pageHashes(region: region, into: &hashes)
                return hashes
            })
    }

    /// What one applied epoch changed.
    public struct Applied: Sendable, Equatable {
        public var epoch: UInt64
        public var records: Int
        /// Bytes written into the regions.
        public var bytesWritten: Int
    }

    /// Applies one epoch delta, whole or not at all.
    ///
    /// With `precopy`, the delta is a step of a synchronisation: it is applied whole as well, but commits no
    /// epoch (the regions are consistent only once the epoch the pre-copy leads to arrives), and the pages it
    /// overwrites are saved so ``rollBack()`` can return to ``lastEpoch``.
    @discardableResult
    public func apply(_ delta: [UInt8], precopy: Bool = false) throws(DeltaError) -> Applied {
        let result = delta.withUnsafeBytes { buffer in
            Result { () throws(DeltaError) -> Applied in try apply(buffer, precopy: precopy) }
        }
        return try result.get()
    }

    /// Applies one epoch delta, whole or not at all (see ``apply(_:precopy:)-([UInt8],_)``).
    @discardableResult
    public func apply(_ delta: UnsafeRawBufferPointer, precopy: Bool = false) throws(DeltaError) -> Applied {
        let header = try DeltaHeader.read(delta)
        guard header.blockSize == geometry.blockSize, header.pageSize == geometry.pageSize else {
            throw .geometryMismatch(
                "delta has \(header.blockSize)-byte blocks in \(header.pageSize)-byte pages, replica \(geometry)")
        }
        guard header.regionCount == regions.count else {
            throw .geometryMismatch("delta covers \(header.regionCount) regions, replica has \(regions.count)")
        }
        let expected = expectedEpoch
        guard header.epoch == expected || (mayJump && header.epoch > expected), header.epoch < .max else {
            throw .epochOutOfOrder(expected: expected, got: header.epoch)
        }
        guard header.bodyLength <= maximumBodyLength else {
            throw .malformed(
                "body of \(header.bodyLength) bytes exceeds the \(maximumBodyLength) these regions can need")
        }
        let stored = UnsafeRawBufferPointer(
            rebasing: delta[DeltaFormat.headerLength..<(DeltaFormat.headerLength + header.storedLength)])
        // A body stored as it is is read where it lies; a compressed one is first decompressed into `body`.
        guard header.compressionCode != 0 || stored.count == header.bodyLength else {
            throw .malformed("the body does not decompress to the \(header.bodyLength) bytes announced")
        }
        if header.compressionCode != 0 { try decompress(stored, header: header) }
        staged.removeAll(keepingCapacity: true)
        staging.removeAll()
        blockOrdinals.removeAll(keepingCapacity: true)
        heldCopies = 0
        var reader = ByteReader(header.compressionCode == 0 ? stored : body.bytes)
        bodyStart = reader.base
        try stageRecords(&reader, count: header.recordCount, version: header.version)
        guard reader.isAtEnd else { throw .malformed("\(reader.remaining) bytes after the last record") }
        FaultPoints.reach(.backupApply)
        // Nothing above wrote to the regions.
        let written = commit(precopy: precopy)
        mayJump = false
        expectedEpoch = header.epoch + 1
        if !precopy {
            lastEpoch = header.epoch
            undo.discard()
        }
        return Applied(epoch: header.epoch, records: header.recordCount, bytesWritten: written)
    }

    private func decompress(_ stored: UnsafeRawBufferPointer, header: DeltaHeader) throws(DeltaError) {
        body.removeAll()
        var ok = true
        body.append(upTo: header.bodyLength) { destination, _ in
            switch header.compressionCode {
            case 1:
                let n = LZ4_decompress_safe(
                    stored.baseAddress?.assumingMemoryBound(to: CChar.self),
                    destination.assumingMemoryBound(to: CChar.self),
                    Int32(clamping: stored.count), Int32(clamping: header.bodyLength))
                ok = Int(n) == header.bodyLength
            default:
                let n = ZSTD_decompress(destination, header.bodyLength, stored.baseAddress, stored.count)
                ok = ZSTD_isError(n) == 0 && n == header.bodyLength
            }
            return header.bodyLength
        }
        guard ok else { throw .malformed("the body does not decompress to the \(header.bodyLength) bytes announced") }
    }

    private func stageRecords(_ reader: inout ByteReader, count: Int, version: UInt16) throws(DeltaError) {
        let pageSize = geometry.pageSize
        var region = 0
        var page = -1
        for record in 0..<count {
            let regionStep = try reader.uleb("record \(record) region")
            let pageField = try reader.uleb("record \(record) page")
            guard regionStep < UInt64(regions.count - region) else {
                throw .malformed("record \(record): region out of range")
            }
            if regionStep > 0 {
                region += Int(regionStep)
                guard pageField < UInt64(regions[region].pageCount) else {
                    throw .malformed("record \(record): page \(pageField) past region \(region)")
                }
                page = Int(pageField)
            } else {
                guard pageField < UInt64(regions[region].pageCount - page - 1) else {
                    throw .malformed("record \(record): page past region \(region)")
                }
                page += Int(pageField) + 1
            }
            let kindCode = try reader.byte("record \(record) kind")
            guard let kind = DeltaFormat.RecordKind(rawValue: kindCode) else {
                throw .malformed("record \(record): kind \(kindCode)")
            }
            let pageOffset = page * pageSize
            switch kind {
            case .pageRaw:
                let bytes = try reader.bytes(pageSize, "record \(record) page bytes")
                stageFromBody(bytes, region: region, offset: pageOffset, length: pageSize)
            case .pageZero:
                stageZeroPage(region: region, offset: pageOffset)
            case .pageDiff:
                try stageDiff(
                    &reader, region: region, offset: pageOffset, length: pageSize,
                    what: Place(record: record, block: nil))
            case .blocks:
                try stageBlocks(&reader, region: region, page: page, record: record, version: version)
            case .pageCopy:
                guard version >= 5 else {
                    throw .malformed("record \(record): kind \(kindCode) in a version-\(version) delta")
                }
                try stageCopyOfHeldPage(&reader, region: region, offset: pageOffset, record: record)
            }
        }
    }

    private func stageBlocks(_ reader: inout ByteReader, region: Int, page: Int, record: Int, version: UInt16)
        throws(DeltaError)
    {
        let blockSize = geometry.blockSize
        let blocksPerPage = geometry.blocksPerPage
        let maskBytes = (blocksPerPage + 7) / 8
        let count = Int(try reader.byte("record \(record) block count"))
        guard count >= 1, count <= blocksPerPage else {
            throw .malformed("record \(record): \(count) blocks in a page of \(blocksPerPage)")
        }
        var mask: UInt64 = 0
        if count < maskBytes {
            var previous = -1
            for _ in 0..<count {
                let index = Int(try reader.byte("record \(record) block index"))
                guard index > previous, index < blocksPerPage else {
                    throw .malformed("record \(record): block list out of order or range")
                }
                mask |= 1 << UInt64(index)
                previous = index
            }
        } else {
            for byte in 0..<maskBytes {
                mask |= UInt64(try reader.byte("record \(record) block mask")) << UInt64(8 * byte)
            }
            guard mask.nonzeroBitCount == count, blocksPerPage == 64 || mask >> UInt64(blocksPerPage) == 0 else {
                throw .malformed("record \(record): block mask does not match its count")
            }
        }
        while mask != 0 {
            let index = mask.trailingZeroBitCount
            mask &= mask - 1
            let offset = page * geometry.pageSize + index * blockSize
            let what = Place(record: record, block: index)
            let opCode = try reader.byte("\(what) operation")
            guard let op = DeltaFormat.BlockOp(rawValue: opCode) else {
                throw .malformed("\(what): operation \(opCode)")
            }
            blockOrdinals.append(staging.count)
            switch op {
            case .literal:
                let bytes = try reader.bytes(blockSize, "\(what)")
                stageCopy(of: bytes, region: region, offset: offset, length: blockSize)
            case .zero:
                stageZeros(region: region, offset: offset, length: blockSize)
            case .diff:
                try stageDiff(&reader, region: region, offset: offset, length: blockSize, what: what)
            case .sparse:
                guard version >= 2 else {
                    throw .malformed("\(what): operation \(opCode) in a version-\(version) delta")
                }
                // With the blocks that follow it in place (the mask's next bits) and are sparse too.
                let following = (~(mask >> UInt64(index + 1))).trailingZeroBitCount
                let blocks = try stageSparseRun(
                    &reader, region: region, offset: offset, most: 1 + following, what: what)
                let first = blockOrdinals[blockOrdinals.count - 1]
                for extra in 1..<blocks { blockOrdinals.append(first + extra * blockSize) }
                mask &= ~((1 << UInt64(blocks - 1) - 1) << UInt64(index + 1))
            case .copy:
                try stageCopyOfHeldBlock(&reader, region: region, offset: offset, what: what)
            case .spliced:
                guard version >= 3 else {
                    throw .malformed("\(what): operation \(opCode) in a version-\(version) delta")
                }
                try stageSpliced(&reader, region: region, offset: offset, version: version, what: what)
            case .copyEpoch:
                let ordinal = try reader.uleb("\(what) earlier block")
                guard ordinal < UInt64(blockOrdinals.count - 1) else {
                    throw .malformed(
                        "\(what): copy of block \(ordinal) of this epoch, which comes later or does not exist")
                }
                let from = blockOrdinals[Int(ordinal)]
                stage(region: region, offset: offset, length: blockSize) { destination, stagingStart in
                    destination.copyMemory(from: stagingStart + from, byteCount: blockSize)
                }
            }
        }
    }

    /// Where in a delta a problem is, for error messages; formatted only when an error is thrown.
    struct Place: CustomStringConvertible {
        var record: Int
        var block: Int?
        var description: String { block.map { "record \(record) block \($0)" } ?? "record \(record)" }
    }
}
