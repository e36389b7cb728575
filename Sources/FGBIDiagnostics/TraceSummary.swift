import FGBI

/// The headline facts of a traced run (`fgbi trace --summary`), and the `summary` record that ends JSONL
/// trace output.
public struct TraceSummary: Codable, Sendable, Equatable {
    /// Always `"summary"`.
    public var record = "summary"
    /// Epochs traced.
    public var epochs: Int
    /// Seconds from the start of tracking to the last collection (nominal for a replayed trace).
    public var elapsedSeconds: Double
    /// The region's size.
    public var regionBytes: Int
    public var pageSize: Int
    /// The block size dirty blocks are counted in, and blocks per page at that size.
    public var blockSize: Int
    public var blocksPerPage: Int

    /// Distinct pages written at least once: the working set.
    public var workingSetPages: Int
    /// The working set in bytes.
    public var workingSetBytes: Int
    /// Written pages summed over epochs (a page written in three epochs counts three times).
    public var writtenPages: Int
    /// `writtenPages` per second of `elapsedSeconds`: the rate the tracker reports.
    public var writtenPagesPerSecond: Double
    /// Changed blocks summed over epochs, and per second.
    public var dirtyBlocks: Int
    public var dirtyBlocksPerSecond: Double
    /// Written pages in which no block changed (the same bytes stored again).
    public var unchangedWrittenPages: Int
    /// Mean changed blocks per written page.
    public var meanDirtyBlocksPerWrittenPage: Double
    /// `meanDirtyBlocksPerWrittenPage / blocksPerPage`: the fraction of a written page that really changed.
    public var changedFraction: Double
    /// Element k: pages written in exactly k epochs (k from 0 to `epochs`; element 0 counts pages never
    /// written).
    public var epochsWrittenHistogram: [Int]
    /// Epochs the median page of the working set was written in, and the busiest page.
    public var medianEpochsWritten: Int
    public var maxEpochsWritten: Int
    /// The share of `writtenPages` that went to the most-written tenth of the working set (at least one
    /// page): 0.1 for writes spread evenly, near 1 for a small hot set.
    public var busiestTenthShare: Double
    /// Mean written pages per epoch that share their content with another written page of the epoch.
    public var meanDuplicatePagesPerEpoch: Double
    /// Mean changed blocks per epoch that share their new content with another changed block of the epoch.
    public var meanDuplicateBlocksPerEpoch: Double
    /// Mean changed blocks per epoch that are all zeros after it.
    public var meanZeroBlocksPerEpoch: Double
    /// Write-protect faults (uffd-sync only).
    public var faults: FaultTally?
    /// The cost model's answer for each candidate block size (``BlockSizeCost``).
    public var blockSizes: [BlockSizeCost]
    /// The supported block size with the fewest bytes in that model.
    public var cheapestBlockSize: Int?

    /// Working set in MiB.
    public var workingSetMiB: Double { Double(workingSetBytes) / Double(1 << 20) }
}

/// What the `uffd-sync` tracker's fault log held over a trace.
public struct FaultTally: Codable, Sendable, Equatable {
    /// Faults recorded.
    public var faults: Int
    /// Distinct threads that faulted.
    public var threads: Int
    /// Faults not recorded because the tracker's log was full.
    public var dropped: Int

    public init(faults: Int, threads: Int, dropped: Int) {
        self.faults = faults
        self.threads = threads
        self.dropped = dropped
    }
}
