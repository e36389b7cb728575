import FGBI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The library article's programs (Sources/FGBI/FGBI.docc/ReplicatingYourOwnMemory.md): its primary against
/// its backup in this process (after each write, waiting for ``Primary/epochCoveringWritesSoFar`` to commit
/// must mean the backup already holds the write), and its backup taking over from a primary process killed
/// with SIGKILL.
@Suite("The library article's programs", .serialized)
struct OutputCommitTests {
    @Test func everyReplyWaitsForABackupThatHoldsItsWrite() throws {
        let length = 64 << 20
        // The backup, as the article's backup section starts it, configured to accept this primary.
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: 0))
        let replica = try GuestMemory.anonymous(length: length)
        let backup = try Backup(
            regions: [replica],
            configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0), matching: configuration))
        let service = try backup.start()
        configuration.backup = Endpoint(host: "127.0.0.1", port: backup.port)

        // The article's primary, with the backup's address filled in.
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        let writers = NSLock()
        let primary = try Primary(
            regions: [memory], configuration: configuration,
            hooks: PauseHooks(pause: { writers.lock() }, resume: { writers.unlock() }))
        try primary.start()
        var late = 0
        for request in 0..<200 {
            writers.lock()
            memory.base.storeBytes(of: UInt64(request) &+ 0xC0FFEE, toByteOffset: 8 * (request % 4096), as: UInt64.self)
            writers.unlock()
            guard primary.waitForCommit(primary.epochCoveringWritesSoFar, timeout: .seconds(10)) else {
                Issue.record("no commit: \(String(describing: primary.failure))")
                break
            }
            // The reply may go out now: the backup must hold the write already.
            if replica.base.load(fromByteOffset: 8 * (request % 4096), as: UInt64.self) != UInt64(request) &+ 0xC0FFEE {
                late += 1
            }
        }
        let last = try primary.stop()
        #expect(late == 0, "\(late) replies would have been released before the backup held their write")
        #expect(try service.outcome(timeout: .seconds(30)) == .primaryFinished(lastEpoch: last))
        #expect(
            memcmp(replica.base, memory.base, length) == 0,
            "the replica equals the primary's memory after its last epoch")
    }

    @Test(.enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func theBackupTakesOverFromAKilledPrimaryAndResumesFromItsStateDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fgbi-article-\(getpid())")
        try FileManager.default.createDirectory(
            at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: directory) }
        let length = 16 << 20

        // The article's backup program, on loopback, with no key (a primary on loopback needs none).
        let replica = try GuestMemory.anonymous(length: length)
        var configuration = BackupConfiguration(listen: try Endpoint(parsing: "127.0.0.1:0"))
        configuration.stateDirectory = directory.path
        configuration.primaryTimeout = .milliseconds(200)
        let backup = try Backup(regions: [replica], configuration: configuration)
        let service = try backup.start()
        #expect(try service.outcome(timeout: .milliseconds(50)) == nil, "still serving, no primary yet")

        let primary = try CommandRunner.startPrimary(backupPort: backup.port)
        let deadline = Date().addingTimeInterval(60)
        while (backup.lastEpoch ?? 0) < 10, Date() < deadline { usleep(2000) }
        #expect(backup.lastEpoch != nil, "replication started")
        kill(primary.processIdentifier, SIGKILL)
        primary.waitUntilExit()

        var tookOverAt: UInt64?
        switch try service.outcome() {
        case .failedOver(let epoch, let reason), .promoted(let epoch, _, let reason):
            #expect(!reason.isEmpty)
            tookOverAt = epoch
        case .primaryFinished, .stoodDown:
            Issue.record("a killed primary must lead to a failover")
        }
        #expect(service.isFinished)
        let epoch = try #require(tookOverAt)
        #expect(epoch == backup.lastEpoch)

        // A backup restarted on the state directory resumes at that epoch, with the same memory.
        let restartedMemory = try GuestMemory.anonymous(length: length)
        var again = BackupConfiguration(listen: try Endpoint(parsing: "127.0.0.1:0"))
        again.stateDirectory = directory.path
        let restarted = try Backup(regions: [restartedMemory], configuration: again)
        #expect(restarted.lastEpoch == epoch)
        #expect(
            memcmp(restartedMemory.base, replica.base, length) == 0, "the state directory holds the replica taken over")
        #expect(try restarted.start().stop() == .primaryFinished(lastEpoch: epoch))
    }
}
