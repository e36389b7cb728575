import FGBI

/// `fgbi bench engine`: how fast FGBI finds changed blocks, and what each mode sends and costs for the same
/// epochs of a synthetic workload, through the real pipeline: uffd-async tracker, capture, encode, replica
/// apply, and a bitwise check that the replica equals the primary.
public struct EngineBenchmark: Sendable {
    public struct Configuration: Sendable {
        public var regionMiB = 1024
        public var workloads: [SyntheticWorkload] = [.sparse, .dense, .duplicate]
        public var modes = ReplicationMode.allCases
        public var blockSize = 64
        /// nil: each mode's default compressor.
        public var compression: Compression?
        public var epochs = 10
        public var pagesPerEpoch = 16384
        public var tracker = TrackerKind.uffdAsync
        /// ``EngineConfiguration/compressionMinimumSaving``; nil: the engine's default.
        public var compressionMinimumSaving: Double?
        /// The `fgbi` mode runs once per entry, encoding on that many threads
        /// (``EngineConfiguration/encodeThreads``); the page modes encode on one.
        public var encodeThreads = [1]
        /// With ``encodeThreads`` > 1: split every epoch that can be split, not only while that measures faster
        /// (``EngineConfiguration/choosesEncodeThreadsByTime`` off), to time the split itself.
        public var alwaysSplit = false
        /// The content index's budget (`fgbi`) and the page cache's (`xbzrle`), bytes.
        public var cacheBudgetBytes = 64 << 20
        /// Whether the `fgbi` encoder splices (``EngineConfiguration/splicing``).
        public var splicing = false
        /// Whether the `fgbi` encoder sends page copies (``EngineConfiguration/pageCopies``).
        public var pageCopies = true
        /// ``EngineConfiguration/cachedCaptureBytes``; nil: the default.
        public var cachedCaptureBytes: Int?
        public var seed: UInt64 = 2011
        /// Replay this recorded trace (Docs/TRACE.md) instead of the synthetic workloads: the region is one
        /// image long and each epoch writes the next image (up to `epochs`, or as many as it has).
        public var trace: TraceDirectory?
        public init() {}
    }

    /// Change detection alone: rehash and compare every block of the region.
    public struct ChangeDetection: Codable, Sendable {
        public var blockSize: Int
        public var regionMib: Int
        /// GB/s of memory scanned (median of three passes).
        public var gbps: Double
        public var floorXxh3Gbps: Double?
        public var floorMemcpyGbps: Double?
        /// The floor's memcpy split over two threads: how far a second encode thread can speed up the steps
        /// that stream memory on this host (the memory bus, not the CPU, is often the bound).
        public var floorMemcpyGbpsTwoThreads: Double?
        /// gbps / floor's XXH3 on 64-byte blocks.
        public var ratioToFloorXxh3: Double?
    }

