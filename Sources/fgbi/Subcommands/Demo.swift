import ArgumentParser
import FGBI
import FGBIBench
import FGBIDiagnostics

extension FGBICommand {
    /// `fgbi demo`: the embedded demonstrations; `Scripts/demo` runs the default one.
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                """
                Replicate a guest-like workload between a primary and a backup in this process (default), or show \
                the tracker epoch by epoch.
                """,
            subcommands: [DemoReplicate.self, DemoTracking.self],
            defaultSubcommand: DemoReplicate.self)
    }

    /// `fgbi demo replicate`: primary and backup over loopback, live progress, mode comparison, verification.
    struct DemoReplicate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replicate",
            abstract:
                """
                Replicate a guest-like workload over loopback for a while, live, then compare the modes and \
                verify the backup.
                """,
            discussion: """
                Starts a backup and a primary in this process, connected over loopback, and a guest-like
                workload: writer threads storing into a hot set and the rest of a region, copying pages,
                clearing pages, rewriting pages. The primary first synchronises the backup (pre-copy rounds
                while the guest runs), then cuts an epoch every --epoch-ms. A live line shows the epoch, epochs
                per second, dirty pages and blocks per second, wire MB/s, the compression ratio against whole
                pages, shared-block hits, the pause p99 and the lag (epochs not yet acknowledged). At the end the
                guest stops, a final epoch commits, and the summary compares what fgbi, page, page-lz4 and
                xbzrle send for the very same epochs (the other modes encode every capture as shadows), then
                verifies the backup against the primary byte for byte.
                Examples:
                  fgbi demo
                  fgbi demo --seconds 60 --region-mib 1024 --block-size 128
                  fgbi demo --mode xbzrle --tracker scan --seconds 10
                  fgbi demo --trace /tmp/guest-trace
                """)

        @Option(help: "Seconds to replicate.")
        var seconds = 20.0

        @Option(name: .customLong("region-mib"), help: "Guest memory in MiB.")
        var regionMiB = 256

        @Option(name: .customLong("block-size"), help: "Block size in bytes (64 to 4096, a power of two).")
        var blockSize = 64

        @Option(help: "Mode replicated live: fgbi, page, page-lz4 or xbzrle.")
        var mode = ReplicationMode.fgbi.rawValue

        @Option(help: "Tracker: uffd-async, uffd-sync or scan.")
        var tracker = TrackerKind.uffdAsync.rawValue

        @Option(help: "Writer threads.")
        var threads = 2

        @Option(name: .customLong("pages-per-second"), help: "Page writes per second, all writer threads together.")
        var pagesPerSecond = 20_000

        @Option(name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds.")
        var epochMilliseconds = 25

        @Flag(help: "Print the summary as JSON (progress still goes to the terminal).")
        var json = false

        @OptionGroup var cachedCapture: CachedCaptureOption

        @Option(
            help:
                """
                Replicate a recorded trace directory (Docs/TRACE.md; `fgbi trace record` makes one) instead of \
                the workload: one image per epoch interval, until it ends.
                """
        )
        var trace: String?

        @OptionGroup var observability: ObservabilityOptions

        func validate() throws {
            guard seconds > 0, seconds <= 86_400 else { throw ValidationError("--seconds must be between 0 and 86400") }
            guard (1...65_536).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 65536")
            }
            do { _ = try BlockGeometry(blockSize: blockSize) } catch { throw ValidationError("--block-size: \(error)") }
            do { _ = try ReplicationMode.parse(mode) } catch { throw ValidationError("--mode: \(error)") }
            do { _ = try TrackerKind.parse(tracker) } catch { throw ValidationError("--tracker: \(error)") }
            guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64") }
            guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
            guard (1...10_000).contains(epochMilliseconds) else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
        }

        func run() throws {
            // Logs below warnings would break up the live line; --log-level info shows them on standard error.
            let metricsEndpoint = try observability.bootstrap(defaultLevel: .warning)
            defer { metricsEndpoint?.stop() }
            var demo = ReplicationDemo()
            demo.seconds = seconds
            demo.regionMiB = regionMiB
            demo.blockSize = blockSize
            demo.mode = try ReplicationMode.parse(mode)
            demo.tracker = try TrackerKind.parse(tracker)
            demo.writerThreads = threads
            demo.pagesPerSecond = pagesPerSecond
            demo.epochMilliseconds = epochMilliseconds
            demo.cachedCaptureBytes = cachedCapture.bytes
            if let trace {
                do {
                    demo.trace = try TraceDirectory.open(trace)
                } catch {
                    throw ValidationError("--trace: \(error)")
                }
            }
            if !json { printHeader(demo) }
            var line = LiveLine()
            let summary = try demo.run { s in
                let state = s.synchronising ? "synchronising (pre-copy)" : "epoch \(s.epoch.map(String.init) ?? "-")"
                line.update(
                    "\(formatted(s.seconds, 1))s \(state) | \(formatted(s.epochsPerSecond, 0)) epochs/s | "
                        + "dirty \(formatted(s.dirtyPagesPerSecond, 0)) pages/s, "
                        + "\(formatted(s.dirtyBlocksPerSecond, 0)) blocks/s | "
                        + "wire \(formatted(s.wireMBPerSecond, 1)) MB/s | ratio \(formatted(s.compressionRatio, 1))x | "
                        + "shared \(s.sharedHits) | pause p99 \(formatted(s.pauseP99Milliseconds, 2)) ms | lag \(s.lag)"
                )
            }
            line.finish()
            if json { print(try JSONOutput.encode(summary)) } else { Self.printSummary(summary) }
            if !summary.verified { throw ExitCode(2) }
        }

        /// What is replicated, before the live line.
        private func printHeader(_ demo: ReplicationDemo) {
            print(CapabilityReport().summaryLine)
            let settings = "\(demo.mode) mode, \(blockSize)-byte blocks, \(demo.tracker) tracker"
            if let trace = demo.trace {
                let every = formatted(trace.metadata.epochMs ?? Double(epochMilliseconds), 0)
                print(
                    "replicating the trace \(trace.path) over loopback: \(trace.images.count) images of "
                        + "\(trace.imageSize >> 20) MiB, one per \(every) ms; \(settings), "
                        + "\(epochMilliseconds) ms epochs"
                )
            } else {
                print(
                    "replicating \(regionMiB) MiB of guest-like memory over loopback for \(formatted(seconds, 0)) s: "
                        + "\(settings), \(threads) writer threads, \(pagesPerSecond) page writes/s, "
                        + "\(epochMilliseconds) ms epochs")
            }
        }

        /// The closing lines: synchronisation and pauses, what each mode sends for the same epochs, the check.
        private static func printSummary(_ summary: ReplicationDemo.Summary) {
            let rounds = summary.synchronisationRounds.map(String.init).joined(separator: ", ")
            print("")
            print(
                "synchronised in \(formatted(summary.synchronisationMilliseconds, 0)) ms (pre-copy rounds: \(rounds) "
                    + "pages); \(summary.epochsCommitted) epochs, \(summary.pagesWritten) written pages, pause p50 "
                    + "\(formatted(summary.pauseP50Milliseconds, 2)) ms, "
                    + "p99 \(formatted(summary.pauseP99Milliseconds, 2)) ms"
            )
            var table = TextTable([
                "mode", "sync MB", "epochs MB", "vs page", "sync encode ms", "epochs encode ms", "encode ms", "",
            ])
            for m in summary.modes {
                table.add([
                    m.mode, formatted(Double(m.synchronisationBytes) / 1e6, 1),
                    formatted(Double(m.epochBytes) / 1e6, 2),
                    formatted(m.ratioToPage, 3), formatted(m.synchronisationEncodeMilliseconds, 0),
                    formatted(m.epochEncodeMilliseconds, 0), formatted(m.encodeMilliseconds, 0),
                    m.live ? "replicated live" : "shadow, same epochs",
                ])
            }
            print("what each mode sends for the same epochs:")
            print(table.rendered)
            if summary.verified {
                let epoch = summary.lastCommittedEpoch.map(String.init) ?? "-"
                print("verified: the backup equals the primary at committed epoch \(epoch), byte for byte")
            } else {
                print("NOT VERIFIED: the backup differs from the primary at byte \(summary.firstDifference ?? -1)")
            }
        }
    }
}
