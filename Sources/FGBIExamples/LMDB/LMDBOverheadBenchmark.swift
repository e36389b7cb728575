import CSupport
import FGBI
import FGBIBench
import Foundation

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

        public init(history: KeyValueHistory) { self.history = history }
    }

    /// One variant's figures over all rounds.
    public struct Variant: Sendable, Encodable {
        /// "none" or "fgbi @ 25 ms".
        public var name: String
        public var epochMs: Int?
        public var transactions: Int
        /// Transactions per second, per round, and their median.
        public var transactionsPerSecond: [Double]
        public var medianTransactionsPerSecond: Double
        /// Median throughput relative to the unreplicated one (1 for it); slowdown = 1 - this.
        public var relativeThroughput: Double
        /// Commit to acknowledgement over all rounds (replicated only).
        public var acknowledgementMsP50: Double?
        public var acknowledgementMsP99: Double?
        public var epochsPerRound: Double?
        public var pauseMsP50: Double?
        public var pauseMsP99: Double?
        public var pagesWrittenPerEpoch: Double?
        public var wireBytesPerEpoch: Double?
        /// The replica equalled the primary's map after the final epoch, in every round.
        public var verified: Bool?
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    public func run(progress: (String) -> Void = { _ in }) throws -> [Variant] {
        let intervals: [Int?] = [nil] + configuration.epochMilliseconds.map { Optional($0) }
        var rates: [[Double]] = intervals.map { _ in [] }
        var acknowledgements: [[Double]] = intervals.map { _ in [] }
        var pauses: [[Double]] = intervals.map { _ in [] }
        var epochs: [Double] = intervals.map { _ in 0 }
        var pages: [Double] = intervals.map { _ in 0 }
        var bytes: [Double] = intervals.map { _ in 0 }
        var verified: [Bool] = intervals.map { _ in true }
        for round in 0..<configuration.rounds {
            for (index, interval) in intervals.enumerated() {
                let result = try runOnce(epochMilliseconds: interval)
                rates[index].append(result.statistics.transactionsPerSecond)
                acknowledgements[index] += result.statistics.acknowledgementMilliseconds
                if let replication = result.statistics.replication {
                    pauses[index] += replication.recentPausesMs
                    epochs[index] += Double(replication.epochsSent)
                    pages[index] += Double(replication.pagesWritten)
                    bytes[index] += Double(replication.bytesSent)
                }
                verified[index] = verified[index] && result.verified
                progress("round \(round + 1)/\(configuration.rounds), \(Self.name(interval, configuration.mode)): "
                         + "\(formatted(rates[index].last ?? 0, 0)) transactions/s")
            }
        }
        let baseline = Summary(rates[0]).median
        return intervals.enumerated().map { index, interval in
            let median = Summary(rates[index]).median
            let replicated = interval != nil
            let epochCount = max(epochs[index], 1)
            return Variant(
                name: Self.name(interval, configuration.mode), epochMs: interval, transactions: configuration.transactions,
                transactionsPerSecond: rates[index], medianTransactionsPerSecond: median, relativeThroughput: median / baseline,
                acknowledgementMsP50: replicated ? Summary.percentile(acknowledgements[index], 0.5) : nil,
                acknowledgementMsP99: replicated ? Summary.percentile(acknowledgements[index], 0.99) : nil,
                epochsPerRound: replicated ? epochs[index] / Double(configuration.rounds) : nil,
                pauseMsP50: replicated ? Summary.percentile(pauses[index], 0.5) : nil,
                pauseMsP99: replicated ? Summary.percentile(pauses[index], 0.99) : nil,
                pagesWrittenPerEpoch: replicated ? pages[index] / epochCount : nil,
                wireBytesPerEpoch: replicated ? bytes[index] / epochCount : nil,
                verified: replicated ? verified[index] : nil)
        }
    }

    static func name(_ interval: Int?, _ mode: ReplicationMode) -> String {
        interval.map { "\(mode) @ \($0) ms" } ?? "none"
    }

    private func runOnce(epochMilliseconds: Int?) throws -> (statistics: ReplicatedKeyValueStore.RunStatistics, verified: Bool) {
        let all = Array(0..<min(CPUPinning.onlineCount, 64))
        if let writer = configuration.writerCPU {
            // Everything created from here on (backup, primary threads, acknowledger) runs beside the writer.
            let others = all.filter { $0 != writer }
            try CPUPinning.pinCallingThread(to: others.isEmpty ? all : others)
        }
        defer { try? CPUPinning.pinCallingThread(to: all) }
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
        if let epochMilliseconds {
            let region = try GuestMemory.anonymous(length: configuration.mapBytes)
            try region.prefault()
            let server = try Backup(regions: [region], geometry: try BlockGeometry(),
                                    configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)))
            var settings = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: server.port))
            settings.engine = EngineConfiguration(mode: configuration.mode)
            settings.engine.captureStrategy = configuration.capture
            settings.epochInterval = .milliseconds(epochMilliseconds)
            settings.reconnectWindow = .zero
            if let nice = configuration.senderNiceIncrement { settings.senderNiceIncrement = nice }
            backup = server
            replica = region
            let remote = configuration.replicationOnAllCPUs && configuration.writerCPU != nil
            serving = BackupThread(server, onStart: { if remote { _ = CSupport_raise_thread_nice(10) } })
            primaryConfiguration = settings
            if remote { try CPUPinning.pinCallingThread(to: all) }
        }
        let store = try ReplicatedKeyValueStore(path: path, mapBytes: configuration.mapBytes, history: configuration.history,
                                                configuration: primaryConfiguration)
        let target = UInt64(configuration.transactions)
        let statistics: ReplicatedKeyValueStore.RunStatistics
        do {
            statistics = try store.run(until: { $0.transactions >= target }, writerStarts: {
                if let writer = configuration.writerCPU { try CPUPinning.pinCallingThread(to: [writer]) }
            })
        } catch {
            backup?.stop()
            throw error
        }
        var verified = true
        if let serving, let replica {
            _ = try serving.result()
            verified = memcmp(replica.base, store.memory.base, configuration.mapBytes) == 0
                && statistics.acknowledged == statistics.transactions
        }
        return (statistics, verified)
    }
}
