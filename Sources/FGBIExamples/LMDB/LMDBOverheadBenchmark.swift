import CSupport
import FGBI
import FGBIBench
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The LMDB workload's throughput with and without replication, side by side in one run: each round runs
/// the same transactions (the same history, a fresh database) once unreplicated and once per epoch
/// interval replicated to a backup in this process over loopback, alternating, so the machine's drift
/// touches every variant alike. The figure is the time to commit a fixed number of transactions.
public struct LMDBOverheadBenchmark {
    public struct Configuration: Sendable {
        public var history: KeyValueHistory
        public var transactions = 100_000
        public var mapBytes = 256 << 20
        /// Epoch intervals to replicate at (each one a variant beside the unreplicated one).
        public var epochMilliseconds = [25]
        public var rounds = 3
        public var mode = ReplicationMode.fgbi
        /// How the `fgbi` mode captures in the pause (rehash, copy, or the engine's measured choice).
        public var capture = CaptureStrategy.automatic
        /// Where the database files go (tmpfs).
        public var directory = "/dev/shm"
        /// The writer's CPU, apart from replication's (every other CPU); nil: no pinning, all threads share
        /// all CPUs.
        public var writerCPU: Int? = 0
        /// With a writer CPU: whether the primary's threads may also use the writer's CPU (they do its
        /// capture there while the writer is paused), the in-process backup staying on the others at a lower
        /// priority, as a backup on another host would; false keeps all of replication off the writer's CPU.
        public var replicationOnAllCPUs = false
        /// The primary's sender thread's nice increment (nil: the library's default).
        public var senderNiceIncrement: Int?
        /// Captured epochs that may wait for the sender (``PrimaryConfiguration/captureBuffers``; nil: the
        /// library's default).
        public var captureBuffers: Int?
        /// ``EngineConfiguration/compressionMinimumSaving`` (nil: the mode's default).
        public var compressionMinimumSaving: Double?
        /// ``EngineConfiguration/contentBudgetBytes`` and ``EngineConfiguration/pageCacheBudgetBytes`` (nil:
        /// the library's defaults).
        public var cacheBudgetBytes: Int?
        /// ``EngineConfiguration/splicing``.
        public var splicing = false
        /// Whether the `fgbi` encoder sends page copies (``EngineConfiguration/pageCopies``).
        public var pageCopies = true
        /// ``EngineConfiguration/cachedCaptureBytes``; nil: the default.
        public var cachedCaptureBytes: Int?
        /// Whether every frame is encrypted (ChaCha20-Poly1305, as off loopback), with a key made for each run.
        public var encrypt = false
        /// SCHED_FIFO priority of the paused stage's threads (``EngineConfiguration/captureRealtimePriority``);
        /// one variant per entry, nil for normal scheduling.
        public var captureRealtimePriorities: [Int?] = [20]
        /// With a writer CPU: where the capture's helper thread runs while the writer is paused, one variant
        /// per placement (``CapturePlacement``).
        public var capturePlacements = [CapturePlacement.writerCPU]
        /// The tracker's hot-page policies (``PrimaryConfiguration/hotPages``), one variant per entry.
        public var hotPagePolicies = [HotPagePolicy.replicationDefault]

        public init(history: KeyValueHistory) { self.history = history }
    }

    /// Where the capture's helper thread runs (``EngineConfiguration/captureCPUs``) when the writer is pinned.
    public enum CapturePlacement: String, Sendable, CaseIterable, Encodable {
        /// On the writer's CPU, idle while the writer is paused: what a VMM does with a paused vCPU's CPU.
        case writerCPU = "writer"
        /// Wherever the primary's other threads run (the replication CPUs).
        case replicationCPUs = "replication"
    }

