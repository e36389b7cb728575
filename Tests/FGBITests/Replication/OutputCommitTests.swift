import FGBI
import Foundation
import Testing

/// The library article's program (Sources/FGBI/FGBI.docc/ReplicatingYourOwnMemory.md), against a backup in
/// this process: after each write, waiting for ``Primary/epochCoveringWritesSoFar`` to commit must mean the
/// backup already holds the write.
@Suite("Output commit", .serialized)
struct OutputCommitTests {
    @Test func everyReplyWaitsForABackupThatHoldsItsWrite() throws {
        let length = 64 << 20
        let backupMemory = try GuestMemory.anonymous(length: length)
        let backup = try Backup(regions: [backupMemory], geometry: try BlockGeometry(blockSize: 64),
                                configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)))
        let served = LoopbackReplicationTests.Served(backup)

        // The article's program, with the backup's address filled in.
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        let writers = NSLock()
        let configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        let primary = try Primary(regions: [memory], configuration: configuration,
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
            if backupMemory.base.load(fromByteOffset: 8 * (request % 4096), as: UInt64.self) != UInt64(request) &+ 0xC0FFEE { late += 1 }
        }
        try primary.stop()
        _ = try served.outcome()
        #expect(late == 0, "\(late) replies would have been released before the backup held their write")
    }
}
