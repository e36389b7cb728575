import FGBI
import FGBIBench
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Faults injected into running replications (Docs/RELIABILITY.md lists the counts): after each, the backup
/// holds exactly an epoch the primary captured, the primary never reported a later one committed, and
/// replication moves on once the backup is back.
@Suite("Fault injection", .serialized)
struct FaultInjectionTests {
    /// The check itself must catch a torn epoch, an epoch the primary never captured and an early commit.
    @Test func theCheckCatchesWrongAndUncommittedEpochs() throws {
        let directory = NSTemporaryDirectory() + "fgbi-check-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let length = 1 << 20
        let memory = try GuestMemory.anonymous(length: length)
        memset(memory.base, 0x11, length)
        let digests = EpochDigests(regions: [memory])
        digests.record(epoch: 5, digest: EpochDigests.digest(of: [memory]))
        let replica = Replica(regions: [memory], geometry: try BlockGeometry())
        replica.adopt(epoch: 5)
        try ReplicaStore(directory: directory).checkpoint(replica)
        let check = try GuestMemory.anonymous(length: length)

        let good = FaultInjector.check(stateDirectory: directory, into: check, digests: digests) { 5 }
        #expect(good.held == 5 && good.divergence == nil)
        let early = FaultInjector.check(stateDirectory: directory, into: check, digests: digests) { 6 }
        #expect(early.divergence?.contains("reported epoch 6 committed") == true)
        let unknown = FaultInjector.check(
            stateDirectory: directory, into: check, digests: EpochDigests(regions: [memory])
        ) { 5 }
        #expect(unknown.divergence?.contains("never captured") == true)
        // The epoch's bytes changed on disk (the image is rewritten with one byte off; the journal is empty).
        memory.base.storeBytes(of: 0x12, toByteOffset: 4096, as: UInt8.self)
        try ReplicaStore(directory: directory).checkpoint(replica)
        let torn = FaultInjector.check(stateDirectory: directory, into: check, digests: digests) { 5 }
        #expect(torn.divergence?.contains("differs") == true)
    }

    /// 110 faults on the backup's side: ten of each kind, in a seeded order.
    @Test(
        .enabled(
            if: FaultInjector.isAvailable && CommandRunner.executable != nil,
            "needs root, network namespaces, tc, nft and the fgbi executable"))
    func backupFaultsNeverLeaveATornOrUncommittedEpoch() throws {
        let rounds = ProcessInfo.processInfo.environment["FGBI_FAULT_ROUNDS"].flatMap(Int.init) ?? 10
        var order = SeededRandom(seed: 2026)
        let schedule = (0..<rounds).flatMap { _ in FaultKind.allCases }.shuffled(using: &order)
        let work = NSTemporaryDirectory() + "fgbi-faults-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: work) }
        var configuration = FaultInjector.Configuration(
            executable: try #require(CommandRunner.executable), schedule: schedule, workDirectory: work)
        configuration.regionMiB = 8
        configuration.pagesPerSecond = 20_000
        configuration.tracker = Kernel.preferredTracker
        let report = try FaultInjector(configuration).run()
        #expect(report.episodes.count >= schedule.count)
        for episode in report.episodes where episode.divergence != nil {
            Issue.record("\(episode.kind.rawValue): \(episode.divergence!)")
        }
        #expect(report.divergences == 0)
        for kind in FaultKind.allCases { #expect(report.counts[kind.rawValue] ?? 0 >= rounds, "\(kind.rawValue) ran") }
        let resynchronised = report.episodes.compactMap(\.resynchronised)
        #expect(!resynchronised.isEmpty && resynchronised.allSatisfy { $0 }, "after every restart replication moved on")
        #expect(report.reconnects >= schedule.count / 2)
        // The backups really died where they were told to: fault points end with SIGKILL (137), a full disk with an
        // error.
        #expect(
            report.episodes.filter { $0.kind == .diskFull }.allSatisfy {
                $0.backupStatus == 1 || $0.backupStatus == 137
            })
        #expect(
            report.episodes.filter { $0.kind == .diskFull }.contains { $0.backupStatus == 1 },
            "a full disk stopped the backup")
    }

    /// The primary process killed inside the epoch pause and before sending an epoch: the backup fails over
    /// holding exactly an epoch the primary captured.
    @Test(
        .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"),
        arguments: [FaultPoints.Point.primaryPause, .primarySend])
    func primaryKilledAtAFaultPointLeavesTheBackupAtACapturedEpoch(point: FaultPoints.Point) throws {
        let executable = try #require(CommandRunner.executable)
        var random = SystemRandomNumberGenerator()
        var checked = 0
        for round in 0..<5 {
            let length = 8 << 20
            let region = try GuestMemory.anonymous(length: length)
            var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            configuration.primaryTimeout = .milliseconds(300)
            let backup = try Backup(regions: [region], geometry: try BlockGeometry(), configuration: configuration)
            let serving = BackupThread(backup)
            let hit = Int.random(in: 3...30, using: &random)
            let child = Process()
            child.executableURL = executable
            child.arguments = [
                "primary", "--backup", "127.0.0.1:\(backup.port)", "--region-mib", "8", "--duration", "30",
                "--pages-per-second", "20000", "--print-epoch-digests", "--log-level", "error",
                "--tracker", Kernel.preferredTracker.rawValue,
            ]
            child.environment = ProcessInfo.processInfo.environment.merging([
                "FGBI_FAULT_POINT": "\(point.rawValue):\(hit)"
            ]) { $1 }
            let output = Pipe()
            child.standardOutput = output
            child.standardError = FileHandle.nullDevice
            try child.run()
            let printed = output.fileHandleForReading.readDataToEndOfFile()
            child.waitUntilExit()
            #expect(
                child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL,
                "round \(round): the primary died at \(point.rawValue):\(hit)")
            let outcome = try serving.result(within: .seconds(120))
            guard case .failedOver(let epoch, _) = outcome else {
                Issue.record("round \(round): expected a failover, got \(outcome)")
                continue
            }
            let digests = EpochDigests(regions: [region])
            for line in String(decoding: printed, as: UTF8.self).split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 4, fields[0] == "epoch", let e = UInt64(fields[1]),
                    let d = UInt64(fields[3], radix: 16)
                {
                    digests.record(epoch: e, digest: d)
                }
            }
            if let epoch {
                #expect(
                    digests.digest(epoch: epoch) == EpochDigests.digest(of: [region]),
                    "round \(round): the backup holds epoch \(epoch) exactly as the primary captured it")
                checked += 1
            }
        }
        #expect(checked >= 3, "most kills came after the first epoch (\(checked) of 5)")
    }
}
