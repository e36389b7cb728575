import FGBI
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `fgbi bench backups`: one primary replicating to 1, 2 or 3 backups in this process over loopback, under
/// each commit policy, optionally with the last backup behind a slow link (``ThrottledRelay``). The guest
/// writes one epoch's worth at a time (``LockstepGuest``) and then waits for the commit of its writes, as an
/// output-commit client does: that wait is the commit latency reported. Each epoch is encoded once, whatever
/// the number of backups; the bytes each backup received are counted at the backup.
public struct BackupsBenchmark: Sendable {
    /// One set-up: how many backups, the commit policy, and whether the last backup's link is slowed, or cut
    /// for a while (``Configuration/outageMilliseconds``) in the middle of the rounds.
    public struct Layout: Sendable, CustomStringConvertible {
        public var backups: Int
        public var policy: CommitPolicy
        public var slowed: Bool
        public var outage = false

        public init(backups: Int, policy: CommitPolicy, slowed: Bool, outage: Bool = false) {
            self.backups = backups
            self.policy = policy
            self.slowed = slowed
            self.outage = outage
        }

        public var description: String {
            "\(backups) backup\(backups == 1 ? "" : "s"), \(policy)"
                + (slowed ? ", last slowed" : outage ? ", last cut for a while" : "")
        }

        /// Parses `N:POLICY[:slow|:outage]`, e.g. `3:quorum:2:slow`, `3:quorum:2:outage` or `2:all`.
        public init?(_ text: String) {
            var parts = text.split(separator: ":").map(String.init)
            let slowed = parts.last == "slow"
            let outage = parts.last == "outage"
            if slowed || outage { parts.removeLast() }
            guard parts.count >= 2, let backups = Int(parts[0]), (1...8).contains(backups),
                let policy = CommitPolicy(parts.dropFirst().joined(separator: ":")),
                (try? policy.check(backups: backups)) != nil,
                !(slowed || outage) || backups > 1
            else { return nil }
            self.init(backups: backups, policy: policy, slowed: slowed, outage: outage)
        }

        /// The default layouts as `fgbi bench backups --layouts` writes them.
        public static let defaultSpecifications = [
            "1:all", "2:all", "2:quorum:1", "3:all", "3:quorum:2", "2:all:slow", "2:quorum:1:slow", "3:all:slow",
            "3:quorum:2:slow",
        ]
        public static let defaults = defaultSpecifications.compactMap(Layout.init)
    }

    public struct Configuration: Sendable {
        public var layouts = Layout.defaults
        public var mode = ReplicationMode.fgbi
        public var tracker = TrackerKind.uffdAsync
        public var workload = SyntheticWorkload.guest
        public var regionMiB = 64
        public var pagesPerEpoch = 1024
        public var epochs = 200
        public var epochMilliseconds = 25
        /// The slowed backup's link, bytes per second (primary to backup).
        public var slowBytesPerSecond = 4 << 20
        /// How long an outage layout's last backup is cut off, from a quarter of the rounds on.
        public var outageMilliseconds = 1000
        /// The frames kept for backups behind (``PrimaryConfiguration/catchUpBytes``); nil: the default.
        public var catchUpBytes: Int?
        public var seed: UInt64 = 2011
        public init() {}
    }

    /// One layout's run.
    public struct Run: Sendable, Codable {
        public var backups: Int
        public var policy: String
        public var slowed: Bool
        public var mode: String
        public var epochs: Int
        /// From the end of the guest's writes to the commit of the epoch covering them.
        public var commitMsP50: Double
        public var commitMsP99: Double
        /// Epochs the primary captured per write round (1 when epochs keep pace with the writes).
        public var epochsPerRound: Double
        /// The primary's CPU (capture, encode, sends, acknowledgements) per epoch, the backups' and the relay's left
        /// out.
        public var primaryCpuMsPerEpoch: Double
        /// Encoded once per epoch, and received per epoch by all backups together while the rounds ran (a
        /// slowed backup's synchronisation included when it was still under way).
        public var encodedBytesPerEpoch: Double
        public var receivedBytesPerEpoch: Double
        public var backupsLost: Int
        public var catchUps: Int
        /// Backups that ended bit-identical to the guest at the last epoch.
        public var backupsVerified: Int
        /// With an outage layout: how the cut backup came back.
        public var outage: OutageReport?
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    public func run(progress: (String) -> Void) throws -> [Run] {
        try configuration.layouts.map { layout in
            progress("\(layout): \(configuration.epochs) rounds of \(configuration.pagesPerEpoch) pages")
            return try run(layout)
        }
    }

