import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `fgbi bench replicate`: the whole pipeline per mode on the same memory history: a ``Primary`` (tracker,
/// capture, encode, compress, send) and a ``Backup`` (receive, decode, apply, acknowledge) in this process
/// over loopback. A ``LockstepGuest`` writes one epoch (a workload's or a trace's next image), the primary
/// cuts it on its timer, the benchmark waits until the backup has acknowledged it and compares the whole
/// backup with the primary before the next epoch is written. Every mode sees the same epochs, so their
/// bytes and costs compare side by side.
public struct ReplicateBenchmark: Sendable {
    public struct Configuration: Sendable {
        public var sources: [BenchmarkSource] = [.workload(.sparse)]
        public var modes = ReplicationMode.allCases
        /// Block sizes the `fgbi` mode runs at (a sweep when more than one); the page modes run once.
        public var blockSizes = [64]
        /// nil: each mode's default compressor.
        public var compression: Compression?
        /// Epochs with writes per run (a trace: at most its images after the first).
        public var epochs = 50
        public var pagesPerEpoch = 8192
        public var regionMiB = 256
        public var epochMilliseconds = 25
        public var tracker = TrackerKind.uffdAsync
        /// The content index's budget (`fgbi`) and the page cache's (`xbzrle`), bytes.
        public var cacheBudgetBytes = 64 << 20
        /// Whether the `fgbi` encoder splices (``EngineConfiguration/splicing``).
        public var splicing = false
        /// Whether the `fgbi` encoder sends page copies (``EngineConfiguration/pageCopies``).
        public var pageCopies = true
        /// ``EngineConfiguration/cachedCaptureBytes``; nil: the default.
        public var cachedCaptureBytes: Int?
        /// Whether every frame is encrypted (ChaCha20-Poly1305, as off loopback), with a key made for each run;
        /// its cost then counts in both sides' CPU.
        public var encrypt = false
        public var seed: UInt64 = 2011
        public init() {}
    }

    /// One epoch with writes, as the primary reported it.
    public struct EpochRecord: Codable, Sendable {
        public var epoch: UInt64
        public var pagesWritten: Int
        public var wireBytes: Int
        /// Guest pause: collect and capture (the time the pause hook took to stop the guest excluded).
        public var pauseMs: Double
        /// Encode and compress, after the guest resumed.
        public var encodeMs: Double
    }

    /// One (source, mode, block size) run.
    public struct ModeRun: Codable, Sendable {
        public var workload: String
        public var mode: String
        public var compression: String
        /// Whether every frame went encrypted (``Configuration/encrypt``).
        public var encrypted: Bool
        public var blockSize: Int
        /// Epochs with writes, each verified after its commit.
        public var epochs: Int
        public var pagesWritten: Int
        /// Bytes of epoch deltas after the synchronisation, every epoch the primary cut counted (empty ones
        /// between the written epochs and the final one too).
        public var wireBytes: Int
        /// Of which the epochs with writes, on average.
        public var wireBytesPerEpoch: Int
        /// wireBytes over the `page` mode's for the same source.
        public var ratioToPage: Double?
        /// Pre-copy and first paused epoch: the whole region once.
        public var synchronisationBytes: Int
        public var pauseMsP50: Double
        public var pauseMsP99: Double
        /// CPU of the primary's threads (collect, capture, encode, compress, send, acks, heartbeats) and of
        /// the backup's (receive, verify, decode, apply, ack), per epoch with writes.
        public var primaryCpuMsPerEpoch: Double
        public var backupCpuMsPerEpoch: Double
        /// Written pages' bytes per second of primary plus backup CPU.
        public var dirtyGbps: Double
        /// The primary engine's metadata per GiB of guest memory.
        public var metadataBytesPerGib: Int
        public var sharedHits: Int
        public var zeroBlocks: Int
        public var diffBlocks: Int
        public var literalBlocks: Int
        /// Blocks sent as splices of content given earlier in the epoch or held by the backup
        /// (``EngineConfiguration/splicing``).
        public var splicedBlocks: Int
        /// Epochs whose splicing took only a sample of the blocks, because splices had not paid.
        public var spliceThinnedEpochs: Int
        /// The backup equalled the primary, byte for byte, after every epoch's commit and after the final one.
        public var verified: Bool
        public var perEpoch: [EpochRecord]
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    /// Runs every (source, mode, block size); `progress` gets a line per run and per tenth of its epochs.
    public func run(progress: (String) -> Void) throws -> [ModeRun] {
        var runs: [ModeRun] = []
        for source in configuration.sources {
            let first = runs.count
            for mode in configuration.modes {
                let sizes = mode == .fgbi ? configuration.blockSizes : [configuration.blockSizes[0]]
                for blockSize in sizes {
                    progress("replicate: \(source.name), \(mode) mode, \(blockSize)-byte blocks")
                    runs.append(try run(source: source, mode: mode, blockSize: blockSize, progress: progress))
                }
            }
            if let page = runs[first...].first(where: { $0.mode == ReplicationMode.page.rawValue }) {
                for index in first..<runs.count {
                    runs[index].ratioToPage = Double(runs[index].wireBytes) / Double(max(page.wireBytes, 1))
                }
            }
        }
        return runs
    }

    /// What the primary's observer collects, on the sender thread.
    private final class Observations: @unchecked Sendable {
        private let lock = NSLock()
        private var records: [UInt64: EpochStatistics] = [:]

        func record(_ capture: EpochCapture, _ statistics: EpochStatistics) {
            guard !capture.isPrecopy else { return }
            lock.withLock { records[capture.epoch] = statistics }
        }

        func statistics(after epoch: UInt64) -> [UInt64: EpochStatistics] {
            lock.withLock { records.filter { $0.key > epoch } }
        }

        subscript(epoch: UInt64) -> EpochStatistics? { lock.withLock { records[epoch] } }

        /// The record of the epoch of `range` that holds one write's pages: the one with the most written pages.
        func record(holdingWritesOf range: ClosedRange<UInt64>) -> EpochRecord? {
            let candidates = range.compactMap { epoch in self[epoch].map { (epoch, $0) } }
            guard let (epoch, s) = candidates.max(by: { $0.1.pagesWritten < $1.1.pagesWritten }) else { return nil }
            return EpochRecord(
                epoch: epoch, pagesWritten: s.pagesWritten, wireBytes: s.wireBytes,
                pauseMs: Double(s.pauseNanoseconds - s.stopNanoseconds) / 1e6,
                encodeMs: Double(s.encodeNanoseconds + s.compressNanoseconds) / 1e6)
        }
    }

    private func run(source: BenchmarkSource, mode: ReplicationMode, blockSize: Int, progress: (String) -> Void) throws
        -> ModeRun
    {
        let length = source.regionBytes(default: configuration.regionMiB << 20)
        let memory = try GuestMemory.anonymous(length: length)
        let backupMemory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        try backupMemory.prefault()
        let guest = try LockstepGuest(
            memory: memory,
            source: source.guestSource(pagesPerEpoch: configuration.pagesPerEpoch, seed: configuration.seed))
        let epochs = try source.epochs(wanted: configuration.epochs)
        let geometry = try BlockGeometry(blockSize: blockSize)

        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.primaryTimeout = .seconds(10)
        let encryption = RunEncryption(encrypt: configuration.encrypt)
        encryption.configure(&backupConfiguration)
        let backup = try Backup(regions: [backupMemory], geometry: geometry, configuration: backupConfiguration)
        let backupThread = BackupThread(backup)

        var primaryConfiguration = primaryConfiguration(mode: mode, blockSize: blockSize, backupPort: backup.port)
        encryption.configure(&primaryConfiguration)
        let observations = Observations()
        let primary = try Primary(
            regions: [memory], configuration: primaryConfiguration, hooks: guest.hooks,
            observer: { observations.record($0, $1) })
        var stopped = false
        defer {
            if !stopped { _ = try? primary.stop(finalEpoch: false) }
            backup.stop()
            backupThread.join()
        }
        try primary.start()

        let syncEpoch = try Self.waitForSynchronisation(of: primary)
        let synchronised = primary.statistics
        let cpuAtSync = CPUTimes(backupThread)

        let (writtenEpochs, pagesWritten, verifiedEpochs) = try Self.replicateEpochs(
            epochs, guest: guest, primary: primary, memory: memory, backupMemory: backupMemory, after: syncEpoch,
            progress: progress)
        let (primaryCPU, backupCPU) = CPUTimes(backupThread).primaryAndBackup(since: cpuAtSync)
        stopped = true
        _ = try primary.stop()
        backupThread.join()
        try backupThread.rethrow()
        let verified = verifiedEpochs && memcmp(memory.base, backupMemory.base, length) == 0

        let statistics = primary.statistics
        let epochsAfterSync = observations.statistics(after: syncEpoch)
        var totals = EpochStatistics()
        for (_, epochStatistics) in epochsAfterSync { totals.accumulate(epochStatistics) }
        let records = writtenEpochs.compactMap { observations.record(holdingWritesOf: $0) }
        let count = max(records.count, 1)
        let pauses = records.map(\.pauseMs)
        return ModeRun(
            workload: source.name, mode: mode.rawValue,
            compression: primaryConfiguration.engine.effectiveCompression.description,
            encrypted: configuration.encrypt, blockSize: blockSize,
            epochs: records.count, pagesWritten: pagesWritten,
            wireBytes: statistics.bytesSent - synchronised.bytesSent,
            wireBytesPerEpoch: records.reduce(0) { $0 + $1.wireBytes } / count, ratioToPage: nil,
            synchronisationBytes: synchronised.precopyBytes + synchronised.bytesSent,
            pauseMsP50: pauses.isEmpty ? 0 : Summary.percentile(pauses, 0.5),
            pauseMsP99: pauses.isEmpty ? 0 : Summary.percentile(pauses, 0.99),
            primaryCpuMsPerEpoch: primaryCPU / 1e6 / Double(count),
            backupCpuMsPerEpoch: backupCPU / 1e6 / Double(count),
            dirtyGbps: primaryCPU + backupCPU > 0
                ? Double(pagesWritten * GuestMemory.pageSize) / (primaryCPU + backupCPU) : 0,
            metadataBytesPerGib: Int(Double(statistics.metadataBytes) * Double(1 << 30) / Double(length)),
            sharedHits: totals.sharedHits, zeroBlocks: totals.zeroBlocks, diffBlocks: totals.diffBlocks,
            literalBlocks: totals.literalBlocks, splicedBlocks: totals.splicedBlocks,
            spliceThinnedEpochs: totals.spliceThinnedEpochs,
            verified: verified && records.count == writtenEpochs.count,
            perEpoch: records)
    }

    /// Writes `epochs` rounds of the guest after the synchronisation's `syncEpoch`, waiting for each round's
    /// commit and comparing both memories after it: each write's epochs (from after the previous write's covering
    /// epoch to this one's), the pages written, and whether every comparison held.
    private static func replicateEpochs(
        _ epochs: Int, guest: LockstepGuest, primary: Primary, memory: GuestMemory, backupMemory: GuestMemory,
        after syncEpoch: UInt64, progress: (String) -> Void
    ) throws -> (written: [ClosedRange<UInt64>], pages: Int, verified: Bool) {
        let length = memory.length
        var verified = memcmp(memory.base, backupMemory.base, length) == 0
        // Each write's epochs: from after the previous write's covering epoch to this one's. The writes are
        // in exactly one of them, but not always the last: epochCoveringWritesSoFar may name one more.
        var writtenEpochs: [ClosedRange<UInt64>] = []
        var pagesWritten = 0
        var covered = syncEpoch
        for number in 1...epochs {
            guard try guest.writeNext() else { break }
            pagesWritten += guest.lastWritten
            let epoch = primary.epochCoveringWritesSoFar
            guard primary.waitForCommit(epoch, timeout: .seconds(60)) else {
                throw BenchmarkError(
                    "epoch \(epoch) was not committed within 60 s\(primary.failure.map { ": \($0)" } ?? "")")
            }
            writtenEpochs.append((covered + 1)...max(epoch, covered + 1))
            covered = max(epoch, covered + 1)
            // The guest is idle and the backup has applied the epoch: both must hold the same bytes.
            verified = verified && memcmp(memory.base, backupMemory.base, length) == 0
            if number % max(epochs / 10, 1) == 0 { progress("  epoch \(number)/\(epochs)") }
        }
        return (writtenEpochs, pagesWritten, verified)
    }

    /// The primary of one run: `mode` with `blockSize`, the benchmark's compressor, budgets, tracker and epoch
    /// interval, replicating to the backup on `backupPort` with no reconnection.
    private func primaryConfiguration(mode: ReplicationMode, blockSize: Int, backupPort: UInt16) -> PrimaryConfiguration
    {
        var primaryConfiguration = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: backupPort))
        primaryConfiguration.engine = EngineConfiguration(
            mode: mode, blockSize: blockSize, compression: configuration.compression)
        primaryConfiguration.engine.setCacheBudget(bytes: configuration.cacheBudgetBytes)
        primaryConfiguration.engine.splicing = configuration.splicing
        primaryConfiguration.engine.pageCopies = configuration.pageCopies
        if let bytes = configuration.cachedCaptureBytes { primaryConfiguration.engine.cachedCaptureBytes = bytes }
        primaryConfiguration.tracker = configuration.tracker
        primaryConfiguration.epochInterval = .milliseconds(configuration.epochMilliseconds)
        primaryConfiguration.backupTimeout = .seconds(10)
        primaryConfiguration.reconnectWindow = .zero
        return primaryConfiguration
    }

    /// Waits (the guest idle) until the backup holds the whole region; returns the epoch that synchronised it.
    static func waitForSynchronisation(of primary: Primary) throws -> UInt64 {
        let deadline = MonotonicClock.nanoseconds() + 300_000_000_000
        while true {
            if let epoch = primary.committedEpoch { return epoch }
            if let failure = primary.failure {
                throw BenchmarkError("replication failed during synchronisation: \(failure)")
            }
            guard MonotonicClock.nanoseconds() < deadline else {
                throw BenchmarkError("the backup was not synchronised within 300 s")
            }
            MonotonicClock.sleep(nanoseconds: 1_000_000)
        }
    }
}

/// CPU time so far: the whole process's, the in-process backup's thread's, and the calling (guest) thread's.
private struct CPUTimes {
    var process: UInt64
    var backup: UInt64
    var own: UInt64

    init(_ backupThread: BackupThread) {
        process = MonotonicClock.processCPUNanoseconds()
        backup = backupThread.cpuNanoseconds()
        own = MonotonicClock.threadCPUNanoseconds()
    }

    /// Nanoseconds since `start`: the primary's (everything this process ran, less the backup's thread and the
    /// guest's thread) and the backup's.
    func primaryAndBackup(since start: CPUTimes) -> (primary: Double, backup: Double) {
        let backupCPU = Double(backup - start.backup)
        return (max(Double(process - start.process) - backupCPU - Double(own - start.own), 0), backupCPU)
    }
}
