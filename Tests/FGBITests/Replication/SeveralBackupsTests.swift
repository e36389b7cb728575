import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// One primary, three `fgbi backup` processes: each epoch is encoded once and sent to all three, and the
/// commit policy says when it counts. A backup stopped with SIGSTOP does not hold commits back under a
/// quorum of 2 and catches up from the frames kept once it resumes; under `all` the commits wait for it.
/// Every backup ends bit-identical to the primary.
@Suite(
    "Several backups", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct SeveralBackupsTests {
    static let regionBytes = 16 << 20

    /// Three backup processes, each on a memory file the test reads at the end.
    final class Backups {
        let files: [String]
        let ports: [Int]
        let commands: [RunningCommand]

        init(_ name: String) throws {
            files = (0..<3).map { "/dev/shm/fgbi-several-\(getpid())-\(name)-\($0)" }
            for file in files { unlink(file) }
            ports = try FreePorts.take(host: "127.0.0.1", count: 3)
            var commands: [RunningCommand] = []
            for (file, port) in zip(files, ports) {
                let command = try RunningCommand([
                    "backup", "--listen", "127.0.0.1:\(port)", "--region-mib",
                    "\(SeveralBackupsTests.regionBytes >> 20)",
                    "--memory-file", file, "--timeout-ms", "60000",
                ])
                commands.append(command)
                try #require(command.waitFor("listening on") != nil, "\(command.stderr)")
            }
            self.commands = commands
        }

        var endpoints: [Endpoint] { ports.map { Endpoint(host: "127.0.0.1", port: UInt16($0)) } }

        func signal(_ index: Int, _ signal: Int32) { kill(commands[index].process.processIdentifier, signal) }

        /// Each backup ended on the primary's bye, holding exactly `memory`.
        func expectAllEqual(to memory: GuestMemory, lastEpoch: UInt64) {
            for (index, command) in commands.enumerated() {
                let status = command.finish(seconds: 30)
                #expect(status == 0, "backup \(index): \(command.stdout)\n\(command.stderr.suffix(3000))")
                #expect(
                    command.stdout.contains("primary finished; replica at epoch \(lastEpoch)"),
                    "backup \(index): \(command.stdout)")
                let content = FileManager.default.contents(atPath: files[index])
                let same = content.map { data in
                    data.count == memory.length
                        && data.withUnsafeBytes { memcmp($0.baseAddress!, memory.base, memory.length) == 0 }
                }
                #expect(same == true, "backup \(index)'s memory differs from the primary's at epoch \(lastEpoch)")
            }
        }

        deinit {
            for command in commands {
                kill(command.process.processIdentifier, SIGCONT)
                command.end()
            }
            for file in files { unlink(file) }
        }
    }

    func makePrimary(_ backups: Backups, policy: CommitPolicy, memory: GuestMemory, driver: WorkloadDriver) throws
        -> Primary
    {
        var configuration = PrimaryConfiguration.onThisKernel(backup: backups.endpoints[0])
        configuration.backups = backups.endpoints
        configuration.commitPolicy = policy
        configuration.backupTimeout = .seconds(1)
        configuration.reconnectWindow = .seconds(60)
        return try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
    }

    func makeGuest() throws -> (GuestMemory, WorkloadDriver) {
        let memory = try GuestMemory.anonymous(length: Self.regionBytes)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: 5)
        return (memory, WorkloadDriver(memory: memory, workload: .sparse, threads: 1, pagesPerSecond: 2_000))
    }

    /// Polls `condition` for up to `seconds`.
    func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    @Test("quorum 2 of 3: a stopped backup does not hold commits back, and catches up when it resumes")
    func quorumGoesOnWithoutAStoppedBackup() throws {
        let backups = try Backups("quorum")
        let (memory, driver) = try makeGuest()
        let primary = try makePrimary(backups, policy: .quorum(2), memory: memory, driver: driver)
        try primary.start()
        driver.start()
        let synchronised = try #require(primary.statistics.lastSynchronisation?.epoch)
        #expect(primary.waitForCommit(synchronised + 5, timeout: .seconds(30)))
        // Committed by two; the third may still be finishing its synchronisation (stopped then, it would hold
        // no epoch of this session and need a resynchronisation, not a catch-up).
        #expect(
            eventually(30) { primary.statistics.backupAcknowledgements.allSatisfy { ($0 ?? 0) >= synchronised } },
            "\(primary.statistics.backupAcknowledgements)")

        backups.signal(2, SIGSTOP)
        let stoppedAt = try #require(primary.committedEpoch)
        // 40 epochs of 25 ms go on committing with two backups while the third reads nothing.
        #expect(
            primary.waitForCommit(stoppedAt + 40, timeout: .seconds(15)),
            "commits stalled behind a stopped backup under quorum 2")
        #expect(
            eventually(10) { primary.statistics.backupsLost >= 1 },
            "the stopped backup was never dropped: \(primary.statistics)")
        let behind = primary.statistics.backupAcknowledgements[2] ?? 0
        #expect(behind < (primary.committedEpoch ?? 0), "the stopped backup acknowledged nothing new")

        backups.signal(2, SIGCONT)
        #expect(
            eventually(30) { primary.statistics.catchUps >= 1 },
            "the resumed backup did not catch up: \(primary.statistics)")
        let now = try #require(primary.committedEpoch)
        #expect(
            eventually(15) { (primary.statistics.backupAcknowledgements[2] ?? 0) >= now },
            "the resumed backup stays behind")
        #expect(primary.statistics.synchronisations == 1, "catching up needed no resynchronisation")

        driver.stop()
        let last = try #require(try primary.stop())
        backups.expectAllEqual(to: memory, lastEpoch: last)
    }

    @Test("all: a stopped backup holds commits back until it returns")
    func allWaitsForAStoppedBackup() throws {
        let backups = try Backups("all")
        let (memory, driver) = try makeGuest()
        let primary = try makePrimary(backups, policy: .all, memory: memory, driver: driver)
        try primary.start()
        driver.start()
        let synchronised = try #require(primary.statistics.lastSynchronisation?.epoch)
        #expect(primary.waitForCommit(synchronised + 5, timeout: .seconds(30)))

        backups.signal(1, SIGSTOP)
        usleep(200_000)
        let stoppedAt = try #require(primary.committedEpoch)
        usleep(2_000_000)
        // At most the epochs the stopped backup had read before it stopped.
        #expect(
            (primary.committedEpoch ?? 0) <= stoppedAt + 2,
            "committed past a stopped backup under all: \(stoppedAt) -> \(primary.committedEpoch ?? 0)")

        backups.signal(1, SIGCONT)
        #expect(
            primary.waitForCommit(stoppedAt + 10, timeout: .seconds(40)),
            "commits did not resume once the backup returned: \(primary.statistics)")
        driver.stop()
        let last = try #require(try primary.stop())
        backups.expectAllEqual(to: memory, lastEpoch: last)
    }
}
