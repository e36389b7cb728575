import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi bench pause`: the epoch pause per mode and written-page count, beside its floor.
    struct BenchPause: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pause",
            abstract: "Guest pause per epoch (collect + capture) per mode, beside the floor for the same work.",
            discussion: """
                For each region size and count of written pages (one 8-byte store per page), times the pause of
                20 epochs per mode: the uffd-async collect and the engine's capture (fgbi: rehash the written
                pages and copy changed blocks; page: copy the pages). The floor is measured alone in the same
                run: a raw PAGEMAP_SCAN with re-protection, plus the cheaper of copying the written pages or
                hashing them. Use a release build.
                Examples:
                  fgbi bench pause
                  fgbi bench pause --region-mib 256,4096 --pages 10000 --json
                """)

        @Option(name: .customLong("region-mib"), help: "Comma-separated region sizes in MiB.")
        var regionMiB = "1024"

        @Option(help: "Comma-separated written-page counts per epoch.")
        var pages = "1000,10000,50000"

        @Option(help: "Comma-separated modes.")
        var modes = "fgbi,page"

        @Option(help: "Epochs per case.")
        var epochs = 20

        @Flag(help: "Print JSON: an array with one object per (region, mode, written pages).")
        var json = false

        func validate() throws { _ = try makeConfiguration() }

        func makeConfiguration() throws -> PauseBenchmark.Configuration {
            var configuration = PauseBenchmark.Configuration()
            func integers(_ text: String, _ name: String) throws -> [Int] {
                try CommaList.parse(text, option: name) {
                    guard let value = Int($0), value > 0 else {
                        throw ValidationError("\(name): '\($0)' is not a positive number")
                    }
                    return value
                }
            }
            configuration.regionsMiB = try integers(regionMiB, "--region-mib")
            configuration.writtenPages = try integers(pages, "--pages")
            configuration.modes = try CommaList.parse(modes, option: "--modes") { try ReplicationMode.parse($0) }
            guard epochs > 0 else { throw ValidationError("--epochs must be at least 1") }
            configuration.epochs = epochs
            return configuration
        }

        func run() throws {
            let cases = try PauseBenchmark(try makeConfiguration()).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(cases))
                return
            }
            var table = TextTable([
                "region MiB", "mode", "written pages", "pause p50 ms", "p99", "collect p50",
                "floor scan", "floor copy", "floor hash", "floor ms", "p99 / floor", "floor p99", "p99 / floor p99",
            ])
            for c in cases {
                table.add([
                    String(c.regionMib), c.mode, String(c.writtenPages), formatted(c.pauseMsP50, 3),
                    formatted(c.pauseMsP99, 3),
                    formatted(c.collectMsP50, 3), formatted(c.floorScanMs, 3), formatted(c.floorCopyMs, 3),
                    formatted(c.floorHashMs, 3), formatted(c.floorMs, 3), formatted(c.p99OverFloor),
                    formatted(c.floorMsP99, 3), formatted(c.p99OverFloorP99),
                ])
            }
            print(
                """
                \(epochs) epochs per case; one 8-byte store per written page; floor = scan + min(copy, hash) \
                (medians; floor p99 from the steps' p99s)
                """
            )
            print(table.rendered)
        }
    }
}
