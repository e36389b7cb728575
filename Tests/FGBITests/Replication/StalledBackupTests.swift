import FGBI
import FGBIBench
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A backup that stops reading (SIGSTOP) must not hang the primary: stop() gives up after its backup
/// timeout and reports why, and the committed epoch never runs ahead of what the backup acknowledged.
@Suite(
    "Stalled backup", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct StalledBackupTests {
    @Test func stopReturnsWhenTheBackupStopsReading() throws {
        let backup = Process()
        backup.executableURL = CommandRunner.executable
        backup.arguments = ["backup", "--listen", "127.0.0.1:0", "--region-mib", "16", "--timeout-ms", "60000"]
        let log = Pipe()
        backup.standardError = log
        backup.standardOutput = FileHandle.nullDevice
        try backup.run()
        defer {
            kill(backup.processIdentifier, SIGKILL)
            backup.waitUntilExit()
        }
        var said = ""
        while !said.contains("listening on"), backup.isRunning {
            said += String(decoding: log.fileHandleForReading.availableData, as: UTF8.self)
        }
        let port = try #require(
            said.split(separator: "\n").first { $0.contains("listening on") }?.split(separator: ":").last.flatMap {
                UInt16($0)
            })

        let memory = try GuestMemory.anonymous(length: 16 << 20)
        try memory.prefault()
        let driver = WorkloadDriver(memory: memory, workload: .dense, threads: 1, pagesPerSecond: 20_000)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: port))
        configuration.backupTimeout = .seconds(1)
        let primary = try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
        try primary.start()
        driver.start()
        let synchronised = try #require(primary.statistics.lastSynchronisation?.epoch)
        #expect(primary.waitForCommit(synchronised + 2, timeout: .seconds(60)))
        kill(backup.processIdentifier, SIGSTOP)
        let committedBefore = primary.committedEpoch
        usleep(300_000) // epochs pile up against a backup that no longer reads
        driver.stop()
        let start = Date()
        #expect(throws: (any Error).self) { try primary.stop() }
        let took = Date().timeIntervalSince(start)
        #expect(took < 5, "stop() took \(took) s against a stalled backup with a 1 s timeout")
        let committed = try #require(primary.committedEpoch)
        #expect(committed >= committedBefore ?? 0)
        #expect(
            committed < (primary.statistics.lastCapturedEpoch ?? 0),
            "the final epoch was never acknowledged, so never committed")
    }
}
