import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// A primary and a backup in one process over loopback, replicating a workload written by threads that the
/// primary pauses at every epoch boundary. The primary tracks with ``Kernel/preferredTracker``.
@Suite("Replication over loopback", .serialized)
struct LoopbackReplicationTests {
    /// Runs `serve()` on a thread of its own and hands back the outcome.
    /// A backup served by ``Backup/start()``, with a timeout on its outcome that fails the test instead of
    /// waiting for ever.
    final class Served: Sendable {
        let service: BackupService

        init(_ backup: Backup) {
            do { service = try backup.start() } catch { fatalError("cannot start the backup's thread: \(error)") }
        }

        func outcome(timeout: Double = 30) throws -> BackupOutcome {
            guard let outcome = try service.outcome(timeout: .milliseconds(Int(timeout * 1000))) else {
                throw WireError.timedOut(milliseconds: Int(timeout * 1000))
            }
            return outcome
        }
    }

    static func key(_ byte: UInt8) throws -> PresharedKey {
        try PresharedKey(bytes: [UInt8](repeating: byte, count: 32))
    }

    func makeBackup(length: Int, key: PresharedKey? = nil, blockSize: Int = 64) throws -> (Backup, GuestMemory) {
        let memory = try GuestMemory.anonymous(length: length)
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.key = key
        configuration.primaryTimeout = .seconds(5)
        return (
            try Backup(
                regions: [memory], geometry: try BlockGeometry(blockSize: blockSize), configuration: configuration),
            memory
        )
    }

    /// The primary's region: pre-faulted, filled like a running guest's.
    func makeGuestMemory(length: Int, seed: UInt64) throws -> GuestMemory {
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        SyntheticWorkload.fillInitial(memory, seed: seed)
        return memory
    }

