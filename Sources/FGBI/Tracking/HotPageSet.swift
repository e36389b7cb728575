/// One region's hot pages under a ``HotPagePolicy``: which pages are hot and until when, and for the other
/// pages how many consecutive collections found them written. Drives a collection: which ranges to scan,
/// and what to report.
///
/// The invariant that keeps replication exact: at every collection each page is either scanned (reported
/// if it was written since it was last scanned, and protected again) or reported whatever happened to it.
/// A page leaving the hot set is scanned at that same collection, which reports it if it was written at any
/// time while it was hot. So no write goes unreported, and a page is never left unprotected and unscanned.
///
/// Costs per collection grow with the hot and written pages, not with the region: 3 bytes per page of
/// memory, allocated once. Not thread-safe: the tracker holds its lock around ``collect(into:scan:)``.
struct HotPageSet {
    private struct HotPage {
        var page: Int
        /// The collection at which its lease ends (wrapping, as ``collection`` does).
        var leaseEnd: UInt16
        /// Times it was captured unchanged during this lease (``noteUnchanged(_:)``).
        var unchanged: UInt8 = 0
    }

    let policy: HotPagePolicy
    let pageCount: Int
    /// Collections so far, wrapping; never 0, which marks a page never found written.
    private var collection: UInt16 = 0
    /// Per page: the collection that last found it written by a scan.
    private var lastWritten: [UInt16]
    /// Per page: consecutive collections that found it written (saturating).
    private var streak: [UInt8]
    /// Hot pages, in page order.
    private var hot: [HotPage] = []
    /// Scratch, kept across collections so a collection allocates nothing in steady state.
    private var keptHot: [HotPage] = []
    private var promoted: [Int] = []
    private var expired: [Int] = []
    private var written = DirtyPageSet()
    private var covered = DirtyPageSet()

    /// Pages reported by the last collection without a scan: the hot pages and the gaps between them.
    private(set) var reportedUnscanned = 0
    /// Pages hot now.
    var hotCount: Int { hot.count }
    /// Leases ended early because the page kept being captured unchanged, since creation.
    private(set) var demotions = 0

    /// Captured unchanged this many times in one lease, a hot page loses it: a quarter of the lease, at
    /// least 2. A page written in fewer than about three epochs of four costs less protected than copied.
    private var demoteAfter: Int { max(2, policy.leaseCollections / 4) }

    init(policy: HotPagePolicy, pageCount: Int) {
        self.policy = policy
        self.pageCount = pageCount
        lastWritten = Array(repeating: 0, count: policy.isEnabled ? pageCount : 0)
        streak = Array(repeating: 0, count: policy.isEnabled ? pageCount : 0)
    }

    /// One collection. `scan` must report into its set, in any order, the pages of its run written since
    /// they were last scanned, and protect them again. Replaces `set` with those pages plus every page
    /// reported without a scan.
    mutating func collect(into set: inout DirtyPageSet, scan: (PageRun, inout DirtyPageSet) throws -> Void) rethrows {
        set.removeAll()
        guard policy.isEnabled else {
            if pageCount > 0 { try scan(PageRun(start: 0, count: pageCount), &set) }
            return
        }
        collection &+= 1
        if collection == 0 { collection = 1 }
        endLeases()
        coverHotPages()
        written.removeAll()
        var next = 0
        for run in covered.runs {
            if run.start > next { try scan(PageRun(start: next, count: run.start - next), &written) }
            next = run.end
        }
        if next < pageCount { try scan(PageRun(start: next, count: pageCount - next), &written) }
        countStreaks()
        promote()
        Self.union(written, covered, into: &set)
        reportedUnscanned = covered.pageCount
    }

    /// Counts each hot page of `pages` as captured unchanged; a page that reaches ``demoteAfter`` loses its
    /// lease at the next collection, which scans it again (so a write since is still reported).
    mutating func noteUnchanged<Pages: Sequence<Int>>(_ pages: Pages) {
        guard policy.isEnabled, policy.demotesUnchanged, !hot.isEmpty else { return }
        var next = collection &+ 1
        if next == 0 { next = 1 }
        for page in pages {
            guard let index = hotIndex(of: page), hot[index].leaseEnd != next else { continue }
            if hot[index].unchanged < .max { hot[index].unchanged += 1 }
            if Int(hot[index].unchanged) >= demoteAfter {
                hot[index].leaseEnd = next
                demotions += 1
            }
        }
    }