    private func run(_ layout: Layout) throws -> Run {
        let length = configuration.regionMiB << 20
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        let guest = try LockstepGuest(
            memory: memory,
            source: .workload(
                configuration.workload, pagesPerEpoch: configuration.pagesPerEpoch,
                seed: configuration.seed))
        let group = try BackupSet(
            layout, length: length,
            linkBytesPerSecond: layout.outage ? Int.max / 2 : configuration.slowBytesPerSecond)
        defer { group.stop() }
        let (replicas, backups, threads) = (group.replicas, group.backups, group.threads)
        let relay = group.relay
        var primaryConfiguration = PrimaryConfiguration(backups: group.endpoints, commitPolicy: layout.policy)
        primaryConfiguration.engine = EngineConfiguration(mode: configuration.mode)
        primaryConfiguration.tracker = configuration.tracker
        primaryConfiguration.epochInterval = .milliseconds(Int64(configuration.epochMilliseconds))
        // An outage is noticed when the cut link breaks; a slowed backup is waited for.
        primaryConfiguration.backupTimeout = layout.outage ? .seconds(1) : .seconds(30)
        if let catchUpBytes = configuration.catchUpBytes { primaryConfiguration.catchUpBytes = catchUpBytes }
        let primary = try Primary(regions: [memory], configuration: primaryConfiguration, hooks: guest.hooks)
        var stopped = false
        defer { if !stopped { _ = try? primary.stop(finalEpoch: false) } }
        try primary.start()
        let synchronised = try ReplicateBenchmark.waitForSynchronisation(of: primary)
        try Self.waitUntilEveryBackupHolds(synchronised, primary: primary)
        let start = primary.statistics
        let startCPU = cpuTimes(threads, relay)
        let receivedAtStart = backups.reduce(0) { $0 + $1.statistics.bytesReceived }
        var latencies: [Double] = []
        latencies.reserveCapacity(configuration.epochs)
        let outage = layout.outage ? OutageDrill(group: group, primary: primary, configuration: configuration) : nil
        var lastRoundEpoch: UInt64 = 0
        for round in 1...configuration.epochs {
            outage?.beforeRound(round)
            _ = try guest.writeNext()
            let epoch = primary.epochCoveringWritesSoFar
            lastRoundEpoch = epoch
            let written = MonotonicClock.nanoseconds()
            guard primary.waitForCommit(epoch, timeout: .seconds(60)) else {
                throw BenchmarkError(
                    "epoch \(epoch) was not committed within 60 s\(primary.failure.map { ": \($0)" } ?? "")")
            }
            latencies.append(Double(MonotonicClock.nanoseconds() - written) / 1e6)
        }
        let outageReport = try outage?.finish()
        let endCPU = cpuTimes(threads, relay)
        let end = primary.statistics
        let received = backups.reduce(0) { $0 + $1.statistics.bytesReceived } - receivedAtStart
        Self.giveEveryBackupTime(toHold: lastRoundEpoch, primary: primary)
        stopped = true
        let last = try primary.stop()
        for thread in threads { _ = try? thread.result(within: .seconds(30)) }
        let epochs = max(Int(end.epochsSent - start.epochsSent), 1)
        let primaryCPU = max(Double(endCPU.process - startCPU.process) - Double(endCPU.others - startCPU.others), 0)
        let verified = zip(backups, replicas).filter { backup, replica in
            backup.lastEpoch == last && memcmp(memory.base, replica.base, length) == 0
        }.count
        let sorted = latencies.sorted()
        func percentile(_ fraction: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(Int((fraction * Double(sorted.count)).rounded(.up)) - 1, sorted.count - 1)]
        }
        return Run(
            backups: layout.backups, policy: layout.policy.description, slowed: layout.slowed,
            mode: configuration.mode.rawValue,
            epochs: epochs, commitMsP50: percentile(0.5), commitMsP99: percentile(0.99),
            epochsPerRound: Double(epochs) / Double(configuration.epochs),
            primaryCpuMsPerEpoch: primaryCPU / 1e6 / Double(epochs),
            encodedBytesPerEpoch: Double(end.bytesSent - start.bytesSent) / Double(epochs),
            receivedBytesPerEpoch: Double(received) / Double(epochs),
            backupsLost: end.backupsLost, catchUps: end.catchUps, backupsVerified: verified, outage: outageReport)
    }

