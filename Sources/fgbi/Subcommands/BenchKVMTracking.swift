import ArgumentParser
import FGBI
import FGBIBench
import FGBIExamples
import Foundation

extension FGBICommand {
    /// `fgbi bench kvm-tracking`: uffd-async vs KVM's dirty log vs its dirty ring, on the same KVM guest.
    struct BenchKVMTracking: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kvm-tracking",
            abstract:
                """
                The example KVM guest under no tracking, uffd-async (without and with hot pages), KVM's dirty log \
                and its dirty ring, side by side.
                """,
            discussion: """
                Runs the key-value guest (Examples/kvm-guest) once per method in one process, pausing the vCPU every
                --interval-ms and collecting the pages written since the last collection, as replication does (the
                untracked run is paused too). Reports run time, slowdown, pages per collection, the first-write cost
                per page ((run time - untracked run time) / pages found written by a scan) and the collection time.
                uffd-async-hot also reports hot pages unscanned at every collection (unscanned/collection). Every \
                method must
                end with the same checksum. Build with -c release for meaningful numbers.
                Examples:
                  fgbi bench kvm-tracking
                  fgbi bench kvm-tracking --operations 50000000 --ram-mib 256 --json
                """)

        @Option(help: "The guest's PRNG seed.")
        var seed: UInt64 = 1

        @Option(
            help:
                """
                Key-value operations per run (tracked runs take minutes per million here: every first write to a \
                page in an interval is a fault).
                """
        )
        var operations: UInt64 = 1_000_000

        @Option(name: .customLong("ram-mib"), help: "Guest RAM in MiB (4 to 1024).")
        var ramMiB = 64

        @Option(name: .customLong("interval-ms"), help: "Milliseconds between collections.")
        var intervalMilliseconds = 25

        @Option(
            help:
                """
                Comma-separated methods: none, uffd-async, uffd-async-hot (with replication's hot pages), \
                dirty-log, dirty-ring.
                """
        )
        var methods = "none,uffd-async,uffd-async-hot,dirty-log,dirty-ring"

        @Option(help: "Dirty ring entries (a power of two).")
        var ringEntries = 65536

        @Option(help: "The guest image (default: .build/kvm-guest/guest.bin beside this executable).")
        var guest: String?

        @Flag(help: "Print JSON: one object per method.")
        var json = false

        func validate() throws {
            guard ramMiB >= 4, ramMiB <= 1024 else { throw ValidationError("--ram-mib must be between 4 and 1024") }
            guard operations > 0 else { throw ValidationError("--operations must be at least 1") }
            guard intervalMilliseconds >= 1 else { throw ValidationError("--interval-ms must be at least 1") }
            guard ringEntries >= 16, ringEntries & (ringEntries - 1) == 0 else {
                throw ValidationError("--ring-entries must be a power of two, at least 16")
            }
            _ = try parsedMethods()
        }

        func parsedMethods() throws -> [KVMTrackingMethod] {
            try CommaList.parse(methods, option: "--methods") { name in
                guard let method = KVMTrackingMethod(rawValue: name) else {
                    throw ValidationError(
                        """
                        --methods: unknown method '\(name)' \
                        (\(KVMTrackingMethod.allCases.map(\.rawValue).joined(separator: ", ")))
                        """
                    )
                }
                return method
            }
        }

        func run() throws {
            guard let path = guest ?? KVMGuestImage.defaultPath() else {
                throw ValidationError("no guest image: run Scripts/build-kvm-guest, or give --guest PATH")
            }
            var benchmark = KVMTrackingBenchmark(
                image: try KVMGuestImage(path: path),
                parameters: KVMGuestParameters(seed: seed, operations: operations, ramBytes: ramMiB << 20),
                ramBytes: ramMiB << 20)
            benchmark.interval = .milliseconds(intervalMilliseconds)
            benchmark.ringEntries = ringEntries
            let results = try benchmark.run(try parsedMethods()) { Progress.note($0) }
            if json {
                print(try JSONOutput.encode(results))
            } else {
                var table = TextTable([
                    "method", "run s", "slowdown", "collections", "pages/collection", "unscanned/collection",
                    "first write us/page", "collect us p50", "p99", "ring full", "checksum",
                ])
                for r in results {
                    table.add([
                        r.method.rawValue, formatted(r.runSeconds, 2), formatted(r.slowdown, 1) + "x",
                        "\(r.collections)",
                        formatted(r.pagesPerCollection, 0),
                        formatted(Double(r.pagesReportedUnscanned) / Double(max(r.collections + 1, 1)), 0),
                        formatted(r.firstWriteMicrosecondsPerPage, 1), formatted(r.collectMicrosecondsP50, 0),
                        formatted(r.collectMicrosecondsP99, 0), "\(r.ringFullExits)", r.checksum,
                    ])
                }
                print(table.rendered)
            }
            if Set(results.map(\.checksum)).count > 1 { throw ExitCode(1) }
        }
    }
}
