import ArgumentParser
import FGBI
import FGBIBench
import FGBIDiagnostics

extension FGBICommand {
    /// `fgbi trace`: fault-tracking diagnostics for a region under a workload or a recorded trace.
    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                """
                Trace which pages and blocks a workload writes, epoch by epoch (default), or record a trace \
                directory.
                """,
            subcommands: [TraceAnalyze.self, TraceRecord.self, TraceCapture.self],
            defaultSubcommand: TraceAnalyze.self)
    }

    /// `fgbi trace run` (the default): the epoch loop, records, heatmap and summary.
    struct TraceAnalyze: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract:
                """
                Track a region under a built-in workload or a replayed trace and report what each epoch really \
                changed.
                """,
            discussion: """
                Each epoch the writers are paused, the tracker's written pages are collected (with uffd-sync,
                also every fault's time and thread), and each written page's blocks are rehashed to count the
                blocks that really changed. Reports per epoch written pages, changed blocks, the spread of
                changed blocks per page, pages written for the first time, zero pages and content shared
                between written pages or changed blocks; per page, the epochs it was written in. --summary
                prints the headline facts: working set, write rate, the fraction of a written page that really
                changed, and which block size would send the fewest bytes. Docs/TRACE.md documents the output.
                Examples:
                  fgbi trace --summary
                  fgbi trace --workload guest --region-mib 256 --epochs 200 --svg heatmap.svg --summary
                  fgbi trace --tracker uffd-sync --epochs 20 --output faults.jsonl
                  fgbi trace --trace ./my-trace --format csv --output epochs.csv
                """)

        @Option(help: "Built-in workload: guest, sparse, dense, duplicate or zero (default: guest).")
        var workload: String?

        @Option(help: "Replay this trace directory instead of a workload (see `fgbi trace record`, Docs/TRACE.md).")
        var trace: String?

        @Option(help: "Epochs to trace (default: 50 for a workload, every image of a trace).")
        var epochs: Int?

        @Option(
            name: .customLong("epoch-ms"), help: "Epoch interval in milliseconds (a trace's trace.json overrides it).")
        var epochMs = 50.0

        @Option(
            name: .customLong("region-mib"),
            help: "Region size in MiB for a workload (default: 64; a trace's images set it).")
        var regionMiB: Int?

        @Option(
            name: .customLong("block-size"),
            help: "Block size changed blocks are counted in: 64, 128, 256, 512, 1024 or 4096.")
        var blockSize = 64

        @Option(help: "Tracker: uffd-async, uffd-sync (records every fault) or scan.")
        var tracker = TrackerKind.uffdAsync.rawValue

        @Option(help: "Writer threads for a workload (default: 2).")
        var threads: Int?

        @Option(
            name: .customLong("pages-per-second"),
            help: "Page writes per second for a workload, all threads together (default: 20000).")
        var pagesPerSecond: Int?

        @Option(help: "Seed of the workload's writers and initial content.")
        var seed: UInt64 = 42

        @Option(help: "Format of --output: jsonl or csv (default: csv for a .csv file name, else jsonl).")
        var format: String?

        @Option(help: "Write the records (one per epoch, per fault with uffd-sync, per written page) to this file.")
        var output: String?

        @Option(help: "Write an SVG heatmap to this file: x = epoch, y = address, colour = changed blocks per page.")
        var svg: String?

        @Flag(help: "Print the headline facts instead of the per-epoch table.")
        var summary = false

        @Flag(help: "Print the summary as JSON.")
        var json = false

        func validate() throws {
            if trace != nil {
                for (given, name) in [
                    (workload != nil, "--workload"), (regionMiB != nil, "--region-mib"),
                    (threads != nil, "--threads"), (pagesPerSecond != nil, "--pages-per-second"),
                ] where given {
                    throw ValidationError(
                        """
                        \(name) does not apply to --trace: a trace replays recorded images (their size sets the \
                        region)
                        """
                    )
                }
                do { _ = try TraceDirectory.open(trace!) } catch { throw ValidationError("--trace: \(error)") }
            }
            if let workload {
                do { _ = try SyntheticWorkload.parse(workload) } catch { throw ValidationError("--workload: \(error)") }
            }
            if let epochs {
                guard (1...1_000_000).contains(epochs) else {
                    throw ValidationError("--epochs must be between 1 and 1000000")
                }
            }
            guard epochMs >= 1, epochMs <= 60_000 else {
                throw ValidationError("--epoch-ms must be between 1 and 60000")
            }
            if let regionMiB {
                guard (1...65_536).contains(regionMiB) else {
                    throw ValidationError("--region-mib must be between 1 and 65536")
                }
            }
            do { _ = try BlockGeometry(blockSize: blockSize) } catch { throw ValidationError("--block-size: \(error)") }
            do { _ = try TrackerKind.parse(tracker) } catch { throw ValidationError("--tracker: \(error)") }
            if let threads {
                guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64") }
            }
            if let pagesPerSecond {
                guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
            }
            if format != nil && output == nil { throw ValidationError("--format needs --output FILE") }
            _ = try outputFormat()
            if json && !summary { throw ValidationError("--json prints the summary: add --summary") }
        }

        func outputFormat() throws -> TraceOutputFormat {
            if let format {
                do { return try TraceOutputFormat.parse(format) } catch { throw ValidationError("--format: \(error)") }
            }
            return output?.lowercased().hasSuffix(".csv") == true ? .csv : .jsonl
        }

        func makeRun() throws -> TraceRun {
            var run: TraceRun
            if let trace {
                run = TraceRun(source: .directory(try TraceDirectory.open(trace)))
            } else {
                run = TraceRun(
                    source: .workload(try SyntheticWorkload.parse(workload ?? SyntheticWorkload.guest.rawValue)))
                run.regionBytes = (regionMiB ?? 64) << 20
                run.threads = threads ?? 2
                run.pagesPerSecond = pagesPerSecond ?? 20_000
            }
            run.tracker = try TrackerKind.parse(tracker)
            run.blockSize = blockSize
            run.epochs = epochs
            run.epochMs = epochMs
            run.seed = seed
            return run
        }

        func run() throws {
            let traceRun = try makeRun()
            let header = try traceRun.header()
            // Open every output first, so a bad path fails before the run, not after it.
            let writer = try output.map { try TraceRecordWriter(path: $0, format: try outputFormat()) }
            let picture = try svg.map { try OutputFile(path: $0) }
            try writer?.write(header)
            var table = TextTable([
                "epoch", "ms", "written pages", "changed blocks", "changed pages", "new", "zero",
                "shared pages", "shared blocks", "faults",
            ])
            Progress.note("tracing \(describe(header))")
            let result = try traceRun.run(progress: Progress.note) { epoch, faults in
                try writer?.write(epoch)
                for fault in faults { try writer?.write(fault) }
                table.add([
                    String(epoch.epoch), formatted(epoch.durationMs, 1), String(epoch.writtenPages),
                    String(epoch.dirtyBlocks),
                    String(epoch.changedPages), String(epoch.newPages), String(epoch.zeroPages),
                    String(epoch.duplicatePages),
                    String(epoch.duplicateBlocks), epoch.faults.map(String.init) ?? "-",
                ])
            }
            if let writer {
                for page in result.pages { try writer.write(page) }
                try writer.write(result.summary)
                try writer.close()
            }
            if let picture {
                let title =
                    "fgbi trace: \(header.source), \(byteText(header.regionBytes)), \(header.tracker), "
                    + "\(header.epochs) epochs of \(formatted(header.epochMs, 0)) ms"
                try picture.write(HeatmapSVG(heatmap: result.heatmap, title: title).render())
                try picture.close()
            }
            if json {
                print(try JSONOutput.encode(result.summary))
            } else if summary {
                print(TraceSummaryText(header: header, summary: result.summary).rendered)
            } else {
                print("traced \(describe(header))")
                print(table.rendered)
            }
        }

        private func describe(_ header: TraceHeader) -> String {
            """
            \(header.source), \(byteText(header.regionBytes)) region, \(header.tracker) tracker, \
            \(header.blockSize)-byte blocks,\u{20}
            """
                + "\(header.epochs) epochs of \(formatted(header.epochMs, 0)) ms"
        }
    }
}

/// Bytes as MiB when whole, else KiB or bytes.
func byteText(_ bytes: Int) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
    return "\(bytes) bytes"
}
