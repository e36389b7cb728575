import FGBI
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What `fgbi demo` runs: a primary and a backup in this process, over loopback, replicating a guest-like
/// workload (``SyntheticWorkload/guest``: hot and cold pages, duplicates, zero pages, several writer threads)
/// for a while; the backup is verified against the primary at the last committed epoch, and every capture
/// is also encoded by shadow engines of the other modes, so the summary compares what each mode would have
/// sent for the very same epochs.
public struct ReplicationDemo: Sendable {
    public var regionMiB = 256
    public var seconds = 20.0
    public var mode = ReplicationMode.fgbi
    public var blockSize = 64
    public var tracker = TrackerKind.uffdAsync
    public var writerThreads = 2
    public var pagesPerSecond = 20_000
    public var epochMilliseconds = 25
    /// The live primary's ``EngineConfiguration/cachedCaptureBytes``; nil: the default.
    public var cachedCaptureBytes: Int?
    /// Replicate a recorded trace (one image per epoch interval, until it ends) instead of the workload;
    /// the region is one image long.
    public var trace: TraceDirectory?

    public init() {}

    /// A moment of the run, for the live progress line.
    public struct Snapshot: Sendable {
        public var seconds: Double
        public var synchronising: Bool
        public var epoch: UInt64?
        public var committed: UInt64?
        public var epochsPerSecond: Double
        public var dirtyPagesPerSecond: Double
        public var dirtyBlocksPerSecond: Double
        public var wireMBPerSecond: Double
        /// Bytes whole written pages would take, over bytes sent, for epochs so far.
        public var compressionRatio: Double
        public var sharedHits: Int
        public var pauseP99Milliseconds: Double
        public var lag: UInt64

        /// The primary's figures at `seconds`, rates over the time since `previous`.
        init(
            at seconds: Double, _ statistics: ReplicationStatistics,
            since previous: (time: Double, statistics: ReplicationStatistics)
        ) {
            let span = max(seconds - previous.time, 1e-3)
            let before = previous.statistics
            self.seconds = seconds
            synchronising =
                statistics.lastSynchronisation.map { sync in
                    (statistics.lastCommittedEpoch ?? 0) < sync.epoch || statistics.lastCommittedEpoch == nil
                } ?? true
            epoch = statistics.lastCapturedEpoch
            committed = statistics.lastCommittedEpoch
            epochsPerSecond = Double(statistics.epochsSent - before.epochsSent) / span
            dirtyPagesPerSecond = Double(statistics.pagesWritten - before.pagesWritten) / span
            dirtyBlocksPerSecond = Double(statistics.blocksSent - before.blocksSent) / span
            wireMBPerSecond =
                Double(statistics.bytesSent + statistics.precopyBytes - before.bytesSent - before.precopyBytes) / span
                / 1e6
            compressionRatio =
                statistics.bytesSent > 0
                ? Double(statistics.pagesWritten * GuestMemory.pageSize) / Double(statistics.bytesSent) : 0
            sharedHits = statistics.sharedHits
            pauseP99Milliseconds = statistics.pausePercentile(0.99)
            lag = statistics.lag
        }
    }

    /// What one mode sent (or, for a shadow, would have sent) over the whole run.
    public struct ModeTotal: Sendable, Codable {
        public var mode: String
        /// Bytes of the synchronisation (pre-copy steps) and of the epochs after it.
        public var synchronisationBytes: Int
        public var epochBytes: Int
        /// epochBytes over the `page` mode's.
        public var ratioToPage: Double
        /// Encoding time, milliseconds (the live mode's on the sender thread, shadows' likewise): the whole run's,
        /// and of it the synchronisation's (its pre-copy steps: every page once, then the pages written meanwhile)
        /// and the epochs'.
        public var encodeMilliseconds: Double
        public var synchronisationEncodeMilliseconds: Double
        public var epochEncodeMilliseconds: Double
        /// This is the mode that was replicated live (the others are shadows).
        public var live: Bool
    }