    /// One variant's figures over all rounds.
    public struct Variant: Sendable, Encodable {
        /// "none" or "fgbi @ 25 ms".
        public var name: String
        public var epochMs: Int?
        /// Where the capture's helper ran (replicated variants with a pinned writer).
        public var capturePlacement: CapturePlacement?
        /// The paused stage's SCHED_FIFO priority (nil: normal scheduling).
        public var captureRealtimePriority: Int?
        /// The tracker's hot-page policy (replicated variants).
        public var hotPages: String?
        public var transactions: Int
        /// Transactions per second, per round, and their median.
        public var transactionsPerSecond: [Double]
        public var medianTransactionsPerSecond: Double
        /// Median throughput relative to the unreplicated one (1 for it); slowdown = 1 - this.
        public var relativeThroughput: Double
        /// The median over the rounds of this variant's throughput relative to the unreplicated run of the
        /// same round: steadier than ``relativeThroughput`` when the machine drifts between rounds.
        public var pairedRelativeThroughput: Double
        /// Commit to acknowledgement over all rounds (replicated only).
        public var acknowledgementMsP50: Double?
        public var acknowledgementMsP99: Double?
        public var epochsPerRound: Double?
        /// The writing time over the epochs: how long epochs really lasted (longer than asked when the
        /// encoder cannot keep up and backpressure stretches them).
        public var meanEpochMs: Double?
        public var pauseMsP50: Double?
        public var pauseMsP99: Double?
        /// Of the pause (median over the epochs): stopping the writer at the gate, and the capture.
        public var stopMsP50: Double?
        public var captureMsP50: Double?
        /// The primary's encoding per epoch, mean over the epochs: the encoder and the general compressor, run
        /// on the sender's thread while the writer runs (its CPU time: the stage runs without waiting). With
        /// ``meanEpochMs`` it shows whether the encoder set the epoch's length.
        public var encodeMsMean: Double?
        /// Epochs the `fgbi` mode captured by copying pages, of all (the rest rehashed in the pause).
        public var copiedEpochShare: Double?
        /// Pages captured per epoch: those written, and with hot pages, every hot page.
        public var pagesWrittenPerEpoch: Double?
        /// Of them, the pages the tracker reported without scanning (hot pages and the gaps between them).
        public var pagesUnscannedPerEpoch: Double?
        public var wireBytesPerEpoch: Double?
        /// CPU per epoch of replication (replicated only), from the writer's start (the backup's
        /// synchronisation, which runs on beside the first transactions, included) to the backup's end: the
        /// process's CPU time less the writer's, and the backup's serving thread's, which is counted apart (a
        /// backup on another host would not share this one's CPUs). Beside ``wireBytesPerEpoch``: bytes and
        /// CPU together.
        public var primaryCpuMsPerEpoch: Double?
        public var backupCpuMsPerEpoch: Double?
        /// The replica equalled the primary's map after the final epoch, in every round.
        public var verified: Bool?
        /// The writer thread's time, the median of each part over the rounds: where a replicated run's extra
        /// time went (kernel time holds the first writes after re-protection, the gate wait the pauses).
        public var writer: ReplicatedKeyValueStore.WriterTime
        /// Seconds the writer took to commit the transactions (the median over the rounds).
        public var writingSeconds: Double
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    public func run(progress: (String) -> Void = { _ in }) throws -> [Variant] {
        let setups = self.setups
        var rates: [[Double]] = setups.map { _ in [] }
        var acknowledgements: [[Double]] = setups.map { _ in [] }
        var pauses: [[Double]] = setups.map { _ in [] }
        var epochs: [Double] = setups.map { _ in 0 }
        var pages: [Double] = setups.map { _ in 0 }
        var unscanned: [Double] = setups.map { _ in 0 }
        var bytes: [Double] = setups.map { _ in 0 }
        var verified: [Bool] = setups.map { _ in true }
        var writers: [[ReplicatedKeyValueStore.WriterTime]] = setups.map { _ in [] }
        var writing: [[Double]] = setups.map { _ in [] }
        var parts: [PauseParts] = setups.map { _ in PauseParts() }
        var cpu: [ReplicationCPU] = setups.map { _ in ReplicationCPU() }
        for round in 0..<configuration.rounds {
            for (index, setup) in setups.enumerated() {
                let result = try runOnce(setup)
                rates[index].append(result.statistics.transactionsPerSecond)
                acknowledgements[index] += result.statistics.acknowledgementMilliseconds
                if let replication = result.statistics.replication {
                    pauses[index] += replication.recentPausesMs
                    epochs[index] += Double(replication.epochsSent)
                    pages[index] += Double(replication.pagesWritten)
                    unscanned[index] += Double(replication.pagesReportedUnscanned)
                    bytes[index] += Double(replication.bytesSent)
                }
                verified[index] = verified[index] && result.verified
                writers[index].append(result.statistics.writer)
                writing[index].append(result.statistics.writingSeconds)
                parts[index].add(result.pauses)
                cpu[index].add(result.cpu)
                progress(
                    "round \(round + 1)/\(configuration.rounds), \(name(setup)): "
                        + "\(formatted(rates[index].last ?? 0, 0)) transactions/s")
            }
        }
        let baseline = Summary(rates[0]).median
        return setups.enumerated().map { index, setup in
            let median = Summary(rates[index]).median
            let replicated = setup.epochMilliseconds != nil
            let epochCount = max(epochs[index], 1)
            return Variant(
                name: name(setup), epochMs: setup.epochMilliseconds, capturePlacement: setup.placement,
                captureRealtimePriority: setup.realtimePriority, hotPages: setup.hotPages.map(\.description),
                transactions: configuration.transactions,
                transactionsPerSecond: rates[index], medianTransactionsPerSecond: median,
                relativeThroughput: median / baseline,
                pairedRelativeThroughput: Summary(zip(rates[index], rates[0]).map { $0 / $1 }).median,
                acknowledgementMsP50: replicated ? Summary.percentile(acknowledgements[index], 0.5) : nil,
                acknowledgementMsP99: replicated ? Summary.percentile(acknowledgements[index], 0.99) : nil,
                epochsPerRound: replicated ? epochs[index] / Double(configuration.rounds) : nil,
                meanEpochMs: replicated
                    ? Summary(writing[index]).median * 1000 / max(epochs[index] / Double(configuration.rounds), 1)
                    : nil,
                pauseMsP50: replicated ? Summary.percentile(pauses[index], 0.5) : nil,
                pauseMsP99: replicated ? Summary.percentile(pauses[index], 0.99) : nil,
                stopMsP50: replicated ? Summary.percentile(parts[index].stopMs, 0.5) : nil,
                captureMsP50: replicated ? Summary.percentile(parts[index].captureMs, 0.5) : nil,
                encodeMsMean: replicated
                    ? parts[index].encodeMs.reduce(0, +) / Double(max(parts[index].encodeMs.count, 1)) : nil,
                copiedEpochShare: replicated
                    ? Double(parts[index].copied) / Double(max(parts[index].captureMs.count, 1)) : nil,
                pagesWrittenPerEpoch: replicated ? pages[index] / epochCount : nil,
                pagesUnscannedPerEpoch: replicated ? unscanned[index] / epochCount : nil,
                wireBytesPerEpoch: replicated ? bytes[index] / epochCount : nil,
                primaryCpuMsPerEpoch: replicated ? Double(cpu[index].primaryNanoseconds) / 1e6 / epochCount : nil,
                backupCpuMsPerEpoch: replicated ? Double(cpu[index].backupNanoseconds) / 1e6 / epochCount : nil,
                verified: replicated ? verified[index] : nil,
                writer: ReplicatedKeyValueStore.WriterTime(
                    userSeconds: Summary(writers[index].map(\.userSeconds)).median,
                    systemSeconds: Summary(writers[index].map(\.systemSeconds)).median,
                    gateWaitSeconds: Summary(writers[index].map(\.gateWaitSeconds)).median,
                    involuntarySwitches: Int(Summary(writers[index].map { Double($0.involuntarySwitches) }).median)),
                writingSeconds: Summary(writing[index]).median)
        }
    }

