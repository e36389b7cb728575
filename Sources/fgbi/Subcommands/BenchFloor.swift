import ArgumentParser
import FGBIBench
import Foundation

extension FGBICommand {
    /// `fgbi bench floor`: the machine's floor for FGBI's hot steps, and a cross-check against an outside floor.c.
    struct BenchFloor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "floor",
            abstract:
                "The machine's floor for FGBI's hot steps (hash, copy, compress, collect written pages), in plain C.",
            discussion: """
                Runs this repository's floor probe (the CFloor target): XXH3 on every 64-byte block, memcpy,
                copying and rehashing scattered written pages, LZ4, and with async userfaultfd write-protection
                the first write to a protected page and PAGEMAP_SCAN's collect-and-re-protect. The engine,
                tracker and pause benchmarks run the same probe first and report their figures as ratios to it.
                With --cross-check, an outside floor.c printing the same metrics (as ../shared/baselines/floor.c
                does) is built and run too, and each figure is shown beside it. Use a release build.
                Examples:
                  fgbi bench floor
                  fgbi bench floor --region-mib 256 --cross-check ../shared/baselines/floor.c --json
                """)

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 1024

        @Option(
            name: .customLong("cross-check"),
            help: "An outside floor.c to build (cc -O2 ... -lxxhash -llz4) and run beside the probe.")
        var crossCheck: String?

        @Flag(help: "Print JSON: one object per metric.")
        var json = false

        func validate() throws {
            guard (1...65_536).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 65536")
            }
            if let crossCheck, !FileManager.default.fileExists(atPath: crossCheck) {
                throw ValidationError("--cross-check: \(crossCheck) does not exist")
            }
        }

        /// One metric, from the probe and (with --cross-check) from the outside floor.c.
        struct Figure: Encodable {
            var metric: String
            var unit: String
            var probe: Double
            var crossCheck: Double?
            /// probe / crossCheck.
            var ratio: Double?
        }

        func run() throws {
            let probe = try FloorRun.measure(enabled: true, path: nil, regionMiB: regionMiB)!
            let outside = try crossCheck.map { try FloorRun.measure(enabled: true, path: $0, regionMiB: regionMiB)! }
            let figures = probe.units.map { metric, unit in
                let other = outside?.metrics[metric]
                let value = probe.metrics[metric]!
                return Figure(
                    metric: metric, unit: unit, probe: value, crossCheck: other, ratio: other.map { value / $0 })
            }
            if json {
                print(try JSONOutput.encode(figures))
                return
            }
            var table = TextTable(
                crossCheck == nil
                    ? ["metric", "value", "unit"] : ["metric", "probe", "floor.c", "probe / floor.c", "unit"])
            for figure in figures {
                table.add(
                    crossCheck == nil
                        ? [figure.metric, formatted(figure.probe, 3), figure.unit]
                        : [
                            figure.metric, formatted(figure.probe, 3), formatted(figure.crossCheck, 3),
                            formatted(figure.ratio, 2), figure.unit,
                        ])
            }
            print(table.rendered)
            print("region \(regionMiB) MiB" + (probe.note.map { "; \($0)" } ?? ""))
        }
    }
}
