import FGBI

/// Dirty blocks per epoch and address range: the data behind `fgbi trace --svg`.
///
/// The region's pages are cut into at most ``maximumRows`` equal buckets of consecutive pages (the last may
/// be shorter); each cell holds the changed blocks of its bucket's pages in one epoch.
public struct TraceHeatmap: Sendable, Equatable {
    /// The default bucket count: rows of the picture.
    public static let maximumRows = 256

    /// Pages in the region.
    public let pageCount: Int
    /// Pages per bucket (the last bucket holds the rest).
    public let pagesPerRow: Int
    /// Buckets, at most the `rows` asked for.
    public let rows: Int
    /// Bytes per block and blocks per page, for the legend.
    public let blockSize: Int
    public let blocksPerPage: Int
    /// Epochs recorded so far, each a column.
    public private(set) var epochs = 0
    /// Changed blocks per cell, epoch-major: `sums[epoch * rows + row]` (epoch from 0).
    public private(set) var sums: [Int] = []

    /// An empty heatmap for a region of `pageCount` pages, in at most `rows` buckets.
    public init(pageCount: Int, blockSize: Int, blocksPerPage: Int, rows: Int = maximumRows) {
        precondition(pageCount > 0 && rows > 0, "a heatmap needs at least one page and one row")
        self.pageCount = pageCount
        self.blockSize = blockSize
        self.blocksPerPage = blocksPerPage
        pagesPerRow = (pageCount + min(rows, pageCount) - 1) / min(rows, pageCount)
        self.rows = (pageCount + pagesPerRow - 1) / pagesPerRow
    }

    /// Opens a new epoch column.
    public mutating func beginEpoch() {
        epochs += 1
        sums.append(contentsOf: repeatElement(0, count: rows))
    }

    /// Adds `blocks` changed blocks of `page` to the current epoch.
    public mutating func add(page: Int, blocks: Int) {
        precondition(epochs > 0, "beginEpoch() before add(page:blocks:)")
        sums[(epochs - 1) * rows + page / pagesPerRow] += blocks
    }

    /// The first page of bucket `row` and its page count.
    public func pages(ofRow row: Int) -> Range<Int> {
        row * pagesPerRow..<min((row + 1) * pagesPerRow, pageCount)
    }

    /// Changed blocks of bucket `row` in epoch `epoch` (from 0).
    public func sum(epoch: Int, row: Int) -> Int { sums[epoch * rows + row] }

    /// Mean changed blocks per page of bucket `row` in epoch `epoch` (pages not written count as 0).
    public func mean(epoch: Int, row: Int) -> Double {
        Double(sum(epoch: epoch, row: row)) / Double(pages(ofRow: row).count)
    }
}
