import FGBI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A real `fgbi primary` process killed with SIGKILL mid-replication: the in-process backup notices within
/// its timeout, freezes at the last applied epoch and writes that epoch's image and journal.
@Suite(
    "Failover", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct FailoverTests {
    @Test(arguments: 0..<3)
    func killedPrimaryIsDetectedAndTheImageIsWritten(round: Int) throws {
        let length = 16 << 20
        let memory = try GuestMemory.anonymous(length: length)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fgbi-failover-\(getpid())-\(round)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let image = directory.appendingPathComponent("replica.img").path
        var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
        configuration.imagePath = image
        configuration.primaryTimeout = .milliseconds(100)
        let backup = try Backup(regions: [memory], geometry: try BlockGeometry(), configuration: configuration)
        let served = LoopbackReplicationTests.Served(backup)

        let primary = try CommandRunner.startPrimary(backupPort: backup.port)
        // Let a few epochs through, then kill at a point that varies from round to round.
        let deadline = Date().addingTimeInterval(60)
        while (backup.lastEpoch ?? 0) < UInt64(5 + round * 7), Date() < deadline { usleep(2000) }
        #expect(backup.lastEpoch != nil, "replication started")
        kill(primary.processIdentifier, SIGKILL)
        let killed = Date()
        let outcome = try served.outcome()
        let detection = Date().timeIntervalSince(killed)
        primary.waitUntilExit()

        guard case .failedOver(let epoch, _) = outcome else {
            Issue.record("expected a failover, got \(outcome)")
            return
        }
        #expect(epoch == backup.lastEpoch)
        #expect(detection < 1.0, "failover took \(detection) s with a 100 ms timeout (image writing included)")
        let written = try Data(contentsOf: URL(fileURLWithPath: image))
        #expect(written.count == length)
        let same =
            written.count == length && written.withUnsafeBytes { memcmp($0.baseAddress!, memory.base, length) == 0 }
        #expect(same, "the image holds the replica as it was at failover")
        let journal = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: image + ".json")))
                as? [String: Any])
        #expect(journal["epoch"] as? Int == epoch.map(Int.init))
        #expect(journal["region_lengths"] as? [Int] == [length])
    }
}
