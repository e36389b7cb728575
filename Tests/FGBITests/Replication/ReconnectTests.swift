import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A backup that restarts on its state directory while the primary runs: the primary reconnects, the backup
/// resumes at its last committed epoch, and the new session sends what differs, not the memory.
@Suite("Reconnect and resynchronise", .serialized)
struct ReconnectTests {
    func makeBackup(memory: GuestMemory, port: UInt16, directory: String) throws -> Backup {
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: port))
        configuration.primaryTimeout = .seconds(5)
        configuration.stateDirectory = directory
        return try Backup(regions: [memory], geometry: try BlockGeometry(blockSize: 64), configuration: configuration)
    }

    @Test("a restarted backup is resynchronised with what differs", arguments: [ReplicationMode.fgbi, .pageLZ4])
    func restartedBackupResynchronises(mode: ReplicationMode) throws {
        let length = 32 << 20
        let directory = NSTemporaryDirectory() + "fgbi-reconnect-\(getpid())-\(mode.rawValue)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let firstMemory = try GuestMemory.anonymous(length: length)
        let first = try makeBackup(memory: firstMemory, port: 0, directory: directory)
        let port = first.port
        let firstServed = LoopbackReplicationTests.Served(first)

        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: 11)
        let driver = WorkloadDriver(memory: memory, workload: .sparse, threads: 2, pagesPerSecond: 1_000)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: port))
        configuration.engine = EngineConfiguration(mode: mode)
        configuration.reconnectWindow = .seconds(20)
        let primary = try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
        // What synchronising sends: pre-copy frames; with the scan tracker, which has no pre-copy, the epochs
        // (a session's first takes every page the backup does not hold; a few written pages follow).
        func synchronisationBytes() -> Int {
            let statistics = primary.statistics
            return configuration.tracker == .scan
                ? statistics.precopyBytes + statistics.bytesSent : statistics.precopyBytes
        }
        try primary.start()
        driver.start()
        #expect(
            primary.waitForCommit(
                try #require(primary.statistics.lastSynchronisation?.epoch) + 5, timeout: .seconds(20)))
        let fullSynchronisation = synchronisationBytes()
        #expect(
            (primary.statistics.lastSynchronisation?.encodeMilliseconds ?? 0) > 0,
            "the synchronisation's encode time is counted")

        // The backup goes away; the primary keeps running and retries; a new backup process on the same state
        // directory comes up (a restart) a moment later.
        first.stop()
        _ = try firstServed.outcome()
        Thread.sleep(forTimeInterval: 0.3)
        let secondMemory = try GuestMemory.anonymous(length: length)
        let second = try makeBackup(memory: secondMemory, port: port, directory: directory)
        let held = try #require(second.lastEpoch, "the restarted backup loaded a committed epoch")
        let secondServed = LoopbackReplicationTests.Served(second)

        let deadline = Date().addingTimeInterval(20)
        while primary.statistics.reconnects < 1, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(primary.statistics.reconnects == 1)
        let resumed = try #require(primary.statistics.lastSynchronisation)
        #expect(resumed.resynchronised, "the backup held state and sent its page hashes")
        #expect(resumed.epoch > held)
        #expect(primary.waitForCommit(resumed.epoch + 3, timeout: .seconds(20)))
        #expect((primary.statistics.lastSynchronisation?.encodeMilliseconds ?? 0) > 0, "and the resynchronisation's")
        let resynchronisation = synchronisationBytes() - fullSynchronisation
        #expect(
            resynchronisation * 4 < fullSynchronisation,
            "resynchronising sent \(resynchronisation) bytes, the first synchronisation \(fullSynchronisation)")

        driver.stop()
        let last = try #require(try primary.stop())
        #expect(try secondServed.outcome() == .primaryFinished(lastEpoch: last))
        #expect(
            memcmp(memory.base, secondMemory.base, length) == 0, "the backup differs from the primary at epoch \(last)")
        // And the state directory holds that epoch for the next restart.
        let check = try GuestMemory.anonymous(length: length)
        let replica = Replica(regions: [check], geometry: try BlockGeometry(blockSize: 64))
        #expect(try ReplicaStore(directory: directory).load(into: replica) == last)
        #expect(memcmp(memory.base, check.base, length) == 0)
    }

    @Test func withoutAReconnectWindowLosingTheBackupStopsReplication() throws {
        let length = 4 << 20
        let memory = try GuestMemory.anonymous(length: length)
        let backup = try Backup(
            regions: [try GuestMemory.anonymous(length: length)], geometry: try BlockGeometry(blockSize: 64),
            configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)))
        let served = LoopbackReplicationTests.Served(backup)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.reconnectWindow = .zero
        let primary = try Primary(regions: [memory], configuration: configuration)
        try primary.start()
        #expect(
            primary.waitForCommit(try #require(primary.statistics.lastSynchronisation?.epoch), timeout: .seconds(10)))
        backup.stop()
        _ = try served.outcome()
        let deadline = Date().addingTimeInterval(10)
        while primary.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(!primary.isRunning)
        #expect(primary.failure != nil)
        #expect(throws: (any Error).self) { try primary.stop() }
    }
}
