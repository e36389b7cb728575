import ArgumentParser
import FGBI
import FGBIBench
import Foundation

extension FGBICommand {
    /// `fgbi bench tracker`: dirty-set collection and first-write cost per tracker backend, beside floor.
    struct BenchTracker: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tracker",
            abstract:
                """
                Per-epoch cost of collecting and re-protecting the dirty set, per tracker, beside the machine's \
                floor.
                """,
            discussion: """
                For each tracker and each count of written pages, writes one byte in that many pages spread over
                the region, then times the collection (and re-protection) of the dirty set, over several epochs.
                The floor probe (fgbi bench floor) runs first in the same run, so uffd-async is shown as a
                ratio to the machine's floor. Build with -c release for meaningful numbers.
                Examples:
                  fgbi bench tracker
                  fgbi bench tracker --trackers uffd-async,uffd-sync,scan --pages 1024,16384 --json
                """)

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 1024

        @Option(help: "Comma-separated trackers: uffd-async, uffd-sync, scan.")
        var trackers = "uffd-async,scan"

        @Option(help: "Comma-separated written-page counts per epoch; 'all' for every page.")
        var pages = "1024,16384,all"

        @Option(help: "Epochs measured per case.")
        var repetitions = 5

        @OptionGroup var floorOptions: FloorOptions

        @Flag(help: "Print JSON: an array with one object per (tracker, written pages) case.")
        var json = false

        func validate() throws {
            guard regionMiB > 0, regionMiB <= 1 << 20 else {
                throw ValidationError("--region-mib must be between 1 and 1048576")
            }
            guard repetitions > 0 else { throw ValidationError("--repetitions must be at least 1") }
            _ = try parsedTrackers()
            _ = try parsedPages()
        }

        func parsedTrackers() throws -> [TrackerKind] {
            try CommaList.parse(trackers, option: "--trackers") { try TrackerKind.parse($0) }
        }

        func parsedPages() throws -> [Int] {
            try pages.split(separator: ",").map { item in
                if item == "all" { return 0 }
                guard let count = Int(item), count > 0 else {
                    throw ValidationError("--pages: '\(item)' is neither a positive count nor 'all'")
                }
                return count
            }
        }

        func run() throws {
            var configuration = TrackerBenchmark.Configuration()
            configuration.regionMiB = regionMiB
            configuration.trackers = try parsedTrackers()
            configuration.writtenPages = try parsedPages()
            configuration.repetitions = repetitions

            let baseline = try floorOptions.measure(regionMiB: regionMiB)
            let cases = try TrackerBenchmark(configuration).run(floor: baseline, progress: Progress.note)
            if json {
                print(try JSONOutput.encode(cases))
                return
            }
            var table = TextTable([
                "tracker", "written pages", "collect ms p50", "min", "max", "x floor", "scan / this",
                "1st write us", "untracked us", "floor 1st write us", "exact",
            ])
            for item in cases {
                table.add([
                    item.tracker, String(item.writtenPages), formatted(item.collectMsMedian, 3),
                    formatted(item.collectMsMin, 3), formatted(item.collectMsMax, 3),
                    formatted(item.collectRatioToFloor), formatted(item.scanOverThis, 1),
                    formatted(item.firstWriteUsPerPage, 3), formatted(item.untrackedWriteUsPerPage, 3),
                    formatted(item.floorFirstWriteUsPerPage, 3), item.exact ? "yes" : "NO",
                ])
            }
            print("region \(regionMiB) MiB, \(repetitions) epochs per case\(baseline == nil ? ", no floor" : "")")
            print(table.rendered)
            if cases.contains(where: { !$0.exact }) {
                throw ExitCode(2)
            }
        }
    }
}
