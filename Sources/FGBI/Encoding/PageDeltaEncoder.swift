import CSupport

/// The baseline modes' encoder, one page per record:
/// - `page` and `page-lz4`: every written page whole (Remus; the compressor makes the difference);
/// - `xbzrle`: a page of zeros as a one-byte record; a page whose previous version is in the page cache as
///   a run-length difference against it, when that is smaller than the page; otherwise the page whole
///   (QEMU's XBZRLE, with its zero-page check). The cache is updated with every page sent, but in the captures
///   of a first pass whose pages it would not keep past the pass (``FirstPassLearning``).
final class PageDeltaEncoder {
    private let mode: ReplicationMode
    private let pageSize: Int
    /// The xbzrle page cache: previous versions of recently sent pages, by location.
    private let cache: CopyStore?
    private let diff: UnsafeMutablePointer<UInt8>
    private var positions = RecordPositionWriter()
    /// Which captures of a first pass the cache learns from: every page leads to one copy, so the pass's copies
    /// per page need no counting.
    private let firstPass = FirstPassLearning(copiesPerPage: 1)

    init(mode: ReplicationMode, pageSize: Int, cacheBudgetBytes: Int) {
        self.mode = mode
        self.pageSize = pageSize
        cache = mode == .xbzrle ? CopyStore(slotSize: pageSize, budgetBytes: cacheBudgetBytes) : nil
        diff = .allocate(capacity: pageSize + 16)
    }

    deinit { diff.deallocate() }

    var metadataBytes: Int { (cache?.totalBytes ?? 0) + pageSize }

    /// Pages the xbzrle cache has evicted so far (0 without a cache).
    var cacheEvictions: Int { cache?.evictions ?? 0 }

    /// Cache keys: locations multiplied by an odd constant, a bijection that spreads them over the table.
    @inline(__always)
    private func cacheKey(_ location: BlockLocation) -> UInt64 { location.packed &* 0x9E37_79B9_7F4A_7C15 }

    /// Encodes `capture` (whole pages) into `body`; returns the record count and fills `stats`.
    func encode(_ capture: EpochCapture, into body: inout ByteWriter, stats: inout EpochStatistics) -> Int {
        positions.reset()
        let learns = firstPass.learns(pagesAfter: capture.firstPassPagesAfter, capacity: cache?.capacity ?? 1)
        for item in 0..<capture.count {
            let location = capture.locations[item]
            let bytes = UnsafeRawPointer(capture.item(item))
            positions.write(region: location.region, page: location.block, to: &body)
            if let cache {
                encodeXBZRLE(location, bytes, cache: cache, learning: learns, into: &body, stats: &stats)
            } else {
                body.byte(DeltaFormat.RecordKind.pageRaw.rawValue)
                body.raw(bytes, count: pageSize)
                stats.literalBlocks += 1
                stats.literalBytes += pageSize
            }
        }
        stats.blocksDirty = capture.count
        return capture.count
    }

    @inline(__always)
    private func encodeXBZRLE(
        _ location: BlockLocation, _ bytes: UnsafeRawPointer, cache: CopyStore, learning: Bool,
        into body: inout ByteWriter, stats: inout EpochStatistics
    ) {
        let key = cacheKey(location)
        let held = cache.find(key)
        // Not learning, a copy the cache holds of this page is replaced all the same: it is stale now.
        defer { if learning || held != nil { cache.store(key, tag: location.packed, from: bytes) } }
        if CSupport_is_zero(bytes, pageSize) != 0 {
            body.byte(DeltaFormat.RecordKind.pageZero.rawValue)
            stats.zeroBlocks += 1
            return
        }
        let previous = held.flatMap { cache.tag($0) == location.packed ? UnsafeRawPointer(cache.bytes($0)) : nil }
        writeDifferenceOrLiteral(
            bytes, length: pageSize, base: previous, scratch: diff,
            differenceCode: DeltaFormat.RecordKind.pageDiff.rawValue,
            literalCode: DeltaFormat.RecordKind.pageRaw.rawValue, into: &body, stats: &stats)
    }
}
