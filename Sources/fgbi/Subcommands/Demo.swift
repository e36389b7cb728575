import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi demo`: the embedded demonstration `Scripts/demo` runs.
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what this kernel offers, then track a multi-threaded workload's writes epoch by epoch.",
            discussion: """
                Prints the capability report, then writes a memory region from several threads in epochs and,
                at each epoch boundary, collects the written pages with the chosen tracker, checking them
                against the writers' own record and against the scan backend watching the same memory.
                Examples:
                  fgbi demo
                  fgbi demo --tracker uffd-sync --epochs 5 --region-mib 256
                """)

        @Option(help: "Tracker backend: uffd-async, uffd-sync or scan.")
        var tracker = TrackerKind.uffdAsync.rawValue

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 64

        @Option(help: "Epochs to run.")
        var epochs = 10

        @Option(help: "Writer threads.")
        var threads = 2

        func validate() throws {
            do { _ = try TrackerKind.parse(tracker) } catch { throw ValidationError("--tracker: \(error)") }
            guard regionMiB > 0, regionMiB <= 1 << 20 else { throw ValidationError("--region-mib must be between 1 and 1048576") }
            guard epochs > 0 else { throw ValidationError("--epochs must be at least 1") }
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256") }
        }

        func run() throws {
            print(CapabilityReport().text)
            print("")
            var demo = TrackingDemo()
            demo.tracker = try TrackerKind.parse(tracker)
            demo.regionMiB = regionMiB
            demo.epochs = epochs
            demo.writerThreads = threads
            print("tracking a \(regionMiB) MiB region with \(demo.tracker), \(threads) writer threads, \(epochs) epochs")
            var failures = 0
            try demo.run { epoch in
                let ok = epoch.matchesWriters && epoch.matchesScan
                if !ok { failures += 1 }
                print("epoch \(epoch.number): \(epoch.pagesWritten) pages written, \(epoch.pagesReported) reported "
                      + "in \(formatted(epoch.collectMicroseconds, 0)) us; "
                      + "matches writers: \(epoch.matchesWriters ? "yes" : "NO"), matches scan: \(epoch.matchesScan ? "yes" : "NO")")
            }
            print(failures == 0 ? "every epoch reported exactly the pages written" : "\(failures) epochs differed")
            if failures > 0 { throw ExitCode(2) }
        }
    }
}
