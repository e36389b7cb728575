import FGBI
import Foundation
import Testing

/// `fgbi primary` and `fgbi backup` as a service manager stops them: SIGTERM (or an operator's SIGINT) ends
/// replication in order, through the real executable.
@Suite(
    "Stopping on SIGTERM and SIGINT", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct StopSignalTests {
    /// A backup and a primary replicating to it, once the backup has applied an epoch.
    static func replicating(reconnectSeconds: Int = 5) throws -> (backup: RunningCommand, primary: RunningCommand) {
        let backup = try RunningCommand(["backup", "--listen", "127.0.0.1:0", "--region-mib", "8"])
        let port = try #require(
            backup.waitFor("listening on")?.split(separator: ":").last.map(String.init), "\(backup.stderr)")
        let primary = try RunningCommand([
            "primary", "--backup", "127.0.0.1:\(port)", "--region-mib", "8", "--duration", "120",
            "--reconnect-s", "\(reconnectSeconds)", "--tracker", Kernel.preferredTracker.rawValue,
        ])
        // The primary's progress lines (one a second) name the last committed epoch: wait for one.
        _ = primary.waitFor(seconds: 30) { line in
            line.contains("committed ") && Self.number(after: "committed ", in: String(line)) != nil
        }
        return (backup, primary)
    }

    /// The number after `prefix` in `text`, if any.
    static func number(after prefix: String, in text: String) -> UInt64? {
        guard let range = text.range(of: prefix) else { return nil }
        return UInt64(text[range.upperBound...].prefix { $0.isNumber })
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func thePrimaryStopsAfterALastCommittedEpoch(signal: Int32) throws {
        let (backup, primary) = try Self.replicating()
        defer {
            primary.end()
            backup.end()
        }
        try #require(primary.process.isRunning, "the primary ended before the signal: \(primary.stderr)")
        kill(primary.process.processIdentifier, signal)
        let primaryStatus = primary.finish(seconds: 30)
        let backupStatus = backup.finish(seconds: 30)
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
        #expect(primaryStatus == 0, "the primary exits 0 after a clean stop: \(primary.stderr)")
        #expect(primary.stdout.contains("primary: stopped by \(name) after a last epoch"), "\(primary.stdout)")
        // The backup saw the primary say goodbye (no failover) and holds the primary's last committed epoch.
        #expect(backupStatus == 0, "\(backup.stderr)")
        let committed = Self.number(after: "last committed epoch ", in: primary.stdout)
        #expect(committed != nil, "\(primary.stdout)")
        #expect(
            backup.stdout.contains("backup: primary finished; replica at epoch \(committed ?? UInt64.max)"),
            "primary: \(primary.stdout)\nbackup: \(backup.stdout)")
        #expect(!backup.stderr.contains("failing over at epoch"), "\(backup.stderr)")
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func theBackupStopsWithoutFailingOver(signal: Int32) throws {
        let (backup, primary) = try Self.replicating(reconnectSeconds: 0)
        defer {
            primary.end()
            backup.end()
        }
        try #require(backup.process.isRunning, "the backup ended before the signal: \(backup.stderr)")
        kill(backup.process.processIdentifier, signal)
        let backupStatus = backup.finish(seconds: 30)
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
        #expect(backupStatus == 0, "the backup exits 0 after a clean stop: \(backup.stderr)")
        #expect(backup.stdout.contains("backup: stopped by \(name); replica at epoch "), "\(backup.stdout)")
        #expect(
            !backup.stdout.contains("failed over") && !backup.stderr.contains("failing over at epoch"),
            "\(backup.stdout)\n\(backup.stderr)")
        // The primary, told not to wait for the backup's return, reports the loss and stops.
        #expect(primary.finish(seconds: 30) != 0)
        #expect(primary.stderr.contains("lost the backup"), "\(primary.stderr)")
    }

    @Test func aBackupWaitingForItsPrimaryStopsAtOnce() throws {
        let backup = try RunningCommand(["backup", "--listen", "127.0.0.1:0", "--region-mib", "8"])
        defer { backup.end() }
        _ = try #require(backup.waitFor("listening on"), "\(backup.stderr)")
        kill(backup.process.processIdentifier, SIGTERM)
        #expect(backup.finish(seconds: 10) == 0, "\(backup.stderr)")
        #expect(backup.stdout.contains("backup: stopped by SIGTERM; replica at epoch none"), "\(backup.stdout)")
    }
}
