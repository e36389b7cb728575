import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi bench sync`: the cost of synchronising a backup while the guest runs, and of resynchronising one.
    struct BenchSync: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sync",
            abstract:
                """
                Synchronisation of an empty backup (pre-copy vs one paused full epoch) and resynchronisation \
                after a backup restart.
                """,
            discussion: """
                A primary and a backup in this process over loopback; a writer thread keeps writing sparse pages
                throughout. Reports the time from session start to the first committed epoch, the guest pause
                of the epoch that ends the synchronisation, the pre-copy rounds and pages per round, bytes
                sent and the primary's encode time for them. The resync case stops a backup that has a state
                directory, starts it again on the same directory while the guest runs, and measures the primary's
                reconnect and resynchronisation.
                Use a release build.
                Examples:
                  fgbi bench sync
                  fgbi bench sync --region-mib 256 --pages-per-second 50000 --json
                """)

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 1024

        @Option(name: .customLong("pages-per-second"), help: "Pages the writer thread writes per second.")
        var pagesPerSecond = 20_000

        @Option(help: "Replication mode.")
        var mode = "fgbi"

        @Option(name: .customLong("chunk-pages"), help: "Pages per pre-copy frame.")
        var chunkPages = PrecopyPolicy().chunkPages

        @Flag(
            name: .customLong("learn-whole-first-pass"),
            help: "Teach the encoder's store every page of the first pass (as `fgbi primary` takes it).")
        var learnWholeFirstPass = false

        @Flag(help: "Print JSON: one object per variant.")
        var json = false

        func validate() throws {
            guard (1...65_536).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 65536")
            }
            guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
            guard (1...1 << 20).contains(chunkPages) else {
                throw ValidationError("--chunk-pages must be between 1 and 1048576")
            }
            do { _ = try ReplicationMode.parse(mode) } catch { throw ValidationError("--mode: \(error)") }
        }

        func run() throws {
            var configuration = SyncBenchmark.Configuration()
            configuration.regionMiB = regionMiB
            configuration.pagesPerSecond = pagesPerSecond
            configuration.mode = try ReplicationMode.parse(mode)
            configuration.precopyChunkPages = chunkPages
            configuration.learnsWholeFirstPass = learnWholeFirstPass
            let cases = try SyncBenchmark(configuration).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(cases))
                return
            }
            var table = TextTable([
                "variant", "region MiB", "mode", "ms to commit", "sync pause ms", "rounds", "pages per round",
                "already held", "MB sent", "encode ms",
            ])
            for c in cases {
                table.add([
                    c.variant, String(c.regionMib), c.mode, formatted(c.msToCommit, 0), formatted(c.syncPauseMs, 2),
                    String(c.rounds),
                    c.pagesPerRound.map(String.init).joined(separator: " "), String(c.pagesAlreadyHeld),
                    formatted(Double(c.bytes) / 1e6, 1), formatted(c.encodeMs, 0),
                ])
            }
            print("writer: \(pagesPerSecond) sparse pages/s throughout; pre-copy frames of \(chunkPages) pages")
            print(table.rendered)
        }
    }
}
