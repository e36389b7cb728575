import ArgumentParser
import FGBI
import FGBIBench
import FGBIDiagnostics

extension FGBICommand {
    /// `fgbi demo tracking`: the tracker and engine, epoch by epoch, checked against the writers.
    struct DemoTracking: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tracking",
            abstract:
                "Show what this kernel offers, then track and replicate a multi-threaded workload epoch by epoch.",
            discussion: """
                Prints the capability report, then writes a memory region from several threads in epochs. At each
                epoch boundary the chosen tracker collects the written pages (checked against the writers' own
                record and against the scan backend watching the same memory), the engine encodes what changed,
                and an in-process replica applies the delta and is compared with the primary bit for bit.
                Examples:
                  fgbi demo tracking
                  fgbi demo tracking --tracker uffd-sync --epochs 5 --region-mib 256
                """)

        @Option(help: "Tracker backend: uffd-async, uffd-sync or scan.")
        var tracker = TrackerKind.uffdAsync.rawValue

        @Option(help: "Replication mode: fgbi, page, page-lz4 or xbzrle.")
        var mode = ReplicationMode.fgbi.rawValue

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 64

        @Option(help: "Epochs to run.")
        var epochs = 10

        @Option(help: "Writer threads.")
        var threads = 2

        func validate() throws {
            do { _ = try TrackerKind.parse(tracker) } catch { throw ValidationError("--tracker: \(error)") }
            do { _ = try ReplicationMode.parse(mode) } catch { throw ValidationError("--mode: \(error)") }
            guard regionMiB > 0, regionMiB <= 1 << 20 else {
                throw ValidationError("--region-mib must be between 1 and 1048576")
            }
            guard epochs > 0 else { throw ValidationError("--epochs must be at least 1") }
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256") }
        }

        func run() throws {
            print(CapabilityReport().text)
            print("")
            var demo = TrackingDemo()
            demo.tracker = try TrackerKind.parse(tracker)
            demo.mode = try ReplicationMode.parse(mode)
            demo.regionMiB = regionMiB
            demo.epochs = epochs
            demo.writerThreads = threads
            print(
                "replicating a \(regionMiB) MiB region in \(demo.mode) mode, tracked by \(demo.tracker), "
                    + "\(threads) writer threads, \(epochs) epochs")
            var failures = 0
            var deltaBytes = 0
            var pageBytes = 0
            try demo.run { epoch in
                let ok = epoch.matchesWriters && epoch.matchesScan && epoch.replicaIdentical
                if !ok { failures += 1 }
                deltaBytes += epoch.deltaBytes
                pageBytes += epoch.pageBytes
                print(
                    "epoch \(epoch.number): \(epoch.pagesWritten) pages written, \(epoch.pagesReported) reported "
                        + """
                        in \(formatted(epoch.collectMicroseconds, 0)) us (writers: \
                        \(epoch.matchesWriters ? "match" : "DIFFER"),\u{20}
                        """
                        + "scan: \(epoch.matchesScan ? "match" : "DIFFERS")); \(epoch.blocksSent) blocks sent in "
                            + """
                            \(epoch.deltaBytes) bytes (whole pages: \(epoch.pageBytes)); replica \
                            \(epoch.replicaIdentical ? "identical" : "DIFFERS")
                            """
                )
            }
            print(failures == 0 ? "every epoch reported exactly the pages written" : "\(failures) epochs differed")
            if pageBytes > 0 {
                print(
                    "sent \(deltaBytes) bytes where whole pages would have been \(pageBytes) "
                        + """
                        (\(formatted(100 * Double(deltaBytes) / Double(pageBytes)))%); the replica matched the \
                        primary after every epoch:\u{20}
                        """
                        + (failures == 0 ? "yes" : "NO"))
            }
            if failures > 0 { throw ExitCode(2) }
        }
    }
}
