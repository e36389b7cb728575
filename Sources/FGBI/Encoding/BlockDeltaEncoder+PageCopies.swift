/// Pages sent whole as copies of pages the backup holds (``PageCopyFinder``): found before the epoch's pages
/// are read, written as `page-copy` records in their place among the others.
extension BlockDeltaEncoder {
    /// The pages of `capture` (whole pages, read by `reader`) that go as copies or zeros, in the capture's
    /// order (``PageCopyFinder/find(in:retiring:)``): each one's changed blocks retired from the index (their
    /// content changes), its hashes and key made its new content's, and `reader` told to pass it over, and
    /// over the pages that were zeros and stay zeros. None without a finder. Counted in `stats` (a zero page
    /// as its blocks of zeros).
    func takePageCopies(
        of capture: EpochCapture, skippedBy reader: StagedPageReader, stats: inout EpochStatistics
    ) -> [PageCopyFinder.PageCopy] {
        guard let pageCopies else { return [] }
        // Retiring takes this epoch's number: content stored in the last epoch is retired, not kept.
        index.beginEpoch(capture.epoch)
        let blocks = geometry.blocksPerPage
        let byWord = index.keepsLocationBits && blocks == 64
        let retire: PageCopyFinder.Retirement.Retire = { region, page, changed, previous in
            // Only blocks whose previous content the index may hold: with per-location bits, the page's word
            // says which.
            var pending =
                changed & (byWord ? self.index.heldBits(ofPageAt: BlockLocation(region: region, block: page << 6)) : ~0)
            while pending != 0 {
                let block = pending.trailingZeroBitCount
                pending &= pending - 1
                _ = self.index.takePrevious(
                    at: BlockLocation(region: region, block: page * blocks + block), hash: previous[block])
            }
        }
        let prepare: (Int, Int) -> Void = { region, page in
            if byWord { self.index.prefetchHeldBits(ofPageAt: BlockLocation(region: region, block: page << 6)) }
        }
        let copies = pageCopies.find(in: capture, retiring: .init(prepare: prepare, retire: retire))
        // The reader passes over the copies and the pages that stay zeros, in the capture's order.
        let unchanged = pageCopies.unchangedZeros
        var nextUnchanged = 0
        for copy in copies {
            while nextUnchanged < unchanged.count, unchanged[nextUnchanged] < copy.item {
                reader.skip(item: unchanged[nextUnchanged], unchanged: true)
                nextUnchanged += 1
            }
            reader.skip(item: copy.item)
            if copy.source == nil { stats.zeroBlocks += blocks } else { stats.pagesCopied += 1 }
        }
        for item in unchanged[nextUnchanged...] { reader.skip(item: item, unchanged: true) }
        return copies
    }

    /// Writes the `page-copy` (or `page-zero`) records of `copies` from `next` on that lie before
    /// `location`'s page (all of them when nil), advancing `next`; returns how many.
    @inline(__always)
    func writePageCopies(
        _ copies: [PageCopyFinder.PageCopy], from next: inout Int, before location: BlockLocation?,
        into body: inout ByteWriter
    ) -> Int {
        let first = next
        let pageShift = geometry.blocksPerPage.trailingZeroBitCount
        while next < copies.count {
            let copy = copies[next]
            if let location, (copy.region, copy.page) >= (location.region, location.block >> pageShift) { break }
            positions.write(region: copy.region, page: copy.page, to: &body)
            if let source = copy.source {
                body.byte(DeltaFormat.RecordKind.pageCopy.rawValue)
                body.uleb(source.region)
                body.uleb(source.page)
            } else {
                body.byte(DeltaFormat.RecordKind.pageZero.rawValue)
            }
            next += 1
        }
        return next - first
    }
}
