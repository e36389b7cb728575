import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi bench backups`: one primary, 1 to 3 backups, each commit policy, a backup slowed or not.
    struct BenchBackups: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backups",
            abstract: "Replicate to several backups under each commit policy: commit latency, primary CPU and bytes.",
            discussion: """
                One primary replicates a guest to N backups in this process over loopback; with `slow` the last
                backup sits behind a relay that passes --slow-mib-per-s from the primary. The guest writes one
                epoch's worth (--pages-per-epoch) and then waits for the commit of its writes, as an
                output-commit client does: that wait is the commit latency. Reports commit latency p50/p99, the
                primary's CPU per epoch (the backups' and the relay's threads left out), the bytes encoded per
                epoch (once, whatever N) and received by all backups together, backups lost and caught up, and
                how many backups ended bit-identical to the guest. Use a release build.
                Layouts: N:all or N:quorum:K, with :slow for a slowed last backup.
                Examples:
                  fgbi bench backups
                  fgbi bench backups --layouts 1:all,3:quorum:2:slow --epochs 400 --json
                """)

        @Option(help: "Comma-separated layouts (N:all, N:quorum:K, :slow to slow the last backup).")
        var layouts = BackupsBenchmark.Layout.defaultSpecifications.joined(separator: ",")

        @Option(help: "Replication mode: fgbi, page, page-lz4, xbzrle.")
        var mode = "fgbi"

        @Option(help: "Workload: \(SyntheticWorkload.allCases.map(\.rawValue).joined(separator: ", ")).")
        var workload = "guest"

        @Option(name: .customLong("region-mib"), help: "The guest's region, MiB.")
        var regionMiB = 64

        @Option(name: .customLong("pages-per-epoch"), help: "Pages (writes, for guest and zipf) per round.")
        var pagesPerEpoch = 1024

        @Option(help: "Rounds of writes, each waiting for its commit.")
        var epochs = 200

        @Option(name: .customLong("epoch-ms"), help: "The primary's epoch interval, milliseconds.")
        var epochMilliseconds = 25

        @Option(name: .customLong("slow-mib-per-s"), help: "The slowed backup's link from the primary, MiB/s.")
        var slowMiBPerSecond = 4.0

        @Option(name: .customLong("outage-ms"), help: "How long an :outage layout's last backup is cut off.")
        var outageMilliseconds = 1000

        @Option(
            name: .customLong("catch-up-mib"),
            help: "Frames kept for a backup behind, MiB (default 256): below what an outage misses, it resynchronises.")
        var catchUpMiB: Int?

        @Option(help: "Tracker: uffd-async, uffd-sync, scan.")
        var tracker = "uffd-async"

        @Flag(help: "Print JSON: one object per layout.")
        var json = false

        func parsedLayouts() throws -> [BackupsBenchmark.Layout] {
            try CommaList.parse(layouts, option: "--layouts") { text in
                guard let layout = BackupsBenchmark.Layout(text) else {
                    throw ValidationError(
                        """
                        --layouts: '\(text)' is not N:all or N:quorum:K (K at most N), optionally with :slow or \
                        :outage (N at least 2)
                        """
                    )
                }
                return layout
            }
        }

        func validate() throws {
            _ = try parsedLayouts()
            guard (1...4096).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 4096")
            }
            guard (1...100_000).contains(epochs) else { throw ValidationError("--epochs must be between 1 and 100000") }
            guard pagesPerEpoch > 0 else { throw ValidationError("--pages-per-epoch must be at least 1") }
            guard (1...10_000).contains(epochMilliseconds) else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
            guard (10...600_000).contains(outageMilliseconds) else {
                throw ValidationError("--outage-ms must be between 10 and 600000")
            }
            if let catchUpMiB, !(1...65_536).contains(catchUpMiB) {
                throw ValidationError("--catch-up-mib must be between 1 and 65536")
            }
            guard slowMiBPerSecond >= 0.01, slowMiBPerSecond <= 100_000 else {
                throw ValidationError("--slow-mib-per-s must be between 0.01 and 100000")
            }
            do { _ = try SyntheticWorkload.parse(workload) } catch { throw ValidationError("--workload: \(error)") }
            do { _ = try ReplicationMode.parse(mode) } catch { throw ValidationError("--mode: \(error)") }
            do { _ = try TrackerKind.parse(tracker) } catch { throw ValidationError("--tracker: \(error)") }
        }

        func run() throws {
            var configuration = BackupsBenchmark.Configuration()
            configuration.layouts = try parsedLayouts()
            configuration.mode = try ReplicationMode.parse(mode)
            configuration.workload = try SyntheticWorkload.parse(workload)
            configuration.tracker = try TrackerKind.parse(tracker)
            configuration.regionMiB = regionMiB
            configuration.pagesPerEpoch = pagesPerEpoch
            configuration.epochs = epochs
            configuration.epochMilliseconds = epochMilliseconds
            configuration.slowBytesPerSecond = Int(slowMiBPerSecond * Double(1 << 20))
            configuration.outageMilliseconds = outageMilliseconds
            configuration.catchUpBytes = catchUpMiB.map { $0 << 20 }
            let runs = try BackupsBenchmark(configuration).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(runs))
                return
            }
            var table = TextTable([
                "backups", "commit", "slowed", "commit p50 ms", "p99", "epochs/round", "primary CPU ms/epoch",
                "encoded KB/epoch", "received KB/epoch", "lost", "caught up", "verified",
            ])
            for r in runs {
                table.add([
                    String(r.backups), r.policy, r.slowed ? "yes" : "no", formatted(r.commitMsP50, 1),
                    formatted(r.commitMsP99, 1),
                    formatted(r.epochsPerRound, 2), formatted(r.primaryCpuMsPerEpoch, 2),
                    formatted(r.encodedBytesPerEpoch / 1e3, 1), formatted(r.receivedBytesPerEpoch / 1e3, 1),
                    String(r.backupsLost), String(r.catchUps), "\(r.backupsVerified)/\(r.backups)",
                ])
            }
            print(
                """
                \(mode), \(workload) workload, \(regionMiB) MiB, \(pagesPerEpoch) pages per round, \(epochs) \
                rounds, \(epochMilliseconds) ms epochs,\u{20}
                """
                    + "slowed link \(formatted(slowMiBPerSecond, 1)) MiB/s")
            print(table.rendered)
            printOutages(runs)
        }

        /// The outage layouts' returns, in a table of their own.
        private func printOutages(_ runs: [BackupsBenchmark.Run]) {
            let outages = runs.compactMap { run in run.outage.map { (run, $0) } }
            guard !outages.isEmpty else { return }
            var table = TextTable([
                "backups", "commit", "outage ms", "epochs missed", "returned by", "return ms", "returning MB",
                "missed encoded MB", "others MB", "verified",
            ])
            for (run, outage) in outages {
                table.add([
                    String(run.backups), run.policy, formatted(outage.milliseconds, 0), String(outage.epochsMissed),
                    outage.caughtUp ? "catch-up" : "resync (\(outage.synchronisations))",
                    formatted(outage.returnMilliseconds, 0), formatted(Double(outage.returningBytes) / 1e6, 2),
                    formatted(Double(outage.missedEncodedBytes) / 1e6, 2),
                    formatted(Double(outage.othersBytes) / 1e6, 2),
                    "\(run.backupsVerified)/\(run.backups)",
                ])
            }
            print("\nThe last backup cut off for \(outageMilliseconds) ms at a quarter of the rounds:")
            print(table.rendered)
        }
    }
}
