/// Vouching for the sources of an epoch's copies (``PageCopyFinder``): each region's ``WrittenPageWitness``
/// asked, in groups of nearby pages, which sources were written since the capture's collection.
extension PageCopyFinder {
    /// Drops from `found` every copy whose source its region's witness reports written since the capture's
    /// collection, or cannot answer for (a later collection, or a scan the kernel refused: then those pages
    /// go as their blocks, and nothing is lost).
    func keepVouchedFor(collections: [Int]) {
        for region in 0..<regions.count {
            sources.removeAll(keepingCapacity: true)
            for copy in found { if let source = copy.source, source.region == region { sources.append(source.page) } }
            guard !sources.isEmpty else { continue }
            sortSources(region: region)
            written.removeAll(keepingCapacity: true)
            let answered = scanWritten(around: sources, region: region, collection: collections[region])
            found.removeAll { copy in
                guard let source = copy.source, source.region == region else { return false }
                return !answered || Self.contains(written, source.page)
            }
        }
    }

    /// Puts `sources` (pages of `region`) in increasing order: through a bit per page of the region when they
    /// are many (a comparison sort of thousands of pages cost a fortieth of the duplicate workload's encode),
    /// which drops repeats; else by a sort.
    private func sortSources(region: Int) {
        let words = (regions[region].pageCount + 63) / 64
        guard sources.count * 16 >= words else { return sources.sort() }
        let bits = sourceBits[region]
        for page in sources { bits[page >> 6] |= 1 << UInt64(page & 63) }
        sources.removeAll(keepingCapacity: true)
        for word in 0..<words where bits[word] != 0 {
            var pending = bits[word]
            bits[word] = 0
            while pending != 0 {
                sources.append(word << 6 | pending.trailingZeroBitCount)
                pending &= pending - 1
            }
        }
    }

    /// Sources further apart than this many pages are asked about in separate scans: a scan's call costs
    /// about what walking this many pages' entries does, so a few copies spread over a large region are not
    /// paid with a walk of all of it.
    private static let scanGap = 256

    /// Appends to `written` the runs written since `collection` among the pages of `region` around `pages`
    /// (increasing), scanned in groups of nearby pages; false when the witness cannot answer for one of them.
    private func scanWritten(around pages: [Int], region: Int, collection: Int) -> Bool {
        guard let witness = witnesses[region] else { return false }
        var start = 0
        while start < pages.count {
            var end = start + 1
            while end < pages.count, pages[end] - pages[end - 1] <= Self.scanGap { end += 1 }
            let answered =
                (try? witness.writtenRuns(in: pages[start]..<(pages[end - 1] + 1), sinceCollection: collection) {
                    self.written.append($0..<($0 + $1))
                }) ?? false
            guard answered else { return false }
            start = end
        }
        return true
    }

    /// Whether `page` lies in one of `runs` (increasing, apart).
    private static func contains(_ runs: [Range<Int>], _ page: Int) -> Bool {
        var low = 0
        var high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].upperBound <= page { low = middle + 1 } else { high = middle }
        }
        return low < runs.count && runs[low].contains(page)
    }
}