    /// The index in ``hot`` of `page`, if it is hot (binary search).
    private func hotIndex(of page: Int) -> Int? {
        var low = 0
        var high = hot.count
        while low < high {
            let mid = (low + high) / 2
            if hot[mid].page < page { low = mid + 1 } else { high = mid }
        }
        return low < hot.count && hot[low].page == page ? low : nil
    }

    /// Drops the pages whose lease ends now; they are scanned from this collection on.
    private mutating func endLeases() {
        keptHot.removeAll(keepingCapacity: true)
        expired.removeAll(keepingCapacity: true)
        for entry in hot {
            if entry.leaseEnd == collection { expired.append(entry.page) } else { keptHot.append(entry) }
        }
        swap(&hot, &keptHot)
    }

    /// The pages reported without a scan: hot pages, joined across gaps of at most `maximumGap` pages.
    private mutating func coverHotPages() {
        covered.removeAll()
        var runStart = -1
        var runEnd = -1
        for entry in hot {
            if runStart >= 0, entry.page - runEnd <= policy.maximumGap {
                runEnd = entry.page + 1
                continue
            }
            if runStart >= 0 { covered.append(start: runStart, count: runEnd - runStart) }
            runStart = entry.page
            runEnd = entry.page + 1
        }
        if runStart >= 0 { covered.append(start: runStart, count: runEnd - runStart) }
    }

    /// Counts this collection's finding for every scanned page found written. A page whose lease just ended
    /// starts again from nothing: its scan reports writes from its whole time as hot, not from this epoch.
    private mutating func countStreaks() {
        let previous = collection == 1 ? UInt16.max : collection &- 1
        for run in written.runs {
            for page in run.start..<run.end {
                streak[page] = lastWritten[page] == previous ? (streak[page] == .max ? .max : streak[page] + 1) : 1
                lastWritten[page] = collection
            }
        }
        for page in expired {
            streak[page] = 0
            lastWritten[page] = 0
        }
    }

    /// Makes hot the scanned pages written in `promoteAfter` consecutive collections, while room remains.
    private mutating func promote() {
        var room = policy.maximumPages - hot.count
        guard room > 0 else { return }
        promoted.removeAll(keepingCapacity: true)
        let threshold = UInt8(policy.promoteAfter)
        outer: for run in written.runs {
            for page in run.start..<run.end where streak[page] >= threshold {
                promoted.append(page)
                room -= 1
                if room == 0 { break outer }
            }
        }
        guard !promoted.isEmpty else { return }
        // Merge, both in page order. A promoted page was scanned, so it is not hot.
        keptHot.removeAll(keepingCapacity: true)
        var index = 0
        for page in promoted {
            while index < hot.count, hot[index].page < page {
                keptHot.append(hot[index])
                index += 1
            }
            keptHot.append(HotPage(page: page, leaseEnd: leaseEnd(for: page)))
            streak[page] = 0
        }
        keptHot.append(contentsOf: hot[index...])
        swap(&hot, &keptHot)
    }

    /// The lease of a page promoted now: `leaseCollections` plus a share of up to half as much again, taken
    /// from the page number, so pages promoted together do not all return to scanning together.
    private func leaseEnd(for page: Int) -> UInt16 {
        let spread = policy.leaseCollections / 2 + 1
        let mixed = UInt64(truncatingIfNeeded: page) &* 0x9E37_79B9_7F4A_7C15
        let extra = Int((mixed >> 32) % UInt64(spread))
        let length = UInt16(min(policy.leaseCollections + extra, Int(UInt16.max)))
        var end = collection &+ length
        if end == 0 { end = 1 } // collection skips 0, so a lease ending at 0 would never end
        return end
    }

    /// The union of two page sets, into `set`.
    private static func union(_ a: DirtyPageSet, _ b: DirtyPageSet, into set: inout DirtyPageSet) {
        var i = 0
        var j = 0
        let left = a.runs
        let right = b.runs
        while i < left.count || j < right.count {
            let takeLeft = j == right.count || (i < left.count && left[i].start <= right[j].start)
            let run = takeLeft ? left[i] : right[j]
            if takeLeft { i += 1 } else { j += 1 }
            set.append(start: run.start, count: run.count)
        }
    }
}
