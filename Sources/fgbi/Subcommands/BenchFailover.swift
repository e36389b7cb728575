import ArgumentParser
import FGBI
import FGBIBench
import Foundation

extension FGBICommand {
    /// `fgbi bench failover`: coordinated failover through a real etcd, under partitions and kills.
    struct BenchFailover: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "failover",
            abstract:
                """
                Partition schedules and primary kills against real processes and a real etcd; failover times per \
                lease TTL.
                """,
            discussion: """
                Three network namespaces on a bridge: an `fgbi primary`, an `fgbi backup` and an etcd member.
                Each schedule cuts links (primary-backup, primary-etcd, backup-etcd), restarts etcd or kills the
                primary, heals, and checks that the old primary confirmed no epoch after the backup was promoted,
                that the promoted image is exactly an epoch at least as new as every confirmed one, that a
                primary cut from etcd halted within one lease TTL, and that someone serves again. Failover time:
                from the primary's kill (or the cut that cost it etcd) to the backup's promotion. Needs root,
                iproute2, nftables and etcd (Debian etcd-server).
                Examples:
                  fgbi bench failover --ttl 1,3 --rounds 10 --faults kill-primary
                  fgbi bench failover --ttl 1 --rounds 30 --json
                """)

        @Option(help: "Comma-separated lease TTLs in seconds, one run each.")
        var ttl = "1,3"

        @Option(help: "Schedules per TTL.")
        var rounds = 10

        @Option(
            help:
                """
                Comma-separated faults (default: all): \
                \(PartitionDrill.Fault.allCases.map(\.rawValue).joined(separator: ", ")).
                """
        )
        var faults: String?

        @Flag(
            name: .customLong("single-faults"),
            help: "One fault per schedule (default: every other schedule overlaps a second).")
        var singleFaults = false

        @Option(help: "Seed for the schedules.")
        var seed: UInt64 = 1

        @Option(
            help:
                """
                Backups of the primary: 1, or 2 (--commit quorum:1; promotion needs both as candidates, the \
                newest wins).
                """
        )
        var backups = 1

        @Option(name: .customLong("work-dir"), help: "Where logs and images go (default: a new temporary directory).")
        var workDirectory: String?

        @Flag(help: "Print JSON: per TTL, every schedule's outcome.")
        var json = false

        func validate() throws {
            guard (1...1000).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 1000") }
            guard (1...2).contains(backups) else { throw ValidationError("--backups must be 1 or 2") }
            _ = try ttls()
            _ = try kinds()
        }

        func ttls() throws -> [Int] {
            try CommaList.parse(ttl, option: "--ttl") {
                guard let value = Int($0), (1...60).contains(value) else {
                    throw ValidationError("--ttl: '\($0)' is not a number of seconds from 1 to 60")
                }
                return value
            }
        }

        func kinds() throws -> [PartitionDrill.Fault] {
            guard let faults else { return PartitionDrill.Fault.allCases }
            return try CommaList.parse(faults, option: "--faults") {
                guard let kind = PartitionDrill.Fault(rawValue: $0) else {
                    throw ValidationError(
                        """
                        --faults: unknown fault '\($0)'; choose from \
                        \(PartitionDrill.Fault.allCases.map(\.rawValue).joined(separator: ", "))
                        """
                    )
                }
                return kind
            }
        }

        func run() throws {
            guard PartitionDrill.isAvailable else {
                throw ExampleFailure(
                    """
                    fgbi bench failover needs root, iproute2 network namespaces, nft (Debian nftables) and etcd \
                    (Debian etcd-server)
                    """
                )
            }
            let work = workDirectory ?? NSTemporaryDirectory() + "fgbi-failover-\(getpid())"
            var reports: [PartitionDrill.Report] = []
            for ttl in try ttls() {
                var configuration = PartitionDrill.Configuration(
                    executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
                    workDirectory: work + "/ttl-\(ttl)")
                configuration.leaseTTLSeconds = ttl
                configuration.schedules = rounds
                configuration.seed = seed
                configuration.faults = try kinds()
                configuration.singleFaults = singleFaults
                configuration.backups = backups
                Progress.note(
                    """
                    failover: lease TTL \(ttl) s, \(rounds) schedules of \
                    \(configuration.faults.map(\.rawValue).joined(separator: ", ")); work directory \
                    \(configuration.workDirectory)
                    """
                )
                reports.append(try PartitionDrill(configuration).run(progress: Progress.note))
            }
            if json {
                print(try JSONOutput.encode(reports))
            } else {
                var table = TextTable([
                    "ttl s", "schedules", "promotions", "failover p50 s", "failover max s", "halt max s", "violations",
                ])
                for report in reports {
                    let failovers = report.outcomes.compactMap(\.failoverSeconds).sorted()
                    let halts = report.outcomes.compactMap(\.haltSeconds)
                    table.add([
                        String(report.leaseTTLSeconds), String(report.outcomes.count), String(report.promotions),
                        failovers.isEmpty ? "-" : formatted(failovers[failovers.count / 2]),
                        failovers.last.map { formatted($0) } ?? "-",
                        halts.max().map { formatted($0) } ?? "-", String(report.violations),
                    ])
                }
                print(table.rendered)
                for report in reports {
                    for outcome in report.outcomes where !outcome.violations.isEmpty {
                        print(
                            """
                            VIOLATION (ttl \(report.leaseTTLSeconds) s, schedule \(outcome.schedule)): \
                            \(outcome.violations.joined(separator: "; "))
                            """
                        )
                    }
                }
            }
            if reports.contains(where: { $0.violations > 0 }) { throw ExitCode(1) }
        }
    }
}
