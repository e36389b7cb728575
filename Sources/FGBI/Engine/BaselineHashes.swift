import CSupport

/// Per region, the XXH3-64 of each page a backup holds (a ``ReplicaSummary``'s), when it holds content.
struct BaselineHashes {
    let pageHashes: [[UInt64]]?
    /// Pages several backups disagree on (``ReplicaSummary/common(_:)``): held by none.
    let disagreed: [[Bool]]?
    let pageSize: Int

    init(summary: ReplicaSummary?, pageSize: Int) {
        pageHashes = summary?.pageHashes
        disagreed = summary?.disagreed
        self.pageSize = pageSize
    }

    /// Whether page `page` of region `region` (its bytes at `bytes`) is what the backup already holds.
    @inline(__always)
    func holds(region: Int, page: Int, bytes: UnsafeRawPointer) -> Bool {
        guard let pageHashes else { return false }
        if let disagreed, disagreed[region][page] { return false }
        return CSupport_xxh3_64(bytes, pageSize) == pageHashes[region][page]
    }
}