    /// One (workload, mode) run.
    public struct ModeRun: Codable, Sendable {
        /// The synthetic workload, or the trace's name.
        public var workload: String
        public var mode: String
        /// The general compressor the mode ran with.
        public var compression: String
        public var blockSize: Int
        /// Measured epochs (after the initial full copy).
        public var epochs: Int
        public var pagesPerEpoch: Int
        /// Bytes sent over the measured epochs (the initial full copy excluded).
        public var wireBytes: Int
        public var wireBytesPerEpoch: Int
        /// The encoded body before the general compressor, per epoch.
        public var bodyBytesPerEpoch: Int
        /// Measured epochs whose body went uncompressed (its sample did not compress enough).
        public var epochsStoredRaw: Int
        /// wireBytes / the `page` mode's, for the same workload.
        public var ratioToPage: Double?
        public var initialSyncBytes: Int
        public var blocksDirty: Int
        /// Changed non-zero blocks looked up in the content index (`fgbi`): fewer than `blocksDirty` while the
        /// encoder samples (admission by measured use).
        public var blocksConsulted: Int
        public var sharedHits: Int
        public var collisions: Int
        public var zeroBlocks: Int
        public var diffBlocks: Int
        public var literalBlocks: Int
        /// Blocks sent as splices of content given earlier in the epoch or held by the backup
        /// (``EngineConfiguration/splicing``).
        public var splicedBlocks: Int
        /// Written pages sent as a copy of another page (``EngineConfiguration/pageCopies``).
        public var pagesCopied: Int
        /// Guest pause per epoch: tracker collect plus capture.
        public var pauseMsP50: Double
        public var pauseMsP99: Double
        /// Encoding and compression per epoch, while the guest runs.
        public var encodeMsP50: Double
        /// The same, averaged over the epochs: the encoder's CPU per epoch, with the rare epochs that do
        /// upkeep (the content index's sweeps) that the median leaves out.
        public var encodeMsMean: Double
        public var encodeMsP99: Double
        /// Of which the general compressor.
        public var compressMsP50: Double
        /// Replica apply per epoch.
        public var applyMsP50: Double
        /// Dirty pages processed per second of collect + capture + encode, on one core.
        public var dirtyGbps: Double
        /// Threads one epoch's encode ran on.
        public var encodeThreads: Int
        /// Of the epochs, those encoded on several threads (with ``encodeThreads`` > 1 an epoch goes on one
        /// when it is small or when that measured faster: ``FGBI/EngineConfiguration/choosesEncodeThreadsByTime``).
        public var epochsEncodedSplit: Int
        /// Encode time (compression included, median epoch) per changed block (`fgbi`) or written page (the
        /// page modes), ns.
        public var encodeNsPerBlock: Double
        /// Written pages' bytes encoded per second of encode time (median epoch) per thread the epochs ran on,
        /// GB/s: an epoch encoded on one thread counts one, a split epoch ``encodeThreads``, averaged over the
        /// epochs (so a run whose epochs stayed on one thread is not divided by the threads it was allowed).
        public var encodeGbps: Double
        /// Engine metadata per GiB of guest memory.
        public var metadataBytesPerGib: Int
        /// The replica equalled the primary after every epoch.
        public var verified: Bool
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Measures change detection: the rehash loop over the whole region, steady state (nothing changed).
    public func measureChangeDetection(floor: FloorBaseline?) throws -> ChangeDetection {
        let memory = try GuestMemory.anonymous(length: configuration.regionMiB << 20)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: configuration.seed)
        let geometry = try BlockGeometry(blockSize: configuration.blockSize)
        let table = BlockTable(regionLength: memory.length, geometry: geometry)
        let previous = UnsafeMutablePointer<UInt64>.allocate(capacity: 64)
        defer { previous.deallocate() }
        var times: [Double] = []
        for pass in 0..<4 {
            let start = MonotonicClock.nanoseconds()
            var changed: UInt64 = 0
            for page in 0..<memory.pageCount {
                changed |= table.rehash(page: page, in: memory.page(page), previous: previous)
            }
            let seconds = Double(MonotonicClock.nanoseconds() - start) / 1e9
            if pass > 0 { times.append(seconds) } // the first pass finds every block changed
            if pass > 0 && changed != 0 { throw BenchmarkError("memory changed under the change-detection pass") }
        }
        let gbps = Double(memory.length) / Summary(times).median / 1e9
        let xxh3 = floor?.metrics["xxh3_64B_blocks_GBps"]
        return ChangeDetection(
            blockSize: configuration.blockSize, regionMib: configuration.regionMiB, gbps: gbps,
            floorXxh3Gbps: xxh3, floorMemcpyGbps: floor?.metrics["memcpy_GBps"],
            floorMemcpyGbpsTwoThreads: floor?.metrics["memcpy_GBps_2_threads"],
            ratioToFloorXxh3: xxh3.map { gbps / $0 })
    }

