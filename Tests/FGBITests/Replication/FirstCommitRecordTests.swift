import Foundation
import Synchronization
import Testing

@testable import FGBI

/// What a primaryship tells its successors before it confirms a commit, and what a backup remembers of the
/// primaryship whose epoch it holds: a primary confirms no commit until its ``PrimaryAuthority`` recorded the
/// first one (asked again at each acknowledgement while it fails, and once only after it succeeds), and a
/// backup holds the term of the primary whose epoch it applied, kept in its state directory.
@Suite("First commit record and held term", .serialized)
struct FirstCommitRecordTests {
    /// A lease that refuses to record the first commit until the test allows it, counting the calls.
    final class RecordingAuthority: PrimaryAuthority, @unchecked Sendable {
        let term: UInt64
        let validUntilNanoseconds = UInt64.max
        let lossReason = "held"
        private let allowed = Atomic<Bool>(false)
        private let calls = Atomic<Int>(0)
        private let recorded = Mutex<(backups: Int, quorum: Int)?>(nil)

        init(term: UInt64) { self.term = term }

        func recordFirstCommit(backups: Int, quorum: Int) -> Bool {
            calls.add(1, ordering: .relaxed)
            guard allowed.load(ordering: .acquiring) else { return false }
            recorded.withLock { $0 = (backups, quorum) }
            return true
        }

        func allow() { allowed.store(true, ordering: .releasing) }
        var callCount: Int { calls.load(ordering: .relaxed) }
        var record: (backups: Int, quorum: Int)? { recorded.withLock { $0 } }
    }

    @Test func noCommitIsConfirmedBeforeTheFirstIsRecordedAndTheBackupHoldsItsTerm() throws {
        let length = 4 << 20
        let directory = NSTemporaryDirectory() + "fgbi-first-commit-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let backupMemory = try GuestMemory.anonymous(length: length)
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.stateDirectory = directory
        backupConfiguration.syncEachEpoch = false
        let backup = try Backup(
            regions: [backupMemory], geometry: try BlockGeometry(), configuration: backupConfiguration)
        let served = LoopbackReplicationTests.Served(backup)
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        let authority = RecordingAuthority(term: 6)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.authority = authority
        configuration.epochInterval = .milliseconds(10)
        let primary = try Primary(regions: [memory], configuration: configuration)
        try primary.start()
        memory.base.storeBytes(of: 0xFEED, toByteOffset: 4096, as: UInt64.self)
        // Epochs are applied and acknowledged, but none is confirmed while the record fails.
        let deadline = Date().addingTimeInterval(10)
        while authority.callCount < 3, Date() < deadline { usleep(5_000) }
        #expect(authority.callCount >= 3, "the primary did not ask again at later acknowledgements")
        #expect(primary.committedEpoch == nil, "an epoch was confirmed before the first commit was recorded")
        #expect(backup.heldTerm.load(ordering: .acquiring) == 6)
        authority.allow()
        #expect(primary.waitForCommit(primary.epochCoveringWritesSoFar, timeout: .seconds(10)))
        let callsAtCommit = authority.callCount
        #expect(primary.waitForCommit(primary.epochCoveringWritesSoFar + 3, timeout: .seconds(10)))
        #expect(authority.callCount == callsAtCommit, "the record was asked for again after it succeeded")
        #expect(authority.record?.backups == 1 && authority.record?.quorum == 1)
        _ = try primary.stop()
        _ = try served.outcome()
        // A backup restarted on the state directory holds the same term (the first epoch of term 6 was a
        // checkpoint, whose state file records it).
        let restarted = try Backup(
            regions: [try GuestMemory.anonymous(length: length)], geometry: try BlockGeometry(),
            configuration: backupConfiguration)
        #expect(restarted.heldTerm.load(ordering: .acquiring) == 6)
    }
}
