/// Which captures of a synchronisation's first pass an encoder learns from: those whose content would still be
/// in its store when the pass ends.
///
/// The first pass sends every page once, in order. The encoders' stores (the content index's copies, the
/// `xbzrle` page cache) hold a budget and evict the oldest copy first. So when the regions are larger than the
/// budget, what the pass teaches a store early is evicted before the pass ends, having served only copies found
/// a budget's distance on, within the pass. Storing it is most of the first pass's cost: on the demo's 256 MiB
/// (a 64 MiB budget) the `fgbi` encoder's first round took 136-162 ms storing every block and 85 ms storing
/// none, for 5.8% more bytes (Docs/BENCHMARKS.md). QEMU's XBZRLE makes the same call more bluntly: it does not
/// touch its cache until the first round is done.
///
/// A capture followed in the pass by `pagesAfter` pages is learnt from only when those pages would fill less
/// than the store (``learns(pagesAfter:capacity:)``), from the copies a page has led to so far in the pass
/// (``record(pages:copies:)``; before any, a whole page's worth, so a capture is never learnt from in error).
/// Its last pages' content then outlives the pass, and the store ends the pass holding about what storing
/// everything would have left in it. A capture not learnt from is encoded with no lookups (no copy found in
/// it, no splice) and adds nothing to the store; the page cache only replaces a page it already held.
/// Outside a first pass every capture is learnt from, and so is a resynchronisation's whole first pass, whose
/// lookups find what the backup holds.
struct FirstPassLearning {
    /// Copies a page leads to at most: blocks per page for the content index, one for a page cache.
    let copiesPerPage: Int
    /// Over the pass so far: pages captured, and the copies they led to (or would have, had they been learnt).
    private var pages = 0
    private var copies = 0

    init(copiesPerPage: Int) {
        precondition(copiesPerPage > 0, "a page leads to at least one copy")
        self.copiesPerPage = copiesPerPage
    }

    /// Copies per page of the pass so far, rounded up; a whole page's worth before any page.
    var copiesPerPageSoFar: Int {
        pages == 0 ? copiesPerPage : min(max((copies + pages - 1) / pages, 1), copiesPerPage)
    }

    /// Whether a capture followed by `pagesAfter` pages of its first pass (nil: not in a first pass) is learnt
    /// from by a store of `capacity` copies.
    func learns(pagesAfter: Int?, capacity: Int) -> Bool {
        guard let pagesAfter else { return true }
        // Multiplied in full width: a region's page count times 64 fits in an Int.
        return pagesAfter * copiesPerPageSoFar < capacity
    }

    /// Counts a first-pass capture of `pages` pages whose content leads to `copies` copies (its non-zero
    /// blocks, its pages).
    mutating func record(pages: Int, copies: Int) {
        self.pages += pages
        self.copies += min(copies, pages * copiesPerPage)
    }
}