    /// Runs every (workload, mode) pair; `progress` gets a line before each.
    public func run(progress: (String) -> Void) throws -> [ModeRun] {
        var runs: [ModeRun] = []
        let sources: [BenchmarkSource] =
            configuration.trace.map { [.trace($0)] } ?? configuration.workloads.map { .workload($0) }
        for source in sources {
            for mode in configuration.modes {
                for threads in mode == .fgbi ? configuration.encodeThreads : [1] {
                    progress(
                        "engine: \(source.name) workload, \(mode) mode"
                            + (mode == .fgbi ? ", \(threads) encode thread(s)" : ""))
                    runs.append(try run(source: source, mode: mode, encodeThreads: threads))
                }
            }
            if let page = runs.last(where: { $0.workload == source.name && $0.mode == ReplicationMode.page.rawValue }) {
                for index in runs.indices where runs[index].workload == source.name {
                    runs[index].ratioToPage = Double(runs[index].wireBytes) / Double(max(page.wireBytes, 1))
                }
            }
        }
        return runs
    }

    private func run(source: BenchmarkSource, mode: ReplicationMode, encodeThreads: Int) throws -> ModeRun {
        let length = source.regionBytes(default: configuration.regionMiB << 20)
        let memory = try GuestMemory.anonymous(length: length)
        let backup = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        try backup.prefault()
        var replayer: TraceReplayer?
        switch source {
        case .workload:
            SyntheticWorkload.fillInitial(memory, seed: configuration.seed)
        case .trace(let trace):
            replayer = try TraceReplayer(memory: memory, trace: trace)
            try replayer!.prepare()
        }
        let engine = try PrimaryEngine(
            regions: [memory], configuration: engineConfiguration(mode: mode, encodeThreads: encodeThreads))
        let replica = Replica(regions: [backup], geometry: engine.geometry)
        let tracker = try configuration.tracker.makeTracker(for: memory)
        try engine.attachWitnesses([tracker as? any WrittenPageWitness])
        let capture = EpochCapture()
        var dirty = DirtyPageSet()

        try tracker.start()
        defer { try? tracker.stop() }
        // Epoch 0: the full copy a new backup needs.
        try engine.capture([], into: capture)
        let initial = try engine.encode(capture)
        try replica.apply(initial.delta)

        var random = SeededRandom(seed: configuration.seed &+ 1)
        var totals = EpochStatistics()
        var timings = EpochTimings()
        var verified = memcmp(memory.base, backup.base, length) == 0
        var epochs = 0
        for _ in 0..<configuration.epochs {
            if let replayer {
                guard try replayer.writeNext() else { break } // the trace has no more images
            } else if case .workload(let workload) = source {
                workload.writeEpoch(memory, pages: configuration.pagesPerEpoch, random: &random)
            }
            epochs += 1
            let start = MonotonicClock.nanoseconds()
            try tracker.collect(into: &dirty)
            try engine.capture([dirty], into: capture)
            let paused = MonotonicClock.nanoseconds()
            // As the primary's sender does: the delta stays in the engine's buffer (no copy into a fresh array,
            // whose first touch would be timed as encoding).
            var encoded: UInt64 = 0
            var applied: UInt64 = 0
            let statistics = try engine.encode(capture) { delta, statistics in
                encoded = MonotonicClock.nanoseconds()
                try replica.apply(delta)
                applied = MonotonicClock.nanoseconds()
                return statistics
            }
            timings.pauses.append(Double(paused - start) / 1e6)
            timings.encodes.append(Double(encoded - paused) / 1e6)
            timings.compresses.append(Double(statistics.compressNanoseconds) / 1e6)
            timings.applies.append(Double(applied - encoded) / 1e6)
            timings.processingSeconds += Double(encoded - start) / 1e9
            totals.accumulate(statistics)
            verified = verified && memcmp(memory.base, backup.base, length) == 0
        }
        return ModeRun(
            source: source, mode: mode, engine: engine, epochs: epochs,
            pagesPerEpoch: replayer == nil ? configuration.pagesPerEpoch : totals.pagesWritten / max(epochs, 1),
            totals: totals, initialSyncBytes: initial.statistics.wireBytes, timings: timings,
            encodeThreads: encodeThreads,
            regionBytes: length, verified: verified)
    }

