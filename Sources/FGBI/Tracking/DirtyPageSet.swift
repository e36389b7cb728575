/// A run of consecutive pages: `count` pages from page index `start`.
public struct PageRun: Sendable, Hashable {
    /// The first page's index within its region.
    public var start: Int
    /// The number of pages, at least 1.
    public var count: Int

    public init(start: Int, count: Int) {
        self.start = start
        self.count = count
    }

    /// One past the last page's index.
    public var end: Int { start + count }
}

/// The pages of one region written during one epoch, as sorted, non-overlapping, non-adjacent runs.
///
/// Reused across epochs (``removeAll()`` keeps capacity) so collecting allocates nothing in steady state.
public struct DirtyPageSet: Sendable, Equatable {
    /// The runs, in increasing page order.
    public private(set) var runs: [PageRun] = []
    /// The total number of pages in all runs.
    public private(set) var pageCount = 0

    public init() {}

    /// Builds a set from page indices in any order, duplicates allowed.
    public init<S: Sequence<Int>>(pages: S) {
        for page in pages.sorted() { append(page) }
    }

    /// Makes room for `runs` runs, so collections up to that size allocate nothing (call during set-up).
    public mutating func reserveCapacity(runs count: Int) {
        runs.reserveCapacity(count)
    }

    /// Empties the set, keeping its storage.
    public mutating func removeAll() {
        runs.removeAll(keepingCapacity: true)
        pageCount = 0
    }

    /// Adds `count` pages from `start`; runs must be appended in increasing order (a run may touch or
    /// overlap the previous one's end, and is merged with it).
    public mutating func append(start: Int, count: Int) {
        precondition(count > 0, "a page run holds at least one page")
        if let last = runs.last {
            precondition(
                start >= last.start, "page runs must be appended in increasing order: \(start) after \(last.start)")
            if start <= last.end {
                let end = max(last.end, start + count)
                pageCount += end - last.end
                runs[runs.count - 1].count = end - last.start
                return
            }
        }
        runs.append(PageRun(start: start, count: count))
        pageCount += count
    }

    /// Adds `count` pages from `start` in any order: runs out of order are merged into place. PAGEMAP_SCAN
    /// reports in address order while the memory is still, but a scan racing writes (a pre-copy round, with
    /// the guest running) has been seen here to report an earlier run after a later one.
    public mutating func insert(start: Int, count: Int) {
        precondition(count > 0, "a page run holds at least one page")
        guard let last = runs.last, start < last.start else { return append(start: start, count: count) }
        var merged = runs
        merged.append(PageRun(start: start, count: count))
        merged.sort { $0.start < $1.start }
        removeAll()
        for run in merged { append(start: run.start, count: run.count) }
    }

    /// Adds one page; pages must be appended in increasing order.
    public mutating func append(_ page: Int) { append(start: page, count: 1) }

    /// Whether the set has no page.
    public var isEmpty: Bool { pageCount == 0 }

    /// Every page index, in increasing order.
    public var pages: some Sequence<Int> { runs.lazy.flatMap { $0.start..<$0.end } }

    /// Whether `page` is in the set (binary search).
    public func contains(_ page: Int) -> Bool {
        var low = 0
        var high = runs.count
        while low < high {
            let mid = (low + high) / 2
            if runs[mid].end <= page { low = mid + 1 } else { high = mid }
        }
        return low < runs.count && runs[low].start <= page
    }
}
