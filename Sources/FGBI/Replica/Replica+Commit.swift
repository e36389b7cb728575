import CSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Where the commit reads a staged entry's bytes: the staging area, the delta's body, content a region held
/// before this epoch, or none (zeros).
struct StagedSource: Equatable {
    /// The region read at the commit, ``stagingArea``, ``deltaBody`` or ``zeroFill``.
    var region: Int
    /// The offset in the staging area, the body or the region; for zeros, where they go (so that zeros for
    /// places that follow each other are one entry).
    var offset: Int

    static let stagingArea = -1
    static let zeroFill = -2
    static let deltaBody = -3

    /// Bytes at `offset` in the staging area.
    static func staging(_ offset: Int) -> StagedSource { StagedSource(region: stagingArea, offset: offset) }

    /// Bytes at `offset` in the body of the delta being applied (decompressed, if it was): a whole page's
    /// bytes, copied from there at the commit instead of staged.
    static func body(_ offset: Int) -> StagedSource { StagedSource(region: deltaBody, offset: offset) }

    /// Bytes that `region` held at `offset` before this epoch: a page copy, read from the region at the commit
    /// instead of staged.
    static func held(region: Int, offset: Int) -> StagedSource { StagedSource(region: region, offset: offset) }

    /// Zeros for the place at `offset`: a zero page, filled at the commit instead of staged.
    static func zeros(at offset: Int) -> StagedSource { StagedSource(region: zeroFill, offset: offset) }

    var isHeld: Bool { region >= 0 }
}

/// How `apply` writes an epoch it staged whole: in the order staged, which is the order of the places written
/// (records come by region and page, blocks by place in their page).
extension Replica {
    /// Writes every staged entry into the regions and returns the bytes written; with `precopy`, the pages
    /// written are first saved for ``rollBack()``.
    ///
    /// A zero page is filled here, not staged, and a page given whole is copied from the delta's body (which
    /// no entry writes). A page copy (``StagedSource/held(region:offset:)``) is read from
    /// its region here, not staged: it then costs one copy of the page instead of two. That is exact while the
    /// region still holds, at this point of the commit, what it held before this epoch: unless an entry
    /// committed earlier wrote the source. So first the pages the entries write are marked, and a page copy
    /// whose source pages include a marked one that comes before its own place (an earlier entry's, or its own
    /// first page, which an earlier entry smaller than a page could share) is staged now, while no region has
    /// been written. Sources that only later entries write are read before those writes; a place that overlaps
    /// its own source is copied by `memmove`, as through a buffer. Copies of a page or more from the staging
    /// area or the body go with streaming stores (``copy(to:from:_:streamed:)``), fenced before this returns.
    func commit(precopy: Bool) -> Int {
        if heldCopies > 0 { stageOverwrittenSources() }
        let stagingStart = UnsafeRawPointer(staging.bytes.baseAddress!)
        var written = 0
        var streamed = false
        defer { if streamed { CSupport_copy_streaming_fence() } } // before the epoch is said to be committed
        for entry in staged {
            if precopy {
                undo.save(
                    region: entry.region, offset: entry.offset, length: entry.length, from: regions[entry.region],
                    knownZero: lastEpoch == nil)
            }
            let place = regions[entry.region].base + entry.offset
            switch entry.source.region {
            case StagedSource.zeroFill: memset(place, 0, entry.length)
            case StagedSource.stagingArea:
                copy(to: place, from: stagingStart + entry.source.offset, entry.length, streamed: &streamed)
            case StagedSource.deltaBody:
                copy(to: place, from: bodyStart + entry.source.offset, entry.length, streamed: &streamed)
            default: memmove(place, regions[entry.source.region].base + entry.source.offset, entry.length)
            }
            written += entry.length
        }
        return written
    }

    /// Copies `length` bytes from the staging area or the body (which no region overlaps) to `place`: a page or
    /// more with streaming stores, which write the replica's pages without first reading them into the caches
    /// (and leave there the staging area and the body, not pages the commit will not read again); `streamed`
    /// then says a fence is due.
    @inline(__always)
    private func copy(
        to place: UnsafeMutableRawPointer, from source: UnsafeRawPointer, _ length: Int, streamed: inout Bool
    ) {
        if length >= geometry.pageSize {
            CSupport_copy_streaming(place, source, length)
            streamed = true
        } else {
            memcpy(place, source, length)
        }
    }

    /// Stages the held copies whose sources an entry before them overwrites (``commit(precopy:)``).
    private func stageOverwrittenSources() {
        let pageSize = geometry.pageSize
        for entry in staged { pageMarks.set(region: entry.region, pages: pages(entry.offset, entry.length), true) }
        defer {
            for entry in staged {
                pageMarks.set(region: entry.region, pages: pages(entry.offset, entry.length), false)
            }
        }
        for index in staged.indices where staged[index].source.isHeld {
            let entry = staged[index]
            let source = entry.source
            guard source.region <= entry.region else { continue } // every write to it comes later
            var sourcePages = pages(source.offset, entry.length)
            if source.region == entry.region {
                // Pages after the entry's own first page are written by it or by later entries only.
                sourcePages = sourcePages.clamped(to: 0..<(entry.offset / pageSize + 1))
            }
            guard pageMarks.anySet(region: source.region, pages: sourcePages) else { continue }
            let stagingOffset = staging.count
            staging.append(upTo: entry.length) { destination, _ in
                destination.copyMemory(from: regions[source.region].base + source.offset, byteCount: entry.length)
                return entry.length
            }
            staged[index].source = .staging(stagingOffset)
        }
    }

    /// The pages that `length` bytes from `offset` touch.
    private func pages(_ offset: Int, _ length: Int) -> Range<Int> {
        offset / geometry.pageSize..<((offset + length - 1) / geometry.pageSize + 1)
    }
}

/// One bit per page of each region, all clear between uses: the pages an epoch's staged entries write, while
/// the commit looks for held copies they overwrite.
struct StagedPageMarks {
    private var words: [[UInt64]]

    init(pageCounts: [Int]) {
        words = pageCounts.map { [UInt64](repeating: 0, count: max(($0 + 63) / 64, 1)) }
    }

    /// Sets (`on`) or clears the bits of `pages` of `region`.
    mutating func set(region: Int, pages: Range<Int>, _ on: Bool) {
        for page in pages {
            let bit: UInt64 = 1 << UInt64(page & 63)
            if on { words[region][page >> 6] |= bit } else { words[region][page >> 6] &= ~bit }
        }
    }

    /// Whether a bit of `pages` of `region` is set.
    func anySet(region: Int, pages: Range<Int>) -> Bool {
        pages.contains { words[region][$0 >> 6] >> UInt64($0 & 63) & 1 != 0 }
    }
}
