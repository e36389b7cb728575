import FGBI
import Foundation

/// `fgbi bench sync`: what a session's synchronisation costs, with the guest running throughout.
///
/// Two variants of the first synchronisation of an empty backup, side by side on the same workload: pre-copy
/// rounds (the default) and one full epoch taken with the guest paused. Then a resynchronisation: the backup
/// (with a state directory) is stopped and started again while the guest runs, and the primary reconnects.
/// For each: time to the first committed epoch, the pause of the epoch that ends the synchronisation, rounds,
/// pages per round, and bytes sent.
public struct SyncBenchmark: Sendable {
    public struct Configuration: Sendable {
        public var regionMiB = 1024
        public var pagesPerSecond = 20_000
        public var mode = ReplicationMode.fgbi
        public var backupDownMilliseconds = 500
        /// Pages per pre-copy frame (``PrecopyPolicy/chunkPages``).
        public var precopyChunkPages = PrecopyPolicy().chunkPages
        /// ``EngineConfiguration/learnsWholeFirstPass``.
        public var learnsWholeFirstPass = false
        public init() {}
    }

    public struct Case: Codable, Sendable {
        /// "precopy", "paused-full" or "resync".
        public var variant: String
        public var regionMib: Int
        public var mode: String
        /// Session start (connect) to the first committed epoch.
        public var msToCommit: Double
        /// The pause of the epoch whose commit ends the synchronisation.
        public var syncPauseMs: Double
        public var rounds: Int
        public var pagesPerRound: [Int]
        /// Pre-copy plus the first epoch's bytes.
        public var bytes: Int
        /// The primary's encoder time on them (``SynchronisationReport/encodeMilliseconds``).
        public var encodeMs: Double
        public var resynchronised: Bool
        /// Pages the first pass found already on the backup (resync).
        public var pagesAlreadyHeld: Int
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    public func run(progress: (String) -> Void) throws -> [Case] {
        let length = configuration.regionMiB << 20
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: 1)
        let backupMemory = try GuestMemory.anonymous(length: length)
        try backupMemory.prefault()
        var cases: [Case] = []
        for precopy in [true, false] {
            backupMemory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            progress("sync: first synchronisation, \(precopy ? "pre-copy" : "one paused full epoch")")
            let outcome = try session(memory: memory, backupMemory: backupMemory, precopy: precopy, stateDirectory: nil)
            cases.append(outcome.first)
        }
        let directory = NSTemporaryDirectory() + "fgbi-bench-sync-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        backupMemory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        progress("sync: resynchronisation after a backup restart (\(configuration.backupDownMilliseconds) ms down)")
        let outcome = try session(memory: memory, backupMemory: backupMemory, precopy: true, stateDirectory: directory)
        if let resync = outcome.resync { cases.append(resync) }
        return cases
    }

    private struct Outcome {
        var first: Case
        var resync: Case?
    }

    private func makeBackup(_ memory: GuestMemory, port: UInt16, stateDirectory: String?) throws -> Backup {
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: port))
        backupConfiguration.primaryTimeout = .seconds(10)
        backupConfiguration.stateDirectory = stateDirectory
        return try Backup(
            regions: [memory], geometry: try BlockGeometry(blockSize: 64), configuration: backupConfiguration)
    }

    private func session(memory: GuestMemory, backupMemory: GuestMemory, precopy: Bool, stateDirectory: String?) throws
        -> Outcome
    {
        let backup = try makeBackup(backupMemory, port: 0, stateDirectory: stateDirectory)
        let port = backup.port
        let served = try backup.start()

        // A seed of its own per session: a writer replaying an earlier session's writes would store the same
        // values into the same pages and change nothing.
        let driver = WorkloadDriver(
            memory: memory, workload: .sparse, threads: 1, pagesPerSecond: configuration.pagesPerSecond,
            seed: UInt64(precopy ? 1 : 2) &+ (stateDirectory == nil ? 0 : 10))
        var primaryConfiguration = PrimaryConfiguration(backup: Endpoint(host: "127.0.0.1", port: port))
        primaryConfiguration.engine = EngineConfiguration(mode: configuration.mode)
        primaryConfiguration.engine.learnsWholeFirstPass = configuration.learnsWholeFirstPass
        primaryConfiguration.precopy.enabled = precopy
        primaryConfiguration.precopy.chunkPages = configuration.precopyChunkPages
        primaryConfiguration.reconnectWindow = .seconds(60)
        primaryConfiguration.backupTimeout = .seconds(60)
        let primary = try Primary(regions: [memory], configuration: primaryConfiguration, hooks: driver.hooks)
        driver.start()
        defer { driver.stop() }
        let start = Date()
        try primary.start()
        guard waitForSynchronisation(primary, after: 0) else {
            throw FGBIError.invalidState("the first synchronisation did not commit")
        }
        let firstCase = makeCase(
            precopy ? "precopy" : "paused-full", primary, milliseconds: Date().timeIntervalSince(start) * 1000,
            bytesBefore: 0)
        var resync: Case?
        if stateDirectory != nil {
            let bytesBefore = primary.statistics.bytesSent + primary.statistics.precopyBytes
            _ = try? served.stop()
            Thread.sleep(forTimeInterval: Double(configuration.backupDownMilliseconds) / 1000)
            let restartedMemory = backupMemory // same memory object: a restart loads the state directory over it
            restartedMemory.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            let restarted = try makeBackup(restartedMemory, port: port, stateDirectory: stateDirectory)
            let restartStart = Date()
            let restartedService = try restarted.start()
            guard waitForSynchronisation(primary, after: 1) else {
                throw FGBIError.invalidState("the resynchronisation did not commit")
            }
            resync = makeCase(
                "resync", primary, milliseconds: Date().timeIntervalSince(restartStart) * 1000, bytesBefore: bytesBefore
            )
            driver.stop()
            _ = try primary.stop()
            _ = try? restartedService.outcome()
        } else {
            driver.stop()
            _ = try primary.stop()
            _ = try? served.outcome()
        }
        return Outcome(first: firstCase, resync: resync)
    }

    /// Waits until the session after `reconnects` reconnects has committed the epoch that ends its synchronisation.
    private func waitForSynchronisation(_ primary: Primary, after reconnects: Int) -> Bool {
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline, primary.isRunning {
            let statistics = primary.statistics
            if statistics.reconnects == reconnects, let sync = statistics.lastSynchronisation,
                sync.pauseMilliseconds != nil,
                let committed = statistics.lastCommittedEpoch, committed >= sync.epoch
            {
                return true
            }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return false
    }

    private func makeCase(_ variant: String, _ primary: Primary, milliseconds: Double, bytesBefore: Int) -> Case {
        let statistics = primary.statistics
        let sync = statistics.lastSynchronisation
        return Case(
            variant: variant, regionMib: configuration.regionMiB, mode: configuration.mode.rawValue,
            msToCommit: milliseconds, syncPauseMs: sync?.pauseMilliseconds ?? 0, rounds: sync?.rounds ?? 0,
            pagesPerRound: sync?.pagesPerRound ?? [],
            bytes: statistics.bytesSent + statistics.precopyBytes - bytesBefore,
            encodeMs: sync?.encodeMilliseconds ?? 0,
            resynchronised: sync?.resynchronised ?? false,
            pagesAlreadyHeld: sync?.pagesAlreadyHeld ?? 0)
    }
}
