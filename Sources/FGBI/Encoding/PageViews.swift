/// A source of an epoch's changed blocks a page at a time, for the `fgbi` encoder's page loop: each call
/// hands over the next page's changed blocks as a capture view of their own (in increasing location order,
/// numbered on from the page before: ``EpochCapture/View/firstOrdinal``), or nil at the end. A view stays
/// valid until the second call after the one that returned it, so the encoder can look one page ahead.
protocol PageViews {
    mutating func next() -> EpochCapture.View?
}

/// The pages of a capture of changed blocks (``CaptureStrategy/rehash``), as views into it.
struct CapturePages: PageViews {
    private let capture: EpochCapture.View
    private let blocksPerPageShift: Int
    private var start: Int
    private let limit: Int

    /// The pages of `capture`'s items `items` (whole pages; all of them by default).
    init(_ capture: EpochCapture.View, blocksPerPageShift: Int, items: Range<Int>? = nil) {
        self.capture = capture
        self.blocksPerPageShift = blocksPerPageShift
        start = items?.lowerBound ?? 0
        limit = items?.upperBound ?? capture.count
    }

    @inline(__always)
    mutating func next() -> EpochCapture.View? {
        guard start < limit else { return nil }
        let end = BlockRecordHeader.pageEnd(
            capture.locations, from: start, limit: limit,
            blocksPerPageShift: blocksPerPageShift)
        defer { start = end }
        return EpochCapture.View(
            locations: capture.locations + start, oldHashes: capture.oldHashes + start,
            newHashes: capture.newHashes + start, arena: capture.item(start), itemSize: capture.itemSize,
            count: end - start, firstOrdinal: capture.firstOrdinal + start)
    }
}

extension StagedPageReader: PageViews {}
