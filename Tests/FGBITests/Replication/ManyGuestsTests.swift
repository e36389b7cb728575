import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// One process replicating several guests, each to its own backup on loopback, with one shared content
/// index: every backup ends equal to its own guest's memory, byte for byte, never to another's.
@Suite("Many guests in one primary process", .serialized)
struct ManyGuestsTests {
    /// A guest: its memory and writers, and its backup (memory and serving thread).
    struct Guest: @unchecked Sendable {
        var memory: GuestMemory
        var driver: WorkloadDriver
        var backupMemory: GuestMemory
        var backup: Backup
        var served: BackupThread
    }

    static func backup(length: Int, key: PresharedKey? = nil, guest: String) throws -> (
        GuestMemory, Backup, BackupThread
    ) {
        let memory = try GuestMemory.anonymous(length: length)
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.key = key
        configuration.guestName = guest
        configuration.primaryTimeout = .seconds(10)
        let backup = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        return (memory, backup, BackupThread(backup))
    }

    /// `count` guests booted from one image (identical initial content), whose writers then diverge.
    static func guests(_ count: Int, length: Int, workload: SyntheticWorkload) throws -> [Guest] {
        try (0..<count).map { index in
            let memory = try GuestMemory.anonymous(length: length)
            try memory.prefault()
            SyntheticWorkload.fillInitial(memory, seed: 42)
            let driver = WorkloadDriver(
                memory: memory, workload: workload, threads: 1, pagesPerSecond: 8_000, seed: 100 + UInt64(index))
            let (backupMemory, backup, served) = try backup(length: length, guest: "g\(index)")
            return Guest(memory: memory, driver: driver, backupMemory: backupMemory, backup: backup, served: served)
        }
    }

    static func primaries(for guests: [Guest], engine: EngineConfiguration) throws -> [Primary] {
        try guests.enumerated().map { index, guest in
            var configuration = PrimaryConfiguration.onThisKernel(
                backup: Endpoint(host: "127.0.0.1", port: guest.backup.port))
            configuration.engine = engine
            configuration.guestName = "g\(index)"
            configuration.epochInterval = .milliseconds(10)
            configuration.reconnectWindow = .zero
            return try Primary(regions: [guest.memory], configuration: configuration, hooks: guest.driver.hooks)
        }
    }