    /// Each epoch's pause parts, and its encoding, gathered by the primary's observer.
    struct PauseParts: Sendable {
        var stopMs: [Double] = []
        var captureMs: [Double] = []
        var encodeMs: [Double] = []
        var copied = 0

        mutating func add(_ other: PauseParts) {
            stopMs += other.stopMs
            captureMs += other.captureMs
            encodeMs += other.encodeMs
            copied += other.copied
        }
    }

    /// Replication's CPU over a run: the primary's threads, and the backup's serving thread.
    struct ReplicationCPU: Sendable {
        var primaryNanoseconds: UInt64 = 0
        var backupNanoseconds: UInt64 = 0

        mutating func add(_ other: ReplicationCPU) {
            primaryNanoseconds += other.primaryNanoseconds
            backupNanoseconds += other.backupNanoseconds
        }
    }

    private func runOnce(_ setup: Setup) throws -> (
        statistics: ReplicatedKeyValueStore.RunStatistics, verified: Bool, pauses: PauseParts,
        cpu: ReplicationCPU
    ) {
        let all = Array(0..<min(ThreadScheduling.onlineCPUCount, 64))
        if let writer = configuration.writerCPU {
            // Everything created from here on (backup, primary threads, acknowledger) runs beside the writer.
            let others = all.filter { $0 != writer }
            try ThreadScheduling.pinCallingThread(to: others.isEmpty ? all : others)
        }
        defer { try? ThreadScheduling.pinCallingThread(to: all) }
        let path = URL(fileURLWithPath: configuration.directory)
            .appendingPathComponent("fgbi-bench-lmdb-\(getpid()).mdb").path
        defer {
            unlink(path)
            unlink(path + "-lock")
        }
        var backup: Backup?
        var serving: BackupThread?
        var replica: GuestMemory?
        var primaryConfiguration: PrimaryConfiguration?
        if let epochMilliseconds = setup.epochMilliseconds {
            let region = try GuestMemory.anonymous(length: configuration.mapBytes)
            try region.prefault()
            let encryption = RunEncryption(encrypt: configuration.encrypt)
            var backupSettings = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            encryption.configure(&backupSettings)
            let server = try Backup(regions: [region], geometry: try BlockGeometry(), configuration: backupSettings)
            var settings = replicationSettings(setup, epochMilliseconds: epochMilliseconds, backupPort: server.port)
            encryption.configure(&settings)
            backup = server
            replica = region
            let remote = configuration.replicationOnAllCPUs && configuration.writerCPU != nil
            serving = BackupThread(server, onStart: { if remote { _ = CSupport_raise_thread_nice(10) } })
            primaryConfiguration = settings
            if remote { try ThreadScheduling.pinCallingThread(to: all) }
        }
        let pauses = Mutex(PauseParts())
        let store = try ReplicatedKeyValueStore(
            path: path, mapBytes: configuration.mapBytes, history: configuration.history,
            configuration: primaryConfiguration,
            observer: { _, epoch in
                guard epoch.pauseNanoseconds > 0 else { return } // pre-copy steps: no pause
                pauses.withLock {
                    $0.stopMs.append(Double(epoch.stopNanoseconds) / 1e6)
                    $0.captureMs.append(Double(epoch.captureNanoseconds) / 1e6)
                    $0.encodeMs.append(Double(epoch.encodeNanoseconds + epoch.compressNanoseconds) / 1e6)
                    if epoch.captureStrategy == CaptureStrategy.copyPages.rawValue { $0.copied += 1 }
                }
            })
        let target = UInt64(configuration.transactions)
        // Replication's CPU is counted from the writer's start to the backup's end.
        var processBefore: UInt64 = 0
        var backupBefore: UInt64 = 0
        let statistics: ReplicatedKeyValueStore.RunStatistics
        do {
            statistics = try store.run(
                until: { $0.transactions >= target },
                writerStarts: {
                    if let writer = configuration.writerCPU { try ThreadScheduling.pinCallingThread(to: [writer]) }
                    processBefore = MonotonicClock.processCPUNanoseconds()
                    backupBefore = serving?.cpuNanoseconds() ?? 0
                })
        } catch {
            backup?.stop()
            throw error
        }
        var verified = true
        var cpu = ReplicationCPU()
        if let serving, let replica {
            (verified, cpu) = try finishReplicated(
                serving: serving, replica: replica, store: store, statistics: statistics,
                processBefore: processBefore, backupBefore: backupBefore)
        }
        return (statistics, verified, pauses.withLock { $0 }, cpu)
    }

    /// Waits for the backup's end, then counts replication's CPU since the writer's start (process CPU
    /// before `processBefore`, backup CPU before `backupBefore`) and compares the replica with the store's map.
    private func finishReplicated(
        serving: BackupThread, replica: GuestMemory, store: ReplicatedKeyValueStore,
        statistics: ReplicatedKeyValueStore.RunStatistics, processBefore: UInt64, backupBefore: UInt64
    ) throws -> (verified: Bool, cpu: ReplicationCPU) {
        var cpu = ReplicationCPU()
        _ = try serving.result()
        // Before the comparison below, which is the benchmark's, not replication's.
        let process = MonotonicClock.processCPUNanoseconds() - processBefore
        cpu.backupNanoseconds = serving.cpuNanoseconds() - backupBefore
        let writer = UInt64((statistics.writer.userSeconds + statistics.writer.systemSeconds) * 1e9)
        cpu.primaryNanoseconds =
            process > cpu.backupNanoseconds + writer ? process - cpu.backupNanoseconds - writer : 0
        let verified =
            memcmp(replica.base, store.memory.base, configuration.mapBytes) == 0
            && statistics.acknowledged == statistics.transactions
        return (verified, cpu)
    }
}