    public struct Summary: Sendable, Codable {
        public var seconds: Double
        public var epochsCommitted: Int
        public var lastCommittedEpoch: UInt64?
        public var pagesWritten: Int
        public var pauseP50Milliseconds: Double
        public var pauseP99Milliseconds: Double
        public var synchronisationMilliseconds: Double
        public var synchronisationRounds: [Int]
        public var modes: [ModeTotal]
        /// The backup's memory equals the primary's at the last committed epoch, byte for byte.
        public var verified: Bool
        /// The first differing byte offset, when not verified.
        public var firstDifference: Int?
    }

    /// Shadow engines fed every capture the live primary makes.
    final class Shadows: @unchecked Sendable {
        struct Entry {
            let engine: PrimaryEngine
            var synchronisationBytes = 0
            var epochBytes = 0
            var synchronisationNanoseconds: UInt64 = 0
            var epochNanoseconds: UInt64 = 0
        }
        private let entries: Mutex<[String: Entry]>
        /// The live mode's encode and compress time, for the synchronisation and for the epochs.
        let liveSynchronisationNanoseconds = Atomic<UInt64>(0)
        let liveEpochNanoseconds = Atomic<UInt64>(0)

        init(regions: [GuestMemory], modes: [ReplicationMode], blockSize: Int) throws {
            var made: [String: Entry] = [:]
            for mode in modes {
                made[mode.rawValue] = Entry(
                    engine: try PrimaryEngine(
                        regions: regions, configuration: EngineConfiguration(mode: mode, blockSize: blockSize)))
            }
            entries = Mutex(made)
        }

        func observe(_ capture: EpochCapture, _ statistics: EpochStatistics) {
            let live = statistics.encodeNanoseconds + statistics.compressNanoseconds
            if capture.isPrecopy {
                liveSynchronisationNanoseconds.add(live, ordering: .relaxed)
            } else {
                liveEpochNanoseconds.add(live, ordering: .relaxed)
            }
            let names = entries.withLock { Array($0.keys) }
            for name in names {
                let engine = entries.withLock { $0[name]!.engine }
                let start = MonotonicClock.nanoseconds()
                guard let (delta, _) = try? engine.encodeShadow(of: capture) else { continue }
                let elapsed = MonotonicClock.nanoseconds() - start
                entries.withLock {
                    if capture.isPrecopy {
                        $0[name]!.synchronisationBytes += delta.count
                        $0[name]!.synchronisationNanoseconds += elapsed
                    } else {
                        $0[name]!.epochBytes += delta.count
                        $0[name]!.epochNanoseconds += elapsed
                    }
                }
            }
        }

        var totals: [String: Entry] { entries.withLock { $0 } }
    }

