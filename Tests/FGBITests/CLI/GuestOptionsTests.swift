import FGBI
import FGBIBench
import Foundation
import Testing

/// `fgbi primary --guest`: the guest specification's grammar, the command's refusals, and a run of two
/// guests against backups in this process.
@Suite("fgbi primary --guest")
struct GuestOptionsTests {
    @Test func aSpecificationParsesInAnyOrder() throws {
        let guest = try GuestSpecification.parse(
            "backup=10.0.0.2:7070,region-mib=128,name=web_1-a,key-file=/etc/fgbi/web.key")
        #expect(
            guest
                == GuestSpecification(
                    name: "web_1-a", backup: Endpoint(host: "10.0.0.2", port: 7070), regionMiB: 128,
                    keyFile: "/etc/fgbi/web.key"))
        let minimal = try GuestSpecification.parse("name=g,backup=[::1]:9")
        #expect(minimal.backup == Endpoint(host: "::1", port: 9) && minimal.regionMiB == nil && minimal.keyFile == nil)
    }

    @Test(arguments: [
        ("backup=127.0.0.1:1", "has no name="),
        ("name=g", "has no backup=HOST:PORT"),
        ("name=g,backup=nohost", "'nohost' is not HOST:PORT"),
        ("name=a/b,backup=127.0.0.1:1", "guest name 'a/b' must be 1 to 64 characters"),
        ("name=g h,backup=127.0.0.1:1", "must be 1 to 64 characters"),
        ("name=\(String(repeating: "x", count: 65)),backup=127.0.0.1:1", "must be 1 to 64 characters"),
        ("name=,backup=127.0.0.1:1", "'name' is empty"),
        ("name=g,name=h,backup=127.0.0.1:1", "'name' given twice"),
        ("name=g,backup=127.0.0.1:1,port=3", "unknown key 'port'"),
        ("name=g,backup=127.0.0.1:1,region-mib=0", "region-mib must be between 1 and 1048576"),
        ("name=g,backup=127.0.0.1:1,,", "is not KEY=VALUE"),
    ])
    func aBadSpecificationIsRefused(text: String, message: String) {
        #expect {
            _ = try GuestSpecification.parse(text)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func namesAndBackupsMustBeDistinct() {
        #expect(throws: FGBIError.invalidArgument("guest name 'a' is given twice")) {
            _ = try GuestSpecification.parseAll(["name=a,backup=127.0.0.1:1", "name=a,backup=127.0.0.1:2"])
        }
        #expect(
            throws: FGBIError.invalidArgument(
                "guests 'a' and 'b' name the same backup 127.0.0.1:1: each guest needs its own")
        ) {
            _ = try GuestSpecification.parseAll(["name=a,backup=127.0.0.1:1", "name=b,backup=127.0.0.1:1"])
        }
        #expect(GuestSpecification.isValidName(String(repeating: "Z", count: 64)))
        #expect(!GuestSpecification.isValidName("é"))
    }

    @Test(
        .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"),
        arguments: [
            (["primary"], "give --backup HOST:PORT, or --guest"),
            (
                ["primary", "--backup", "127.0.0.1:1", "--guest", "name=a,backup=127.0.0.1:2"],
                "--backup and --guest cannot be mixed"
            ),
            (
                ["primary", "--guest", "name=a,backup=127.0.0.1:1", "--guest", "name=a,backup=127.0.0.1:2"],
                "guest name 'a' is given twice"
            ),
            (
                ["primary", "--guest", "name=a,backup=127.0.0.1:1", "--guest", "name=b,backup=127.0.0.1:1"],
                "name the same backup"
            ),
            (["primary", "--guest", "name=../etc,backup=127.0.0.1:1"], "guest name '../etc' must be"),
            (["primary", "--backup", "127.0.0.1:1", "--no-shared-index"], "--no-shared-index applies to --guest only"),
            (
                ["primary", "--guest", "name=a,backup=127.0.0.1:1", "--print-epoch-digests"],
                "--print-epoch-digests replicates one guest only"
            ),
            (
                ["primary", "--guest", "name=a,backup=127.0.0.1:1,key-file=/nonexistent/k"],
                "guest 'a': open(/nonexistent/k): ENOENT"
            ),
            (["bench", "guests", "--variants", "shared,pooled"], "unknown variant 'pooled'"),
            (["bench", "guests", "--guests", "1"], "--guests must be between 2 and 32"),
        ])
    func theCommandRefusesBadGuests(arguments: [String], message: String) throws {
        let outcome = try CommandRunner.run(arguments)
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains(message), "stderr was: \(outcome.stderr)")
    }

    @Test(
        .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"),
        .requiring(.uffdAsync, because: "`fgbi bench guests` tracks with uffd-async (it has no --tracker)"))
    func theGuestsBenchmarkVerifiesEveryVariant() throws {
        let outcome = try CommandRunner.run([
            "bench", "guests", "--region-mib", "4", "--budget-mib", "4", "--epochs", "3",
            "--pages-per-epoch", "64", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let runs = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [[String: Any]])
        #expect(runs.map { $0["variant"] as? String } == ["shared", "separate", "separate-split"])
        #expect(runs.allSatisfy { $0["verified"] as? Bool == true }, "\(runs)")
        let copies = runs.map { $0["stored_copies"] as? Int ?? 0 }
        #expect(copies[0] > 0 && copies[0] * 2 < copies[1], "one image stored once, not three times: \(copies)")
    }

    @Test(.enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
    func twoGuestsReplicateAndAThirdThatCannotIsNamed() throws {
        let threads = try ["one", "two"].map { name -> (Backup, BackupThread) in
            var configuration = BackupConfiguration(listen: Endpoint(host: "127.0.0.1", port: 0))
            configuration.primaryTimeout = .seconds(10)
            configuration.guestName = name // the handshake names the guest
            let backup = try Backup(
                regions: [try GuestMemory.anonymous(length: 4 << 20)], geometry: try BlockGeometry(),
                configuration: configuration)
            return (backup, BackupThread(backup))
        }
        let outcome = try CommandRunner.run([
            "primary", "--region-mib", "4", "--duration", "1", "--pages-per-second", "2000", "--threads", "1",
            "--guest", "name=one,backup=127.0.0.1:\(threads[0].0.port)",
            "--guest", "name=two,backup=127.0.0.1:\(threads[1].0.port)",
            "--guest", "name=three,backup=127.0.0.1:1", "--reconnect-s", "0",
            "--tracker", Kernel.preferredTracker.rawValue,
        ])
        #expect(outcome.status != 0, "a guest failed")
        #expect(outcome.stderr.contains("guest three failed"), "stderr was: \(outcome.stderr)")
        for name in ["one", "two"] {
            #expect(
                outcome.stdout.contains("primary: guest \(name) (backup 127.0.0.1:"), "stdout was: \(outcome.stdout)")
        }
        #expect(outcome.stdout.contains("primary: shared content index: "))
        for (backup, thread) in threads {
            guard case .primaryFinished(let epoch)? = try? thread.result(within: .seconds(120)) else {
                Issue.record("a backup did not see its primary finish")
                backup.stop()
                continue
            }
            #expect(epoch != nil)
        }
    }
}