    @Test(
        "each backup equals its own guest",
        arguments: [
            (IndexKeying.fullHash, SyntheticWorkload.sparse),
            (.fullHash, .guest),
            (.lowBits(4), .duplicate), // forced collisions across guests
        ])
    func eachBackupEqualsItsOwnGuest(keying: IndexKeying, workload: SyntheticWorkload) throws {
        let length = 8 << 20
        let guests = try Self.guests(3, length: length, workload: workload)
        let shared = try SharedContentIndex(budgetBytes: 4 << 20, keying: keying) // small: evictions too
        var engine = EngineConfiguration()
        engine.sharedIndex = shared
        let primaries = try Self.primaries(for: guests, engine: engine)
        for (guest, primary) in zip(guests, primaries) {
            try primary.start()
            guest.driver.start()
        }
        for primary in primaries {
            #expect(primary.waitForCommit(20, timeout: .seconds(60)), "twenty epochs committed")
        }
        #expect(shared.statistics.members == 3)
        for guest in guests { guest.driver.stop() }
        let lasts = try primaries.map { try #require(try $0.stop()) }
        for (index, guest) in guests.enumerated() {
            #expect(try guest.served.result(within: .seconds(120)) == .primaryFinished(lastEpoch: lasts[index]))
            #expect(
                memcmp(guest.memory.base, guest.backupMemory.base, length) == 0,
                "guest \(index)'s backup differs from it")
            for (other, otherGuest) in guests.enumerated() where other != index {
                #expect(
                    memcmp(otherGuest.memory.base, guest.backupMemory.base, length) != 0,
                    "guest \(index)'s backup must not hold guest \(other)'s memory")
            }
            #expect(guest.driver.written > 100)
        }
        let statistics = shared.statistics
        // Guests booted alike share stored copies: their pre-copy passes go side by side in 4 MiB chunks. The scan
        // tracker has no pre-copy: each guest's first epoch takes its whole region, twice the index's budget, and
        // with no duplicates inside a guest (sparse) each evicts the others' copies before they are looked for.
        if Kernel.preferredTracker != .scan || workload != .sparse {
            #expect(statistics.attachments > 0, "guests booted alike share stored copies")
        } else {
            #expect(statistics.evictions > 0)
        }
        if keying == .fullHash && workload != .sparse { // the sparse workload makes no duplicates
            #expect(
                primaries.allSatisfy { $0.statistics.sharedHits > 0 }, "each guest still references its own duplicates")
        }
    }

    @Test func aSharedIndexKeepsFewerCopiesThanSeparateIndexes() throws {
        let length = 8 << 20
        func run(shared: SharedContentIndex?) throws -> (
            entries: [Int], precopyBytes: Int, shared: SharedContentIndex.Statistics?
        ) {
            let guests = try Self.guests(3, length: length, workload: .sparse)
            var engine = EngineConfiguration()
            engine.sharedIndex = shared
            let primaries = try Self.primaries(for: guests, engine: engine)
            // No writes: the three guests stay identical, so both runs see the very same epochs.
            for primary in primaries { try primary.start() }
            for primary in primaries { #expect(primary.waitForCommit(5, timeout: .seconds(60))) }
            for primary in primaries { try primary.stop() }
            let statistics = shared?.statistics // while the engines are still members
            for (guest, primary) in zip(guests, primaries) {
                #expect(
                    try guest.served.result(within: .seconds(120))
                        == .primaryFinished(lastEpoch: primary.committedEpoch))
                #expect(memcmp(guest.memory.base, guest.backupMemory.base, length) == 0)
            }
            // Pre-copy carries the whole region; the epochs after it are empty, their number a matter of timing.
            return (
                primaries.map(\.statistics.indexEntries), primaries.reduce(0) { $0 + $1.statistics.precopyBytes },
                statistics
            )
        }
        let separate = try run(shared: nil)
        let together = try run(shared: try SharedContentIndex())
        let statistics = try #require(together.shared)
        #expect(together.entries == separate.entries, "each guest knows what its own backup holds either way")
        #expect(statistics.entries == separate.entries.reduce(0, +))
        #expect(
            statistics.storedCopies * 3 == separate.entries.reduce(0, +),
            "one stored copy where separate indexes keep three")
        #expect(statistics.bytesSavedBySharing == 2 * statistics.storedCopies * 64)
        #expect(together.precopyBytes == separate.precopyBytes, "sharing stored copies changes nothing on the wire")
    }

    @Test func aGuestWhoseBackupRestartsRejoinsWithAFreshEntryTable() throws {
        // Guest 0's backup restarts on its state directory: its primary reconnects with a new engine, whose
        // entries start empty (the old session's leave the index), while guest 1 replicates on.
        let length = 8 << 20
        let directory = NSTemporaryDirectory() + "fgbi-many-guests-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func stateBackup(_ memory: GuestMemory, port: UInt16) throws -> Backup {
            var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: port))
            configuration.primaryTimeout = .seconds(10)
            configuration.stateDirectory = directory
            configuration.guestName = "g0"
            return try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        }
        var guests = try Self.guests(2, length: length, workload: .guest)
        guests[0].backup.stop()
        _ = try? guests[0].served.result(within: .seconds(120))
        let firstMemory = try GuestMemory.anonymous(length: length)
        let first = try stateBackup(firstMemory, port: 0)
        let firstThread = BackupThread(first)
        guests[0].backup = first
        let shared = try SharedContentIndex()
        var engine = EngineConfiguration()
        engine.sharedIndex = shared
        var primaries = try Self.primaries(for: guests, engine: engine)
        var configuration = primaries[0].configuration
        configuration.reconnectWindow = .seconds(20)
        primaries[0] = try Primary(
            regions: [guests[0].memory], configuration: configuration, hooks: guests[0].driver.hooks)
        for (guest, primary) in zip(guests, primaries) {
            try primary.start()
            guest.driver.start()
        }
        for primary in primaries { #expect(primary.waitForCommit(10, timeout: .seconds(60))) }
        first.stop()
        _ = try firstThread.result(within: .seconds(120))
        let secondMemory = try GuestMemory.anonymous(length: length)
        let second = try stateBackup(secondMemory, port: first.port)
        let secondThread = BackupThread(second)
        let deadline = Date().addingTimeInterval(20)
        while primaries[0].statistics.reconnects < 1, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(primaries[0].statistics.reconnects == 1)
        #expect(
            primaries[0].waitForCommit(
                try #require(primaries[0].statistics.lastSynchronisation?.epoch) + 3, timeout: .seconds(30)))
        #expect(shared.statistics.members == 2, "the old session's engine left the index")
        for guest in guests { guest.driver.stop() }
        let lasts = try primaries.map { try #require(try $0.stop()) }
        #expect(try secondThread.result(within: .seconds(120)) == .primaryFinished(lastEpoch: lasts[0]))
        #expect(try guests[1].served.result(within: .seconds(120)) == .primaryFinished(lastEpoch: lasts[1]))
        #expect(
            memcmp(guests[0].memory.base, secondMemory.base, length) == 0, "the restarted backup differs from its guest"
        )
        #expect(memcmp(guests[1].memory.base, guests[1].backupMemory.base, length) == 0)
    }

    @Test func aGroupOfGuestsReportsEachAndNamesTheOneThatFailed() throws {
        let length = 4 << 20
        // Each guest has a key of its own, in its own key file.
        let keyBytes: [[UInt8]] = [Array(repeating: 1, count: 32), Array(repeating: 2, count: 32)]
        let keyFiles = try keyBytes.enumerated().map { index, bytes -> String in
            let path = NSTemporaryDirectory() + "fgbi-guest-key-\(getpid())-\(index)"
            unlink(path)
            try PrivateFile.create(path, bytes: bytes)
            return path
        }
        defer { for path in keyFiles { unlink(path) } }
        let backups = try zip(keyBytes, ["alpha", "beta_2"]).map { bytes, name in
            try Self.backup(length: length, key: try PresharedKey(bytes: bytes), guest: name)
        }
        // Nothing listens on port 1: the third guest cannot start.
        let deadPort: UInt16 = 1
        let specifications = [
            GuestSpecification(
                name: "alpha", backup: Endpoint(host: "127.0.0.1", port: backups[0].1.port), keyFile: keyFiles[0]),
            GuestSpecification(
                name: "beta_2", backup: Endpoint(host: "127.0.0.1", port: backups[1].1.port), keyFile: keyFiles[1]),
            GuestSpecification(name: "gamma", backup: Endpoint(host: "127.0.0.1", port: deadPort)),
        ]
        var settings = GuestGroup.Settings(
            primary: PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: 0)))
        settings.primary.epochInterval = .milliseconds(10)
        settings.primary.reconnectWindow = .zero
        settings.primary.encrypt = false
        settings.regionMiB = length >> 20
        settings.threads = 1
        settings.pagesPerSecond = 5_000
        let group = try GuestGroup(specifications, settings: settings)
        let failed = group.start()
        #expect(failed.map(\.name) == ["gamma"])
        for guest in group.guests.prefix(2) { #expect(guest.primary.waitForCommit(10, timeout: .seconds(60))) }
        #expect(group.progressLines().count == 3)
        let reports = group.stop()
        #expect(reports.map(\.name) == ["alpha", "beta_2", "gamma"])
        #expect(reports[0].failure == nil && reports[1].failure == nil && reports[2].failure != nil)
        #expect(GuestGroup.Failure(reports: [reports[2]]).description.contains("guest gamma failed"))
        for (index, (backupMemory, _, thread)) in backups.enumerated() {
            #expect(
                try thread.result(within: .seconds(120))
                    == .primaryFinished(lastEpoch: reports[index].lastCommittedEpoch))
            #expect(
                memcmp(group.guests[index].memory.base, backupMemory.base, length) == 0,
                "\(reports[index].name)'s backup differs")
        }
        #expect(group.sharedIndex?.statistics.attachments ?? 0 > 0)
    }
}