    /// Gives every backup, a returning one too, up to 30 s to acknowledge `epoch`. A quorum commits without its
    /// slowest backup, and stop() waits for the commit only (and for frames still queued no longer than the
    /// backup timeout): this makes the check of every backup's memory a check of what it holds, not of how
    /// late it is under load. One that does not arrive is reported unverified.
    private static func giveEveryBackupTime(toHold epoch: UInt64, primary: Primary) {
        _ = everyBackupHolds(epoch, primary: primary, withinSeconds: 30)
    }

    /// Waits until every backup acknowledged `epoch`: a slowed one, or one outside a quorum, can be later than
    /// the commit.
    private static func waitUntilEveryBackupHolds(_ epoch: UInt64, primary: Primary) throws {
        guard everyBackupHolds(epoch, primary: primary, withinSeconds: 300) else {
            throw BenchmarkError(
                "not every backup was synchronised within 300 s\(primary.failure.map { ": \($0)" } ?? "")")
        }
    }

    /// Whether every backup acknowledges `epoch` or a later one within `seconds`; false as soon as the primary
    /// fails.
    private static func everyBackupHolds(_ epoch: UInt64, primary: Primary, withinSeconds seconds: UInt64) -> Bool {
        let deadline = MonotonicClock.nanoseconds() + seconds * 1_000_000_000
        while !primary.statistics.backupAcknowledgements.allSatisfy({ ($0 ?? 0) >= epoch && $0 != nil }) {
            guard MonotonicClock.nanoseconds() < deadline, primary.failure == nil else { return false }
            MonotonicClock.sleep(nanoseconds: 1_000_000)
        }
        return true
    }

    /// A layout's backups, each serving on a thread of its own in this process, the last behind a throttled
    /// relay when the layout is slowed; ``stop()`` ends them.
    final class BackupSet {
        var replicas: [GuestMemory] = []
        var backups: [Backup] = []
        var threads: [BackupThread] = []
        var relay: ThrottledRelay?
        /// Where the primary reaches each backup (the relay's port for a slowed one).
        var endpoints: [Endpoint] = []

        /// The last backup is behind a relay at `linkBytesPerSecond` when the layout slows it or cuts it.
        init(_ layout: Layout, length: Int, linkBytesPerSecond: Int) throws {
            do {
                for index in 0..<layout.backups {
                    let replica = try GuestMemory.anonymous(length: length)
                    try replica.prefault()
                    var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
                    configuration.primaryTimeout = .seconds(30)
                    let backup = try Backup(
                        regions: [replica], geometry: try BlockGeometry(blockSize: 64),
                        configuration: configuration)
                    replicas.append(replica)
                    backups.append(backup)
                    threads.append(BackupThread(backup))
                    var endpoint = Endpoint(host: "127.0.0.1", port: backup.port)
                    if layout.slowed || layout.outage, index == layout.backups - 1 {
                        let throttled = try ThrottledRelay(to: endpoint, bytesPerSecond: linkBytesPerSecond)
                        relay = throttled
                        endpoint = Endpoint(host: "127.0.0.1", port: throttled.port)
                    }
                    endpoints.append(endpoint)
                }
            } catch {
                stop()
                throw error
            }
        }

        func stop() {
            for backup in backups { backup.stop() }
            for thread in threads { thread.join() }
            relay?.stop()
        }
    }

    /// The process's CPU, and of it what is not the primary's: the backups' threads, the relay's, and this
    /// (the guest's) thread.
    private func cpuTimes(_ threads: [BackupThread], _ relay: ThrottledRelay?) -> (process: UInt64, others: UInt64) {
        let others =
            threads.reduce(0) { $0 + $1.cpuNanoseconds() } + (relay?.cpuNanoseconds ?? 0)
            + MonotonicClock.threadCPUNanoseconds()
        return (MonotonicClock.processCPUNanoseconds(), others)
    }
}