    /// The engine configuration of one run: `mode` on `encodeThreads`, with the benchmark's block size,
    /// compressor and budgets.
    private func engineConfiguration(mode: ReplicationMode, encodeThreads: Int) -> EngineConfiguration {
        var engineConfiguration = EngineConfiguration(
            mode: mode, blockSize: configuration.blockSize, compression: configuration.compression)
        engineConfiguration.setCacheBudget(bytes: configuration.cacheBudgetBytes)
        engineConfiguration.splicing = configuration.splicing
        engineConfiguration.pageCopies = configuration.pageCopies
        if let bytes = configuration.cachedCaptureBytes { engineConfiguration.cachedCaptureBytes = bytes }
        engineConfiguration.encodeThreads = encodeThreads
        engineConfiguration.choosesEncodeThreadsByTime = !configuration.alwaysSplit
        if let saving = configuration.compressionMinimumSaving { engineConfiguration.compressionMinimumSaving = saving }
        return engineConfiguration
    }
}

/// Per-epoch times of one run, milliseconds, and the seconds from each epoch's collection to its delta.
struct EpochTimings {
    var pauses: [Double] = []
    var encodes: [Double] = []
    var compresses: [Double] = []
    var applies: [Double] = []
    var processingSeconds = 0.0
}

extension EngineBenchmark.ModeRun {
    /// The threads an epoch of the run was encoded on, averaged over its `epochs`: `split` of them on
    /// `threads`, the others on one (what ``encodeGbps`` divides by).
    public static func threadsPerEpoch(epochs: Int, split: Int, threads: Int) -> Double {
        epochs > 0 ? Double(epochs - split + split * threads) / Double(epochs) : 1
    }

    /// One run's row from its totals and timings.
    init(
        source: BenchmarkSource, mode: ReplicationMode, engine: PrimaryEngine, epochs: Int, pagesPerEpoch: Int,
        totals: EpochStatistics,
        initialSyncBytes: Int, timings: EpochTimings, encodeThreads: Int, regionBytes length: Int, verified: Bool
    ) {
        let encodeMedian = Summary(timings.encodes).median
        let threadsPerEpoch = Self.threadsPerEpoch(
            epochs: epochs, split: totals.epochsEncodedSplit, threads: encodeThreads)
        self.init(
            workload: source.name, mode: mode.rawValue,
            compression: engine.configuration.effectiveCompression.description, blockSize: engine.geometry.blockSize,
            epochs: epochs, pagesPerEpoch: pagesPerEpoch,
            wireBytes: totals.wireBytes, wireBytesPerEpoch: totals.wireBytes / max(epochs, 1),
            bodyBytesPerEpoch: totals.bodyBytes / max(epochs, 1), epochsStoredRaw: totals.bodiesStoredRaw,
            ratioToPage: nil, initialSyncBytes: initialSyncBytes,
            blocksDirty: totals.blocksDirty, blocksConsulted: totals.blocksConsulted, sharedHits: totals.sharedHits,
            collisions: totals.collisions, zeroBlocks: totals.zeroBlocks, diffBlocks: totals.diffBlocks,
            literalBlocks: totals.literalBlocks, splicedBlocks: totals.splicedBlocks, pagesCopied: totals.pagesCopied,
            pauseMsP50: Summary(timings.pauses).median, pauseMsP99: Summary.percentile(timings.pauses, 0.99),
            encodeMsP50: encodeMedian,
            encodeMsMean: timings.encodes.reduce(0, +) / Double(max(timings.encodes.count, 1)),
            encodeMsP99: Summary.percentile(timings.encodes, 0.99),
            compressMsP50: Summary(timings.compresses).median,
            applyMsP50: Summary(timings.applies).median,
            dirtyGbps: Double(totals.pagesWritten * GuestMemory.pageSize) / timings.processingSeconds / 1e9,
            encodeThreads: encodeThreads, epochsEncodedSplit: totals.epochsEncodedSplit,
            encodeNsPerBlock: encodeMedian * 1e6 / Double(max(totals.blocksDirty / max(epochs, 1), 1)),
            encodeGbps: Double(totals.pagesWritten / max(epochs, 1) * GuestMemory.pageSize)
                / (encodeMedian / 1e3) / 1e9 / threadsPerEpoch,
            metadataBytesPerGib: Int(Double(engine.metadataBytes) * Double(1 << 30) / Double(length)),
            verified: verified)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
