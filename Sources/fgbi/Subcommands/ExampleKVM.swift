import ArgumentParser
import FGBI
import FGBIExamples
import Foundation

extension FGBICommand {
    /// `fgbi example kvm`: a KVM guest replicated, its primary killed, resumed on the backup.
    struct ExampleKVM: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kvm",
            abstract:
                "Run a KVM guest replicated, kill its primary mid-run, resume it on the backup, compare checksums.",
            discussion: """
                The guest (Examples/kvm-guest, built by Scripts/build-kvm-guest) is a freestanding 64-bit program: an
                open-addressing key-value table under random inserts and updates plus an append-only log, ending
                with a checksum of its memory. It runs once unreplicated for the reference checksum; then as a child
                `fgbi` process whose guest RAM and vCPU registers are replicated every --epoch-ms to a backup in this
                process; the child is killed with SIGKILL --kill-after-ms after its guest started (the guest starts once
                the backup holds the first epoch) or after --kill-after-operations; the backup builds a
                new VM from its replica, resumes the vCPU and runs the guest to its end. Exits 1 when the checksums
                differ.
                Examples:
                  fgbi example kvm
                  fgbi example kvm --operations 50000000 --ram-mib 256 --kill-after-ms 2000 --json
                """)

        @Option(help: "The guest's PRNG seed.")
        var seed: UInt64 = 1

        @Option(help: "Key-value operations the guest runs.")
        var operations: UInt64 = 20_000_000

        @Option(name: .customLong("ram-mib"), help: "Guest RAM in MiB (4 to 1024).")
        var ramMiB = 64

        @Option(name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds.")
        var epochMilliseconds = 25

        @Option(name: .customLong("kill-after-ms"), help: "Kill the primary this long after the guest started.")
        var killAfterMilliseconds = 1000

        @Option(
            name: .customLong("kill-after-operations"),
            help: "Kill the primary once the guest has done this many operations (instead of --kill-after-ms).")
        var killAfterOperations: UInt64?

        @Option(
            name: .customLong("progress-every"), help: "Guest operations between progress reports (each is a VM exit).")
        var progressEvery: UInt64 = 1_000_000

        @Option(help: "The guest image (default: .build/kvm-guest/guest.bin beside this executable).")
        var guest: String?

        @Flag(help: "Run the primary in this process (stopped without a final epoch) instead of a killed child.")
        var inProcess = false

        @Flag(help: "Print the report as JSON.")
        var json = false

        @Option(help: .hidden)
        var role: String?

        @Option(help: .hidden)
        var backup: String?

        func validate() throws {
            guard ramMiB >= 4, ramMiB <= 1024 else { throw ValidationError("--ram-mib must be between 4 and 1024") }
            guard operations > 0 else { throw ValidationError("--operations must be at least 1") }
            guard epochMilliseconds >= 1, epochMilliseconds <= 10_000 else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
            guard killAfterMilliseconds >= 0 else { throw ValidationError("--kill-after-ms must not be negative") }
            if let role, role != "primary" { throw ValidationError("--role: only 'primary' (used internally)") }
            if role != nil, backup == nil { throw ValidationError("--role primary needs --backup HOST:PORT") }
        }

        func options() throws -> KVMExample.Options {
            guard let path = guest ?? KVMGuestImage.defaultPath() else {
                throw ValidationError("no guest image: run Scripts/build-kvm-guest, or give --guest PATH")
            }
            var options = KVMExample.Options(imagePath: path)
            options.seed = seed
            options.operations = operations
            options.ramMiB = ramMiB
            options.epochInterval = .milliseconds(epochMilliseconds)
            options.killAfterMilliseconds = killAfterMilliseconds
            options.killAfterOperations = killAfterOperations
            options.progressEvery = progressEvery
            return options
        }

        func run() throws {
            let options = try options()
            if role == "primary", let backup {
                let outcome = try KVMExample.runPrimary(options, backup: try Endpoint(parsing: backup)) { done in
                    Progress.note("kvm primary: \(done) operations")
                }
                Progress.note("kvm primary: \(outcome)")
                return
            }
            let launch: KVMExample.PrimaryLaunch =
                inProcess
                ? .inProcess
                : .childProcess(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath())
            let report = try KVMExample.run(options, launch: launch) { Progress.note($0) }
            if json {
                print(try JSONOutput.encode(report))
            } else {
                let primary =
                    report.killedMidRun
                    ? "killed at \(report.killPoint) (the guest starts once the backup holds an epoch)"
                    : "finished before the kill"
                let result =
                    report.checksumsMatch ? "MATCH: the resumed guest finished with the reference checksum" : "MISMATCH"
                print(
                    """
                    guest          \(report.operations) operations, seed \(report.seed), \(report.ramMebibytes) MiB RAM
                    reference      checksum \(report.referenceChecksum)  \
                    (\(String(format: "%.2f", report.referenceSeconds)) s, unreplicated)
                    replicated     \(report.epochsReplicated) epochs of \(report.epochMilliseconds) ms, \
                    \(report.bytesReceived) bytes received by the backup
                    primary        \(report.primary), \(primary)
                    backup         \(report.backupOutcome); resumed at operation \(report.operationsAtFailover)
                    resumed        checksum \(report.resumedChecksum)  \
                    (\(String(format: "%.2f", report.resumeSeconds)) s on the backup)
                    result         \(result)
                    """)
            }
            if !report.checksumsMatch { throw ExitCode(1) }
        }
    }
}
