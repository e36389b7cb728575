import FGBI
import FGBIBench
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The high-availability cycle as an operator runs it with the `fgbi` command (Docs/OPERATIONS.md, "The whole
/// cycle"): a backup on a memory file takes over as the primary of its replica (`--then-primary`), and the
/// primary it replaced, killed with SIGKILL, rejoins on the memory file it left (`--rejoin`).
@Suite(
    "The whole cycle through the fgbi command", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct TakeoverCycleTests {
    /// A memory file that holds content is a former primary's memory only when the operator says so.
    @Test func aMemoryFileHoldingContentNeedsRejoin() throws {
        let file = "/dev/shm/fgbi-cycle-\(getpid())-held"
        defer { unlink(file) }
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: file))
        chmod(file, 0o600)
        let outcome = try CommandRunner.run([
            "backup", "--listen", "127.0.0.1:0", "--region-mib", "1", "--memory-file", file,
        ])
        #expect(outcome.status != 0)
        #expect(
            outcome.stderr.contains("holds content: pass --rejoin if it is a former primary's memory"),
            "\(outcome.stderr)")
    }

    @Test(.requiring(.uffdAsync, .memfd(name: ""), because: "the primaries track a shared memory file with uffd-async"))
    func aBackupTakesOverAsPrimaryAndTheKilledPrimaryRejoinsWithWhatDiffers() throws {
        let files = ["a", "b"].map { "/dev/shm/fgbi-cycle-\(getpid())-\($0)" }
        for file in files { unlink(file) }
        defer { for file in files { unlink(file) } }
        let ports = try FreePorts.take(host: "127.0.0.1", count: 2)
        let regionBytes = 16 << 20
        // B: the backup, which becomes the primary of its replica, replicating back to A's port.
        let b = try RunningCommand([
            "backup", "--listen", "127.0.0.1:\(ports[1])", "--region-mib", "16", "--memory-file", files[1],
            "--then-primary", "--", "--backup", "127.0.0.1:\(ports[0])", "--duration", "3",
            "--pages-per-second", "2000", "--reconnect-s", "60",
        ])
        defer { b.end() }
        try #require(b.waitFor("listening on") != nil, "\(b.stderr)")
        let a = try RunningCommand([
            "primary", "--backup", "127.0.0.1:\(ports[1])", "--region-mib", "16", "--memory-file", files[0],
            "--duration", "120", "--pages-per-second", "2000",
        ])
        defer { a.end() }
        _ = a.waitFor(seconds: 30) { line in (StopSignalTests.number(after: "committed ", in: String(line)) ?? 0) >= 3 }
        try #require(a.process.isRunning, "the primary ended before the kill: \(a.stderr)")
        kill(a.process.processIdentifier, SIGKILL)
        _ = a.finish(seconds: 10)

        // A comes back on the memory it left, as the backup of its successor.
        let rejoined = try RunningCommand([
            "backup", "--listen", "127.0.0.1:\(ports[0])", "--region-mib", "16", "--memory-file", files[0], "--rejoin",
        ])
        defer { rejoined.end() }
        let rejoinedStatus = rejoined.finish(seconds: 120)
        let bStatus = b.finish(seconds: 60)
        #expect(bStatus == 0, "B took over and stopped cleanly after --duration: \(b.stdout)\n\(b.stderr)")
        #expect(
            rejoinedStatus == 0, "A's backup ended when its primary finished: \(rejoined.stdout)\n\(rejoined.stderr)")
        let takenOver = StopSignalTests.number(after: "backup: failed over at epoch ", in: b.stdout)
        let lastCommitted = StopSignalTests.number(after: "last committed epoch ", in: b.stdout)
        #expect(takenOver != nil && lastCommitted != nil, "\(b.stdout)")
        #expect((lastCommitted ?? 0) > (takenOver ?? .max), "B's epochs number on from the replica's: \(b.stdout)")
        #expect(
            rejoined.stdout.contains("backup: primary finished; replica at epoch \(lastCommitted ?? .max)"),
            "\(rejoined.stdout)")
        // Only what differed: the first pass of the resynchronisation.
        #expect(b.stdout.contains("primary: resynchronised"), "\(b.stdout)")
        let firstPassMB = b.stdout.range(of: "MB of pre-copy, of it ").flatMap { range in
            Double(b.stdout[range.upperBound...].prefix { $0.isNumber || $0 == "." })
        }
        #expect(
            firstPassMB != nil && firstPassMB! * 1e6 < Double(regionBytes) / 10, "the rejoin's first pass: \(b.stdout)")
        let contents = files.map { FileManager.default.contents(atPath: $0) }
        #expect(contents[0] != nil && contents[0] == contents[1], "A's memory equals B's at B's last committed epoch")
    }
}
