import FGBI
import Foundation
import Testing

/// `fgbi bench backups` through the command: every layout ends with its backups equal to the guest, each epoch
/// encoded once, and a backup cut off returns by catch-up from the kept frames, or by resynchronisation when
/// they do not cover its outage.
@Suite(
    "fgbi bench backups",
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct BenchBackupsCommandTests {
    @Test(.requiring(.uffdAsync, because: "`fgbi bench backups` tracks with uffd-async by default"))
    func backupsBenchmarkVerifiesEveryLayout() throws {
        let outcome = try CommandRunner.run([
            "bench", "backups", "--layouts", "1:all,2:quorum:1,3:quorum:2:slow", "--region-mib", "8",
            "--epochs", "20", "--pages-per-epoch", "64", "--epoch-ms", "5", "--slow-mib-per-s", "2", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
        #expect(runs.count == 3)
        for run in runs {
            #expect(
                run["backups_verified"] as? Int == run["backups"] as? Int,
                "every backup ends equal to the guest: \(run)")
            #expect(
                (run["commit_ms_p50"] as? Double ?? 0) > 0 && (run["encoded_bytes_per_epoch"] as? Double ?? 0) > 0,
                "\(run)")
        }
        // Each epoch is encoded once and received by every backup.
        let two = runs[1]
        let encoded = try #require(two["encoded_bytes_per_epoch"] as? Double)
        let received = try #require(two["received_bytes_per_epoch"] as? Double)
        #expect(received > 1.5 * encoded && received < 2.5 * encoded, "\(two)")
    }

    @Test(.requiring(.uffdAsync, because: "`fgbi bench backups` tracks with uffd-async by default"))
    func aBackupCutOffReturnsByCatchUpOrByResynchronisation() throws {
        // Frames kept (256 MiB by default) cover a short outage: the backup catches up from them alone. Kept
        // frames of 1 MiB do not cover a longer one: every backup is resynchronised.
        for (extra, catchUp) in [
            (["--outage-ms", "100"], true), (["--outage-ms", "300", "--catch-up-mib", "1"], false),
        ] {
            let outcome = try CommandRunner.run(
                [
                    "bench", "backups", "--layouts", "3:quorum:2:outage", "--region-mib", "8", "--epochs", "80",
                    "--pages-per-epoch", "256", "--epoch-ms", "5", "--json",
                ] + extra)
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let runs = try #require(
                try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
            let run = try #require(runs.first)
            let outage = try #require(run["outage"] as? [String: Any], "\(run)")
            #expect(run["backups_verified"] as? Int == 3, "\(run)")
            #expect(outage["caught_up"] as? Bool == catchUp, "\(outage)")
            #expect((outage["epochs_missed"] as? Int ?? 0) > 0, "\(outage)")
            #expect((outage["returning_bytes"] as? Int ?? 0) > 0, "\(outage)")
            if !catchUp { #expect((outage["synchronisations"] as? Int ?? 0) >= 1, "\(outage)") }
        }
    }
}
