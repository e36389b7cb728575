import FGBI
import FGBIDiagnostics

/// What `fgbi trace` runs: a region written by a built-in workload (writer threads) or by replaying a trace
/// directory, tracked for a number of epochs; at each epoch boundary the writers are paused, the tracker's
/// written pages are collected (and, for `uffd-sync`, its faults), and a ``TraceAnalyzer`` counts what changed.
public struct TraceRun: Sendable {
    /// Where the writes come from.
    public enum Source: Sendable {
        /// A built-in workload's writer threads.
        case workload(SyntheticWorkload)
        /// A recorded trace, replayed one image per epoch.
        case directory(TraceDirectory)
    }

    public var source: Source
    public var tracker: TrackerKind = .uffdAsync
    /// Region size for a workload (a replayed trace's images set it).
    public var regionBytes = 64 << 20
    public var blockSize = 64
    /// Epochs to trace; nil: 50 for a workload, every image after the first for a trace.
    public var epochs: Int?
    /// The epoch interval; for a trace, the nominal interval when `trace.json` does not give one.
    public var epochMs = 50.0
    public var threads = 2
    /// Page writes per second, all writer threads together.
    public var pagesPerSecond = 20_000
    public var seed: UInt64 = 42
    /// At most this many address buckets in the heatmap.
    public var heatmapRows = TraceHeatmap.maximumRows

    /// Epochs traced for a workload when `epochs` is nil.
    public static let defaultWorkloadEpochs = 50

    public init(source: Source) {
        self.source = source
    }

    /// What the run produced.
    public struct Result: Sendable {
        public var epochs: [EpochTrace]
        public var pages: [PageActivity]
        public var summary: TraceSummary
        public var heatmap: TraceHeatmap
    }

    /// The epochs this run will trace.
    public func resolvedEpochs() throws(TraceError) -> Int {
        switch source {
        case .workload: return epochs ?? Self.defaultWorkloadEpochs
        case .directory(let trace):
            let wanted = epochs ?? trace.epochCount
            guard wanted <= trace.epochCount else {
                throw .tooFewImages(trace.path, images: trace.images.count, epochsWanted: wanted)
            }
            return wanted
        }
    }

    /// The epoch interval in milliseconds: a trace's own, else the configured one.
    public var resolvedEpochMs: Double {
        if case .directory(let trace) = source, let own = trace.metadata.epochMs { return own }
        return epochMs
    }

    /// The `trace` record describing this run.
    public func header() throws -> TraceHeader {
        switch source {
        case .workload(let workload):
            return TraceHeader(
                source: "workload:\(workload.rawValue)", tracker: tracker.rawValue, regionBytes: regionBytes,
                pageSize: GuestMemory.pageSize, blockSize: blockSize, epochs: try resolvedEpochs(),
                epochMs: epochMs, threads: threads, pagesPerSecond: pagesPerSecond)
        case .directory(let trace):
            return TraceHeader(
                source: "directory:\(trace.path)", tracker: tracker.rawValue, regionBytes: trace.imageSize,
                pageSize: GuestMemory.pageSize, blockSize: blockSize, epochs: try resolvedEpochs(),
                epochMs: resolvedEpochMs)
        }
    }

    /// Runs the epochs, handing each epoch's record and its faults (uffd-sync; empty otherwise) to `epoch`
    /// as it completes, with the writers running again.
    public func run(
        progress: (String) -> Void = { _ in },
        epoch report: (EpochTrace, [FaultTrace]) throws -> Void = { _, _ in }
    ) throws -> Result {
        let count = try resolvedEpochs()
        let geometry = try BlockGeometry(blockSize: blockSize)
        let memory: GuestMemory
        var replayer: TraceReplayer?
        var driver: WorkloadDriver?
        switch source {
        case .workload(let workload):
            memory = try GuestMemory.anonymous(length: regionBytes)
            try memory.prefault()
            workload.fillInitialContent(memory, seed: seed)
            driver = WorkloadDriver(
                memory: memory, workload: workload, threads: threads, pagesPerSecond: pagesPerSecond, seed: seed)
        case .directory(let trace):
            memory = try GuestMemory.anonymous(length: trace.imageSize)
            try memory.prefault()
            let replay = try TraceReplayer(memory: memory, trace: trace)
            try replay.prepare()
            replayer = replay
        }
        let analyzer = try TraceAnalyzer(memory: memory, geometry: geometry, heatmapRows: heatmapRows)
        analyzer.baseline()

        let tracked = try tracker.makeTracker(for: memory)
        let faultLog = tracked as? SyncWriteProtectTracker
        try tracked.start()
        defer { try? tracked.stop() }
        var written = DirtyPageSet()
        var faultCount = 0
        var faultThreads = Set<UInt32>()
        let epochNanoseconds = UInt64(resolvedEpochMs * 1e6)
        let start = MonotonicClock.nanoseconds()
        driver?.start()
        defer { driver?.stop() }
        var previous = start
        for number in stride(from: 1, through: count, by: 1) {
            if let replayer {
                _ = try replayer.writeNext()
            } else {
                let due = start + UInt64(number) * epochNanoseconds
                let now = MonotonicClock.nanoseconds()
                if due > now { MonotonicClock.sleep(nanoseconds: due - now) }
            }
            driver?.pause()
            let now = MonotonicClock.nanoseconds()
            let trace: EpochTrace
            let faults: [FaultTrace]
            do {
                defer { driver?.resume() }
                try tracked.collect(into: &written)
                faults =
                    faultLog?.takeFaults().map {
                        FaultTrace(
                            epoch: number, page: $0.page,
                            timeNs: $0.monotonicNanoseconds >= start ? $0.monotonicNanoseconds - start : 0,
                            thread: $0.threadID)
                    } ?? []
                // A replay has no clock of its own: its epochs are the nominal interval apart.
                let endMs = replayer == nil ? Double(now - start) / 1e6 : Double(number) * resolvedEpochMs
                let durationMs = replayer == nil ? Double(now - previous) / 1e6 : resolvedEpochMs
                trace = analyzer.analyze(
                    written, endMs: endMs, durationMs: durationMs, faults: faultLog == nil ? nil : faults.count)
            }
            previous = now
            faultCount += faults.count
            for fault in faults { faultThreads.insert(fault.thread) }
            try report(trace, faults)
            if number % max(count / 10, 1) == 0 || number == count {
                progress(
                    "epoch \(number)/\(count): \(trace.writtenPages) pages written, \(trace.dirtyBlocks) blocks changed"
                )
            }
        }
        let tally = faultLog.map {
            FaultTally(faults: faultCount, threads: faultThreads.count, dropped: $0.droppedFaults)
        }
        return Result(
            epochs: analyzer.epochs, pages: analyzer.pageActivity(), summary: analyzer.summary(faults: tally),
            heatmap: analyzer.heatmap)
    }
}