    /// Runs the demo; `progress` gets a snapshot about twice a second.
    public func run(progress: (Snapshot) -> Void) throws -> Summary {
        let length = trace?.imageSize ?? regionMiB << 20
        let memory = try GuestMemory.anonymous(length: length)
        let backupMemory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        try backupMemory.prefault()
        let guest: any DemoGuest
        if let trace {
            guest = try TraceGuest(
                memory: memory, trace: trace, intervalMilliseconds: trace.metadata.epochMs ?? Double(epochMilliseconds))
        } else {
            SyntheticWorkload.fillGuest(memory, seed: 42)
            guest = WorkloadDriver(
                memory: memory, workload: .guest, threads: writerThreads, pagesPerSecond: pagesPerSecond)
        }

        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.primaryTimeout = .seconds(5)
        backupConfiguration.blockSize = blockSize
        let backup = try Backup(regions: [backupMemory], configuration: backupConfiguration)
        let service = try backup.start()

        let shadows = try Shadows(
            regions: [memory], modes: ReplicationMode.allCases.filter { $0 != mode }, blockSize: blockSize)
        var configuration = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        // Copying the written pages in the pause (what auto settles on here) lets the shadows see whole pages.
        configuration.engine = EngineConfiguration(mode: mode, blockSize: blockSize)
        configuration.engine.captureStrategy = .copyPages
        if let cachedCaptureBytes { configuration.engine.cachedCaptureBytes = cachedCaptureBytes }
        configuration.tracker = tracker
        configuration.epochInterval = .milliseconds(epochMilliseconds)
        configuration.reconnectWindow = .zero
        let primary = try Primary(
            regions: [memory], configuration: configuration, hooks: guest.hooks,
            observer: { capture, statistics in shadows.observe(capture, statistics) })
        let start = MonotonicClock.nanoseconds()
        func elapsed() -> Double { Double(MonotonicClock.nanoseconds() - start) / 1e9 }
        try primary.start()
        guest.start()
        var previous = (time: 0.0, statistics: primary.statistics)
        while elapsed() < seconds, primary.isRunning, !guest.isFinished {
            MonotonicClock.sleep(nanoseconds: 500_000_000)
            let now = elapsed()
            let statistics = primary.statistics
            progress(Snapshot(at: now, statistics, since: previous))
            previous = (now, statistics)
        }
        try guest.stop() // the guest stops; the final epoch holds everything it wrote
        let last = try primary.stop()
        _ = try service.outcome()

        let statistics = primary.statistics
        var difference: Int?
        if memcmp(memory.base, backupMemory.base, length) != 0 {
            let primaryBytes = memory.base.assumingMemoryBound(to: UInt8.self)
            let backupBytes = backupMemory.base.assumingMemoryBound(to: UInt8.self)
            difference = (0..<length).first { primaryBytes[$0] != backupBytes[$0] }
        }
        let modes = modeTotals(live: statistics, shadows: shadows)
        return Summary(
            seconds: elapsed(), epochsCommitted: Int(statistics.epochsSent), lastCommittedEpoch: last,
            pagesWritten: statistics.pagesWritten, pauseP50Milliseconds: statistics.pausePercentile(0.5),
            pauseP99Milliseconds: statistics.pausePercentile(0.99),
            synchronisationMilliseconds: statistics.lastSynchronisation?.milliseconds ?? 0,
            synchronisationRounds: statistics.lastSynchronisation?.pagesPerRound ?? [],
            modes: modes, verified: difference == nil, firstDifference: difference)
    }

    /// Each mode's bytes and encode time: the live one's, and the shadows' on the same captures, in the modes'
    /// order, with their ratio to page mode's bytes.
    private func modeTotals(live statistics: ReplicationStatistics, shadows: Shadows) -> [ModeTotal] {
        func total(_ mode: String, bytes: (Int, Int), nanoseconds: (UInt64, UInt64), live: Bool) -> ModeTotal {
            ModeTotal(
                mode: mode, synchronisationBytes: bytes.0, epochBytes: bytes.1, ratioToPage: 0,
                encodeMilliseconds: Double(nanoseconds.0 + nanoseconds.1) / 1e6,
                synchronisationEncodeMilliseconds: Double(nanoseconds.0) / 1e6,
                epochEncodeMilliseconds: Double(nanoseconds.1) / 1e6, live: live)
        }
        var modes = [
            total(
                mode.rawValue, bytes: (statistics.precopyBytes, statistics.bytesSent),
                nanoseconds: (
                    shadows.liveSynchronisationNanoseconds.load(ordering: .relaxed),
                    shadows.liveEpochNanoseconds.load(ordering: .relaxed)
                ), live: true)
        ]
        for (name, entry) in shadows.totals {
            modes.append(
                total(
                    name, bytes: (entry.synchronisationBytes, entry.epochBytes),
                    nanoseconds: (entry.synchronisationNanoseconds, entry.epochNanoseconds), live: false))
        }
        let order = ReplicationMode.allCases.map(\.rawValue)
        modes.sort { order.firstIndex(of: $0.mode)! < order.firstIndex(of: $1.mode)! }
        let pageBytes = modes.first { $0.mode == ReplicationMode.page.rawValue }?.epochBytes ?? 0
        for index in modes.indices {
            modes[index].ratioToPage = pageBytes > 0 ? Double(modes[index].epochBytes) / Double(pageBytes) : 0
        }
        return modes
    }
}

/// What the demo replicates: the built-in workload's writer threads or a replayed trace.
protocol DemoGuest: AnyObject {
    var hooks: PauseHooks { get }
    var isFinished: Bool { get }
    func start()
    func stop() throws
}

extension WorkloadDriver: DemoGuest {
    var isFinished: Bool { false }
}

extension TraceGuest: DemoGuest {}
