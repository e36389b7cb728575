import FGBI
import Foundation
import Synchronization
import Testing

/// How the library reacts to its coordinator, with the lease and the arbiter driven by the test (the etcd
/// implementations and real partitions are tested in the Coordination suites): a primary whose right lapses
/// confirms nothing more and halts within its validity; a backup refuses a primary of an older term; a
/// backup waits for its arbiter before taking over, and takes over with the term the arbiter grants.
@Suite("Fencing", .serialized)
struct FencingTests {
    /// A right whose validity the test sets, as a renewing lease would.
    final class SteeredAuthority: PrimaryAuthority, @unchecked Sendable {
        let term: UInt64
        private let until: Atomic<UInt64>
        var validUntilNanoseconds: UInt64 { until.load(ordering: .acquiring) }
        var lossReason: String { "the test let the lease lapse" }

        init(term: UInt64, validFor seconds: Double) {
            self.term = term
            until = Atomic(MonotonicClock.nanoseconds() + UInt64(seconds * 1e9))
        }

        func lapse(after seconds: Double) {
            until.store(MonotonicClock.nanoseconds() + UInt64(seconds * 1e9), ordering: .releasing)
        }
    }

    /// An arbiter answering what the test says, counting how often it is asked.
    final class SteeredArbiter: FailoverArbiter, @unchecked Sendable {
        private let lock = NSLock()
        private var term: UInt64
        private var answer: FailoverDecision
        private(set) var asked = 0
        let pollInterval = Duration.milliseconds(20)

        init(term: UInt64, answer: FailoverDecision) {
            self.term = term
            self.answer = answer
        }

        func currentTerm() -> UInt64 { lock.withLock { term } }
        func decide(lastEpoch: UInt64?) -> FailoverDecision {
            lock.withLock {
                asked += 1
                return answer
            }
        }
        func set(_ decision: FailoverDecision) { lock.withLock { answer = decision } }
        var timesAsked: Int { lock.withLock { asked } }
    }

