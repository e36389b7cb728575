import FGBI

/// What a trace describes: the `trace` record that opens JSONL trace output.
public struct TraceHeader: Codable, Sendable, Equatable {
    /// Always `"trace"`.
    public var record = "trace"
    /// The output format's version; bumped when a field changes meaning.
    public var version = 1
    /// `workload:NAME` for a built-in workload, `directory:PATH` for a replayed trace directory.
    public var source: String
    /// The tracker backend (`uffd-async`, `uffd-sync`, `scan`).
    public var tracker: String
    public var regionBytes: Int
    public var pageSize: Int
    public var blockSize: Int
    /// Epochs planned.
    public var epochs: Int
    /// The epoch interval in milliseconds (nominal for a replayed trace).
    public var epochMs: Double
    /// Writer threads and their combined page-write rate (built-in workloads only).
    public var threads: Int?
    public var pagesPerSecond: Int?

    public init(
        source: String, tracker: String, regionBytes: Int, pageSize: Int, blockSize: Int, epochs: Int,
        epochMs: Double, threads: Int? = nil, pagesPerSecond: Int? = nil
    ) {
        self.source = source
        self.tracker = tracker
        self.regionBytes = regionBytes
        self.pageSize = pageSize
        self.blockSize = blockSize
        self.epochs = epochs
        self.epochMs = epochMs
        self.threads = threads
        self.pagesPerSecond = pagesPerSecond
    }
}
