import Foundation
import Synchronization
import Testing

@testable import FGBI

/// The backup's serve loop as a state machine (Backup+Serving.swift): the states it goes through with a real
/// primary, and the step function driven by hand.
@Suite("Backup state machine", .serialized)
struct BackupStateMachineTests {
    /// A backup serving on a thread of its own, recording the names of the states it enters.
    final class Recorded: @unchecked Sendable {
        let backup: Backup
        private let names = Mutex<[String]>([])
        private let outcome = Mutex<Result<BackupOutcome, Error>?>(nil)
        private var thread: Thread?

        init(_ backup: Backup) {
            self.backup = backup
            let thread = Thread { [self] in
                let result = Result { try backup.serve { state in self.names.withLock { $0.append(state.name) } } }
                outcome.withLock { $0 = result }
            }
            self.thread = thread
            thread.start()
        }

        /// The states entered, each run of the same state counted once.
        var states: [String] {
            names.withLock { names in
                names.enumerated().filter { $0.offset == 0 || names[$0.offset - 1] != $0.element }.map(\.element)
            }
        }

        func result(within seconds: Double) throws -> BackupOutcome? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let result = outcome.withLock({ $0 }) { return try result.get() }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return nil
        }
    }

    static func pair(length: Int) throws -> (primary: Primary, memory: GuestMemory, recorded: Recorded) {
        let replica = try GuestMemory.anonymous(length: length)
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.primaryTimeout = .milliseconds(500)
        let backup = try Backup(regions: [replica], configuration: backupConfiguration)
        let recorded = Recorded(backup)
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.epochInterval = .milliseconds(10)
        configuration.reconnectWindow = .zero
        let primary = try Primary(regions: [memory], configuration: configuration)
        return (primary, memory, recorded)
    }

    @Test func aPrimaryThatFinishesTakesTheBackupThroughEveryStateOfASession() throws {
        let (primary, memory, recorded) = try Self.pair(length: 4 << 20)
        try primary.start()
        memory.base.storeBytes(of: 0xFEED as UInt64, toByteOffset: 4096, as: UInt64.self)
        #expect(primary.waitForCommit(primary.epochCoveringWritesSoFar, timeout: .seconds(10)))
        let last = try primary.stop()
        let outcome = try #require(try recorded.result(within: 10))
        #expect(outcome == .primaryFinished(lastEpoch: last))
        #expect(recorded.states == ["listening", "handshaking", "synchronising", "replicating", "finished"])
        #expect(memcmp(memory.base, recorded.backup.replica.regions[0].base, memory.length) == 0)
    }

    @Test func aLostPrimaryWithoutACoordinatorIsFailedOver() throws {
        let (primary, _, recorded) = try Self.pair(length: 4 << 20)
        try primary.start()
        #expect(primary.waitForCommit(primary.epochCoveringWritesSoFar, timeout: .seconds(10)))
        // Closes the connection without a bye, as a crash would.
        primary.fail(WireError.unexpected("a crash, for the test"))
        let outcome = try #require(try recorded.result(within: 10))
        guard case .failedOver(let epoch, _) = outcome else {
            Issue.record("expected a failover, got \(outcome)")
            return
        }
        // Every committed epoch is held; the backup may hold one more, acknowledged but not yet counted when the
        // connection closed.
        let committed = try #require(primary.committedEpoch)
        #expect(
            epoch.map { $0 >= committed } ?? false,
            "failed over at \(String(describing: epoch)), committed \(committed)")
        #expect(
            recorded.states == [
                "listening", "handshaking", "synchronising", "replicating", "primaryLost", "failingOver", "finished",
            ])
        _ = try? primary.stop(finalEpoch: false)
    }

    @Test func stopEndsListeningAndAFinishedStateStaysFinished() throws {
        let replica = try GuestMemory.anonymous(length: 1 << 20)
        let backup = try Backup(
            regions: [replica], configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)))
        backup.stop()
        let state = try backup.step(.listening(lost: nil))
        guard case .finished(.primaryFinished(nil)) = state else {
            Issue.record("a stopped backup's listening step gave \(state.name)")
            return
        }
        let again = try backup.step(state)
        #expect(again.name == "finished")
        // A decided failover is not undone by stop(): it writes what it holds and reports the failover.
        let failover = try backup.step(.failingOver(reason: "a test", term: nil))
        guard case .finished(.failedOver(nil, "a test")) = failover else {
            Issue.record("failingOver gave \(failover.name)")
            return
        }
    }
}