    func backup(arbiter: SteeredArbiter, length: Int) throws -> (Backup, GuestMemory) {
        let memory = try GuestMemory.anonymous(length: length)
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.primaryTimeout = .milliseconds(300)
        configuration.arbiter = arbiter
        return (try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration), memory)
    }

    @Test func aPrimaryWhoseRightLapsesConfirmsNothingMoreAndHalts() throws {
        let length = 8 << 20
        let arbiter = SteeredArbiter(term: 4, answer: .wait("the old primary's lease is still alive"))
        let (backup, backupMemory) = try backup(arbiter: arbiter, length: length)
        let served = LoopbackReplicationTests.Served(backup)
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        let authority = SteeredAuthority(term: 4, validFor: 30)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.authority = authority
        configuration.epochInterval = .milliseconds(10)
        let writers = NSLock()
        let primary = try Primary(
            regions: [memory], configuration: configuration,
            hooks: PauseHooks(pause: { writers.lock() }, resume: { writers.unlock() }))
        try primary.start()
        for step in 0..<50 {
            writers.withLock {
                memory.base.storeBytes(of: UInt64(step) + 1, toByteOffset: 4096 * step, as: UInt64.self)
            }
            #expect(primary.waitForCommit(primary.epochCoveringWritesSoFar, timeout: .seconds(10)))
        }
        // The renewals stop: the right holds 200 ms more. The guest keeps writing meanwhile.
        authority.lapse(after: 0.2)
        let deadline = authority.validUntilNanoseconds
        var step = 0
        while primary.isRunning, MonotonicClock.nanoseconds() < deadline + 2_000_000_000 {
            writers.withLock {
                memory.base.storeBytes(
                    of: UInt64(step) &+ 99, toByteOffset: (1 << 20) + 8 * (step % 512), as: UInt64.self)
            }
            step += 1
            usleep(1000)
        }
        let halted = MonotonicClock.nanoseconds()
        #expect(!primary.isRunning, "the primary halts once its right lapsed")
        #expect(
            halted < deadline + 100_000_000,
            "halted \(Double(Int64(halted) - Int64(deadline)) / 1e6) ms after the right lapsed")
        let confirmed = primary.committedEpoch
        usleep(100_000)
        #expect(primary.committedEpoch == confirmed, "no epoch is confirmed after the halt")
        #expect(throws: LostPrimaryship.self) { try primary.stop() }

        // The backup lost its primary and asks its arbiter; until it says so, it does not take over.
        let waitStart = Date()
        while arbiter.timesAsked < 3, Date().timeIntervalSince(waitStart) < 5 { usleep(10_000) }
        #expect(arbiter.timesAsked >= 3, "the backup keeps asking while the arbiter says wait")
        arbiter.set(.promote(term: 5))
        let outcome = try served.outcome()
        guard case .promoted(let epoch, let term, _) = outcome else {
            Issue.record("expected a promotion, got \(outcome)")
            return
        }
        #expect(term == 5)
        // Everything the primary confirmed is held by the promoted backup.
        let held = try #require(epoch)
        #expect(held >= (confirmed ?? 0))
        for step in 0..<50 {
            #expect(backupMemory.base.load(fromByteOffset: 4096 * step, as: UInt64.self) == UInt64(step) + 1)
        }
    }

    @Test func aBackupRefusesAPrimaryOfAnOlderTermAndKeepsServing() throws {
        let arbiter = SteeredArbiter(term: 9, answer: .wait("unused"))
        let (backup, _) = try backup(arbiter: arbiter, length: 1 << 20)
        let served = LoopbackReplicationTests.Served(backup)
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        var stale = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        stale.authority = SteeredAuthority(term: 8, validFor: 30)
        stale.reconnectWindow = .zero
        let zombie = try Primary(regions: [memory], configuration: stale)
        do {
            try zombie.start()
            Issue.record("a primary of term 8 was accepted by a backup that knows term 9")
        } catch let error as WireError {
            #expect("\(error)".contains("fenced"), "refused as fenced: \(error)")
        }
        // The current primary is served.
        var current = stale
        current.authority = SteeredAuthority(term: 9, validFor: 30)
        let primary = try Primary(regions: [memory], configuration: current)
        try primary.start()
        #expect(try primary.stop() != nil)
        #expect(try served.outcome() == .primaryFinished(lastEpoch: backup.lastEpoch))
    }

    @Test func aBackupThatIsToldToStandDownDoesNotTakeOver() throws {
        let arbiter = SteeredArbiter(term: 2, answer: .standDown("node b2 is primary with term 3"))
        let (backup, _) = try backup(arbiter: arbiter, length: 1 << 20)
        let served = LoopbackReplicationTests.Served(backup)
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.authority = SteeredAuthority(term: 2, validFor: 0.5)
        let primary = try Primary(regions: [memory], configuration: configuration)
        try primary.start()
        let outcome = try served.outcome()
        #expect(outcome == .stoodDown(lastEpoch: backup.lastEpoch, reason: "node b2 is primary with term 3"))
        #expect(throws: LostPrimaryship.self) { try primary.stop() }
    }

    @Test func aFormerPrimaryRejoinsAsTheBackupAndReceivesOnlyWhatDiffers() throws {
        let length = 32 << 20
        let pages = length / 4096
        // The old primary's memory, and the promoted backup's replica of it (the last committed epoch).
        let old = try GuestMemory.anonymous(length: length)
        var random = SeededRandom(seed: 42)
        for offset in stride(from: 0, to: length, by: 8) {
            old.base.storeBytes(of: random.next(), toByteOffset: offset, as: UInt64.self)
        }
        let promoted = try GuestMemory.anonymous(length: length)
        promoted.base.copyMemory(from: old.base, byteCount: length)
        // The old primary wrote after its last committed epoch (never confirmed); the new primary writes too.
        for page in stride(from: 0, to: pages, by: 97) {
            old.base.storeBytes(of: UInt64(page) ^ 0xBAD, toByteOffset: page * 4096, as: UInt64.self)
        }
        for page in stride(from: 5, to: pages, by: 89) {
            promoted.base.storeBytes(of: UInt64(page) ^ 0x600D, toByteOffset: page * 4096 + 8, as: UInt64.self)
        }

        let backup = try Backup(
            regions: [old], geometry: try BlockGeometry(),
            configuration: BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0)),
            holding: .formerPrimary(lastEpoch: 41))
        let served = LoopbackReplicationTests.Served(backup)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.authority = SteeredAuthority(term: 2, validFor: 60)
        let primary = try Primary(regions: [promoted], configuration: configuration)
        try primary.start()
        // Let the synchronisation finish (a stop during its first pass ends with a full epoch instead).
        #expect(primary.waitForCommit(42, timeout: .seconds(60)), "the resynchronisation committed")
        let last = try #require(try primary.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
        #expect(last > 41, "the new primary numbers on from the epoch the rejoined backup holds")
        #expect(memcmp(old.base, promoted.base, length) == 0, "the rejoined backup equals the new primary")
        let statistics = primary.statistics
        #expect(statistics.lastSynchronisation?.resynchronised == true)
        let sent = statistics.precopyBytes + statistics.bytesSent
        #expect(sent < length / 10, "resynchronised with \(sent) bytes for a \(length)-byte region: only what differs")
    }

    @Test func aRestartedBackupRemembersTheNewestTermWithoutItsCoordinator() throws {
        let directory = NSTemporaryDirectory() + "fgbi-fencing-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        func backup() throws -> Backup {
            var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            configuration.stateDirectory = directory
            return try Backup(
                regions: [try GuestMemory.anonymous(length: 1 << 20)], geometry: try BlockGeometry(),
                configuration: configuration)
        }
        func primary(term: UInt64, port: UInt16) throws -> Primary {
            var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: port))
            configuration.authority = SteeredAuthority(term: term, validFor: 30)
            configuration.reconnectWindow = .zero
            return try Primary(regions: [memory], configuration: configuration)
        }
        let first = try backup()
        let served = LoopbackReplicationTests.Served(first)
        let current = try primary(term: 5, port: first.port)
        try current.start()
        try current.stop()
        _ = try served.outcome()
        #expect(try String(contentsOfFile: directory + "/term", encoding: .utf8) == "5\n")
        // Restarted on its directory, with no coordinator to ask: term 4 is still refused.
        let restarted = try backup()
        let servedAgain = LoopbackReplicationTests.Served(restarted)
        do {
            try primary(term: 4, port: restarted.port).start()
            Issue.record("a restarted backup accepted an older term")
        } catch let error as WireError {
            #expect("\(error)".contains("fenced: term 4 is older than term 5"), "\(error)")
        }
        let next = try primary(term: 5, port: restarted.port)
        try next.start()
        try next.stop()
        #expect(try servedAgain.outcome() == .primaryFinished(lastEpoch: restarted.lastEpoch))
    }
}
