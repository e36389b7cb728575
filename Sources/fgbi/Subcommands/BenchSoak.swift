import ArgumentParser
import FGBI
import FGBIBench
import Foundation

extension FGBICommand {
    /// `fgbi bench soak`: replication under a heavy workload with random faults, checked after each.
    struct BenchSoak: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "soak",
            abstract:
                "Replicate under a heavy workload for --minutes with random faults; count divergences (must be 0).",
            discussion: """
                The primary runs here; the backup is an `fgbi backup` process with a state directory in a network
                namespace behind a veth link. Faults, drawn at random: kill -9 of the backup at a random moment
                or at a fault point (mid-apply, mid-journal-append, before fdatasync, before the ack), the backup
                stopped (backpressure), packet loss, duplication, a slow link and a partition (nftables and tbf: this
                kernel has no netem, so no reordering), and the state
                directory's disk full. After each the backup is killed and its state directory read as a
                restart would: its epoch must equal, byte for byte, the epoch the primary captured under that
                number, and the primary must never have reported a later epoch committed; then the backup
                starts again and replication must move on. Needs root, iproute2 (ip, tc), nftables and mount.
                Examples:
                  fgbi bench soak --minutes 10
                  fgbi bench soak --minutes 60 --region-mib 256 --pages-per-second 100000 --json
                """)

        @Option(help: "Minutes to run.")
        var minutes = 5.0

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 64

        @Option(name: .customLong("pages-per-second"), help: "Pages the workload writes per second.")
        var pagesPerSecond = 50_000

        @Option(name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds.")
        var epochMilliseconds = 25

        @Option(help: "Replication mode: fgbi, page, page-lz4, xbzrle.")
        var mode = "fgbi"

        @Option(
            help:
                """
                Comma-separated fault kinds to draw from (default: all): \
                \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")).
                """
        )
        var faults: String?

        @Option(help: "Seed for the fault order, moments and counts.")
        var seed: UInt64 = 1

        @Option(
            name: .customLong("work-dir"),
            help: "Where the state directory, key and backup log go (default: a new temporary directory).")
        var workDirectory: String?

        @Flag(help: "Print JSON: epochs, faults, divergences, max_rss_bytes, and per-kind counts.")
        var json = false

        func validate() throws {
            guard minutes > 0, minutes <= 24 * 60 else { throw ValidationError("--minutes must be between 0 and 1440") }
            guard (1...65_536).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 65536")
            }
            guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
            guard (1...10_000).contains(epochMilliseconds) else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
            _ = try kinds()
            do { _ = try ReplicationMode.parse(mode) } catch { throw ValidationError("--mode: \(error)") }
        }

        func kinds() throws -> [FaultKind] {
            guard let faults else { return FaultKind.allCases }
            return try CommaList.parse(faults, option: "--faults") {
                guard let kind = FaultKind(rawValue: $0) else {
                    throw ValidationError(
                        """
                        --faults: unknown kind '\($0)'; choose from \
                        \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))
                        """
                    )
                }
                return kind
            }
        }

        func run() throws {
            guard FaultInjector.isAvailable else {
                throw ExampleFailure(
                    "fgbi bench soak needs root, iproute2 network namespaces, tc and nft (Debian nftables)")
            }
            let work = workDirectory ?? NSTemporaryDirectory() + "fgbi-soak-\(getpid())"
            var order = SeededRandom(seed: seed)
            var configuration = FaultInjector.Configuration(
                executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                schedule: try kinds().shuffled(using: &order), workDirectory: work)
            configuration.regionMiB = regionMiB
            configuration.pagesPerSecond = pagesPerSecond
            configuration.epochMilliseconds = epochMilliseconds
            configuration.mode = try ReplicationMode.parse(mode)
            configuration.seed = seed
            configuration.repeatForSeconds = minutes * 60
            Progress.note(
                """
                soak: \(minutes) min, \(regionMiB) MiB at \(pagesPerSecond) pages/s, faults from \
                \(configuration.schedule.map(\.rawValue).joined(separator: ", ")); work directory \(work)
                """
            )
            let report = try FaultInjector(configuration).run(progress: Progress.note)
            let residents = report.episodes.map(\.residentBytes)
            let quarter = max(residents.count / 4, 1)
            let early = residents.prefix(quarter).max() ?? 0
            let late = residents.suffix(quarter).max() ?? 0
            if json {
                print(
                    try JSONOutput.encode(
                        SoakJSON(
                            epochs: report.epochsCommitted, faults: report.episodes.count,
                            divergences: report.divergences,
                            maxRssBytes: report.maximumResidentBytes, earlyRssBytes: early, lateRssBytes: late,
                            reconnects: report.reconnects, seconds: report.seconds, counts: report.counts,
                            failures: report.episodes.compactMap(\.divergence))))
            } else {
                var table = TextTable(["fault", "count"])
                for (kind, count) in report.counts.sorted(by: { $0.key < $1.key }) { table.add([kind, String(count)]) }
                print(table.rendered)
                print(
                    """
                    epochs committed \(report.epochsCommitted), faults \(report.episodes.count), divergences \
                    \(report.divergences),\u{20}
                    """
                        + """
                        reconnects \(report.reconnects), max RSS \
                        \(formatted(Double(report.maximumResidentBytes) / 1e6, 1)) MB\u{20}
                        """
                            + """
                            (first quarter \(formatted(Double(early) / 1e6, 1)) MB, last quarter \
                            \(formatted(Double(late) / 1e6, 1)) MB),\u{20}
                            """
                        + "\(formatted(report.seconds, 0)) s")
                for failure in report.episodes.compactMap(\.divergence) { print("DIVERGENCE: \(failure)") }
            }
            if report.divergences > 0 { throw ExitCode(1) }
        }
    }

    private struct SoakJSON: Encodable {
        var epochs: UInt64
        var faults: Int
        var divergences: Int
        var maxRssBytes: Int
        var earlyRssBytes: Int
        var lateRssBytes: Int
        var reconnects: Int
        var seconds: Double
        var counts: [String: Int]
        var failures: [String]
    }
}