    @Test(
        "backup equals primary at the last acknowledged epoch",
        arguments: [
            (ReplicationMode.fgbi, SyntheticWorkload.sparse, true),
            (.pageLZ4, .duplicate, true),
            (.fgbi, .duplicate, false),
            (.page, .dense, false),
            (.xbzrle, .sparse, true),
        ])
    func replicatesExactly(mode: ReplicationMode, workload: SyntheticWorkload, authenticated: Bool) throws {
        let length = 32 << 20
        let key = authenticated ? try Self.key(1) : nil
        let (backup, backupMemory) = try makeBackup(length: length, key: key)
        let served = Served(backup)

        let memory = try makeGuestMemory(length: length, seed: 3)
        let driver = WorkloadDriver(memory: memory, workload: workload, threads: 2, pagesPerSecond: 40_000)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.engine = EngineConfiguration(mode: mode)
        configuration.key = key
        configuration.encrypt = authenticated && mode == .pageLZ4 // one case runs encrypted end to end
        let primary = try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
        try primary.start()
        driver.start()
        #expect(primary.waitForCommit(10, timeout: .seconds(60)), "ten epochs committed")
        driver.stop() // the guest stops; the final epoch captures everything it wrote
        let last = try #require(try primary.stop())

        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
        #expect(backup.lastEpoch == last)
        #expect(memcmp(memory.base, backupMemory.base, length) == 0, "backup differs from the primary at epoch \(last)")
        let statistics = primary.statistics
        #expect(statistics.epochsSent == statistics.epochsCaptured, "every paused epoch was sent")
        #expect(statistics.lastCapturedEpoch == last, "the final epoch is the last one captured")
        let synchronisation = try #require(statistics.lastSynchronisation)
        if configuration.tracker == .scan {
            #expect(
                synchronisation.rounds == 0 && statistics.precopyFrames == 0,
                "no pre-copy with the scan tracker: the first epoch takes every page")
        } else {
            #expect(synchronisation.rounds >= 1 && synchronisation.pagesPerRound.first == length / GuestMemory.pageSize)
            #expect(statistics.precopyFrames >= synchronisation.rounds, "the first pass went out as pre-copy frames")
        }
        #expect(driver.written > 1000)
    }

    @Test(
        "hot pages: captured unscanned at every epoch, the backup still exact",
        .requiring(.uffdAsync, because: "hot pages are the uffd-async tracker's"),
        arguments: [
            (ReplicationMode.fgbi, HotPagePolicy.replicationDefault), (.xbzrle, .replicationDefault), (.fgbi, .off),
            (.page, .replicationDefault),
        ])
    func hotPagesKeepReplicationExact(mode: ReplicationMode, policy: HotPagePolicy) throws {
        let length = 16 << 20
        let (backup, backupMemory) = try makeBackup(length: length)
        let served = Served(backup)
        let memory = try makeGuestMemory(length: length, seed: 4)
        // The guest workload: most writes on a hot sixteenth of the region, so its pages are written epoch
        // after epoch.
        let driver = WorkloadDriver(memory: memory, workload: .guest, threads: 2, pagesPerSecond: 40_000)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.tracker = .uffdAsync
        configuration.engine = EngineConfiguration(mode: mode)
        configuration.hotPages = policy
        let primary = try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
        try primary.start()
        driver.start()
        #expect(
            primary.waitForCommit(
                try #require(primary.statistics.lastSynchronisation?.epoch) + 30, timeout: .seconds(60)))
        driver.stop()
        let last = try #require(try primary.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
        #expect(
            memcmp(memory.base, backupMemory.base, length) == 0,
            "backup differs with hot pages \(policy) in \(mode) mode")
        let unscanned = primary.statistics.pagesReportedUnscanned
        if policy.isEnabled && mode.sendsOnlyChanges {
            #expect(unscanned > 0, "hot pages were captured without a scan")
        } else {
            #expect(unscanned == 0, "no hot pages with the policy off or in \(mode) mode (it would send them whole)")
        }
    }

    @Test(
        "replication is exact on every frame send path",
        arguments: [
            FrameSendPath.socket, .uring, .uringZeroCopy(minimumPayloadBytes: 0),
            .bySize(uringMinimumPayloadBytes: 64 << 10), .automatic,
        ])
    func replicatesOnEverySendPath(path: FrameSendPath) throws {
        let support = try? URingSendSupport.current.get()
        if path.usesUring, support == nil || support?.unavailableReason(for: path) != nil {
            return // this kernel lacks it; the transport tests report which
        }
        let length = 8 << 20
        let (backup, backupMemory) = try makeBackup(length: length)
        let served = Served(backup)
        let memory = try makeGuestMemory(length: length, seed: 9)
        let driver = WorkloadDriver(memory: memory, workload: .sparse, threads: 1, pagesPerSecond: 10_000)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.sendPath = path
        let primary = try Primary(regions: [memory], configuration: configuration, hooks: driver.hooks)
        try primary.start()
        driver.start()
        #expect(
            primary.waitForCommit(
                try #require(primary.statistics.lastSynchronisation?.epoch) + 10, timeout: .seconds(20)))
        driver.stop()
        let last = try #require(try primary.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
        #expect(memcmp(memory.base, backupMemory.base, length) == 0, "backup differs on the \(path) path")
        let expected = path == .automatic ? .socket : path
        #expect(primary.statistics.sendPath == expected.description)
    }

    @Test func committedEpochsArriveInOrderOnTheStream() async throws {
        let (backup, _) = try makeBackup(length: 4 << 20)
        let served = Served(backup)
        let memory = try GuestMemory.anonymous(length: 4 << 20)
        let primary = try Primary(
            regions: [memory],
            configuration: PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port)))
        let stream = primary.commits()
        try primary.start()
        var seen: [UInt64] = []
        for await epoch in stream {
            seen.append(epoch)
            if seen.count == 5 { break }
        }
        try primary.stop()
        _ = try served.outcome()
        // The synchronisation's pre-copy steps take epoch numbers first; committed epochs then follow one by one.
        let first = try #require(primary.statistics.lastSynchronisation?.epoch)
        #expect(seen == Array(first..<(first + 5)))
    }

    @Test func everyEpochReportsItsPauseAndTheTimeTakenToStopTheGuest() throws {
        let length = 4 << 20
        let (backup, _) = try makeBackup(length: length)
        let served = Served(backup)
        let memory = try GuestMemory.anonymous(length: length)
        try memory.prefault()
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.epochInterval = .milliseconds(5)
        configuration.reconnectWindow = .zero
        let seen = PthreadLock<[EpochStatistics]>([])
        // A guest that takes 10 ms to stop: that time is part of the pause and reported as the stop time.
        let hooks = PauseHooks(pause: { MonotonicClock.sleep(nanoseconds: 10_000_000) }, resume: {})
        let primary = try Primary(
            regions: [memory], configuration: configuration, hooks: hooks,
            observer: { capture, statistics in if !capture.isPrecopy { seen.withLock { $0.append(statistics) } } })
        try primary.start()
        MonotonicClock.sleep(nanoseconds: 100_000_000)
        try primary.stop()
        _ = try served.outcome()
        let epochs = seen.withLock { $0 }
        #expect(epochs.count >= 3)
        for epoch in epochs {
            #expect(epoch.stopNanoseconds >= 10_000_000, "epoch \(epoch.epoch): stop \(epoch.stopNanoseconds) ns")
            #expect(
                epoch.pauseNanoseconds > epoch.stopNanoseconds,
                "epoch \(epoch.epoch): the pause covers the stop and the capture")
        }
    }

    @Test func wrongKeyAndMissingKeyAreRefusedWithoutStateChange() throws {
        let length = 4 << 20
        let (backup, backupMemory) = try makeBackup(length: length, key: try Self.key(1))
        let served = Served(backup)
        let memory = try GuestMemory.anonymous(length: length)
        memory.base.storeBytes(of: 0xFEED, as: UInt64.self)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))

        configuration.key = try Self.key(2)
        let wrong = try Primary(regions: [memory], configuration: configuration)
        #expect(throws: WireError.self) { try wrong.start() }

        configuration.key = nil
        let keyless = try Primary(regions: [memory], configuration: configuration)
        #expect(throws: WireError.self) { try keyless.start() }

        #expect(backup.lastEpoch == nil)
        #expect(UnsafeRawBufferPointer(start: backupMemory.base, count: length).allSatisfy { $0 == 0 })

        // The backup kept listening: the right key still gets through.
        configuration.key = try Self.key(1)
        let right = try Primary(regions: [memory], configuration: configuration)
        try right.start()
        let last = try #require(try right.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
        #expect(backupMemory.base.load(as: UInt64.self) == 0xFEED)
    }

    @Test func backupRequiringEncryptionRefusesPlainPrimaries() throws {
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        var backupConfiguration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        backupConfiguration.key = try Self.key(3)
        backupConfiguration.requireEncryption = true
        let backup = try Backup(
            regions: [try GuestMemory.anonymous(length: 1 << 20)], geometry: try BlockGeometry(),
            configuration: backupConfiguration)
        let served = Served(backup)
        var configuration = PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port))
        configuration.key = try Self.key(3)
        #expect(throws: WireError.self) { try Primary(regions: [memory], configuration: configuration).start() }
        configuration.encrypt = true
        let encrypted = try Primary(regions: [memory], configuration: configuration)
        try encrypted.start()
        let last = try #require(try encrypted.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
    }

    /// A raw TCP client, for peers that do not speak the protocol properly.
    static func rawConnect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw SystemError(operation: "connect", errno: errno) }
        return fd
    }

    @Test func unauthenticatedPeersCannotExhaustOrStallTheBackup() throws {
        let memory = try GuestMemory.anonymous(length: 4 << 20)
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.handshakeTimeout = .milliseconds(500)
        let backup = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        let served = Served(backup)

        // A header announcing a 4 MiB hello (below what an epoch may carry, far above what a hello needs):
        // refused at once, before any payload is read or allocated.
        let greedy = try Self.rawConnect(port: backup.port)
        var header = Array("FGBW".utf8) + [1, 0, 1, 0] + [UInt8](repeating: 0, count: 8)
        appendLittleEndian(UInt64(4) << 20, to: &header)
        header += [UInt8](repeating: 0, count: 8)
        let start = Date()
        _ = header.withUnsafeBytes { send(greedy, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var byte: UInt8 = 0
        let answered = recv(greedy, &byte, 1, 0) // the close
        #expect(answered == 0, "the backup closed the connection")
        #expect(Date().timeIntervalSince(start) < 0.3, "refused without waiting for the announced payload")
        close(greedy)

        // A peer dribbling its header one byte every 150 ms is cut off at the 500 ms handshake deadline, though
        // no single wait exceeds the receive timeout.
        let slow = try Self.rawConnect(port: backup.port)
        let slowStart = Date()
        var closedAfter: Double?
        for byte in header {
            var value = byte
            var poller = pollfd(fd: slow, events: Int16(POLLIN), revents: 0)
            var peek: UInt8 = 0
            if poll(&poller, 1, 150) > 0, recv(slow, &peek, 1, Int32(MSG_DONTWAIT)) <= 0 {
                closedAfter = Date().timeIntervalSince(slowStart)
                break
            }
            if send(slow, &value, 1, Int32(MSG_NOSIGNAL)) < 0 {
                closedAfter = Date().timeIntervalSince(slowStart)
                break
            }
        }
        #expect(closedAfter != nil, "the slow peer was cut off before its header was complete")
        #expect((closedAfter ?? 99) < 2)
        close(slow)

        // The backup still serves a real primary, its replica untouched so far.
        #expect(backup.lastEpoch == nil)
        let primaryMemory = try GuestMemory.anonymous(length: 4 << 20)
        let primary = try Primary(
            regions: [primaryMemory],
            configuration: PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port)))
        try primary.start()
        let last = try #require(try primary.stop())
        #expect(try served.outcome() == .primaryFinished(lastEpoch: last))
    }

    @Test func layoutMismatchIsRefused() throws {
        let (backup, _) = try makeBackup(length: 4 << 20)
        let served = Served(backup)
        let memory = try GuestMemory.anonymous(length: 8 << 20)
        let primary = try Primary(
            regions: [memory],
            configuration: PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "127.0.0.1", port: backup.port)))
        #expect(throws: WireError.self) { try primary.start() }
        backup.stop()
        _ = try? served.outcome()
        #expect(backup.lastEpoch == nil)
    }

    @Test func keyIsRequiredOffLoopback() throws {
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        let primary = try Primary(
            regions: [memory],
            configuration: PrimaryConfiguration.onThisKernel(backup: Endpoint(host: "192.0.2.1", port: 7070)))
        #expect(throws: WireError.self) { try primary.start() }
    }
}
