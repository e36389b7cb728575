import ArgumentParser
import FGBI
import FGBIBench
import FGBIDiagnostics
import Foundation

extension FGBICommand {
    /// `fgbi bench replicate`: the whole pipeline per mode on the same epochs, beside general-purpose delta tools.
    struct BenchReplicate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replicate",
            abstract:
                """
                Replicate the same memory history in each mode through the whole pipeline, and compare with zstd, \
                rsync and xdelta3.
                """,
            discussion: """
                For each workload (or the trace) and mode, runs a primary and a backup in this process over
                loopback: the backup is synchronised, then a guest writes one epoch at a time (a workload's pages
                from a fixed seed, or a trace's next image), the primary cuts the epoch on its timer, and after
                the backup acknowledges it the whole backup is compared with the primary. Every mode sees the same
                epochs. Per mode: wire bytes per epoch and the ratio to `page`, pause p50/p99 (collect and
                capture), CPU per epoch of the primary's and the backup's threads, dirty GB/s (written pages'
                bytes per second of that CPU), engine metadata per GiB, and `verified`.
                Then the delta tools (zstd -3 --patch-from, rsync batch, xdelta3) on the first --baseline-epochs
                image pairs of the same history, beside what each mode sent for those epochs.
                With several --block-size values the fgbi mode runs at each (a block-size sweep).
                Use a release build. Examples:
                  fgbi bench replicate --workload sparse
                  fgbi bench replicate --workload sparse,streaming,zipf,duplicate,zero --epochs 20 --json
                  fgbi bench replicate --workload zipf --modes fgbi --block-size 64,128,256,512,1024,4096 --baselines \
                none
                  fgbi bench replicate --trace /tmp/redis-trace --svg Docs/redis
                """)

        @Option(
            help: "Comma-separated workloads: \(SyntheticWorkload.allCases.map(\.rawValue).joined(separator: ", ")).")
        var workload = "sparse,streaming,zipf,duplicate,zero"

        @Option(help: "Replay this trace directory (Docs/TRACE.md) instead of the workloads; the region is one image.")
        var trace: String?

        @Option(help: "Comma-separated modes: fgbi, page, page-lz4, xbzrle.")
        var modes = "fgbi,page,page-lz4,xbzrle"

        @Option(name: .customLong("block-size"), help: "Block size for fgbi, or a comma-separated sweep (64 ... 4096).")
        var blockSize = "64"

        @Option(help: "Compressor for every mode: none, lz4, zstd, zstd:LEVEL (default: each mode's own).")
        var compression: String?

        @Option(help: "Epochs with writes per run (a trace: at most its images after the first).")
        var epochs = 50

        @Option(name: .customLong("pages-per-epoch"), help: "Pages a workload writes per epoch.")
        var pagesPerEpoch = 8192

        @Option(name: .customLong("region-mib"), help: "Region size for the workloads, MiB.")
        var regionMiB = 256

        @Option(name: .customLong("epoch-ms"), help: "The primary's epoch interval, milliseconds.")
        var epochMilliseconds = 25

        @OptionGroup var cache: CacheBudgetOption

        @OptionGroup var encoderFeatures: EncoderFeatureOptions

        @Option(help: "Comma-separated delta tools to compare with (zstd, rsync, xdelta3), or none.")
        var baselines = "zstd,rsync,xdelta3"

        @Option(name: .customLong("baseline-epochs"), help: "Image pairs the delta tools run on (the first epochs).")
        var baselineEpochs = 10

        @Option(help: "Write the per-epoch plots as PREFIX-bytes.svg and PREFIX-pause.svg (first source).")
        var svg: String?

        @Option(help: "Seed of the workloads' content and writes.")
        var seed: UInt64 = 2011

        @OptionGroup var encryption: BenchEncryptionOption

        @Flag(help: "Print JSON: {runs: [one object per mode and block size], baselines: [...]}.")
        var json = false

        @OptionGroup var observability: ObservabilityOptions

        func validate() throws {
            guard epochs > 0, epochs <= 100_000 else { throw ValidationError("--epochs must be between 1 and 100000") }
            guard pagesPerEpoch > 0 else { throw ValidationError("--pages-per-epoch must be at least 1") }
            guard (1...65_536).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 65536")
            }
            guard (1...10_000).contains(epochMilliseconds) else {
                throw ValidationError("--epoch-ms must be between 1 and 10000")
            }
            guard baselineEpochs >= 0 else { throw ValidationError("--baseline-epochs must not be negative") }
            _ = try makeConfiguration()
            _ = try tools()
        }

        func makeConfiguration() throws -> ReplicateBenchmark.Configuration {
            var configuration = ReplicateBenchmark.Configuration()
            configuration.modes = try CommaList.parse(modes, option: "--modes") { try ReplicationMode.parse($0) }
            configuration.blockSizes = try CommaList.parse(blockSize, option: "--block-size") { text in
                guard let size = Int(text) else { throw FGBIError.invalidArgument("'\(text)' is not a number") }
                _ = try BlockGeometry(blockSize: size)
                return size
            }
            configuration.compression = try compression.map { text in
                do { return try Compression.parse(text) } catch { throw ValidationError("--compression: \(error)") }
            }
            if let trace {
                do {
                    configuration.sources = [.trace(try TraceDirectory.open(trace))]
                } catch {
                    throw ValidationError("--trace: \(error)")
                }
            } else {
                configuration.sources = try CommaList.parse(workload, option: "--workload") {
                    .workload(try SyntheticWorkload.parse($0))
                }
            }
            configuration.epochs = epochs
            configuration.pagesPerEpoch = pagesPerEpoch
            configuration.regionMiB = regionMiB
            configuration.epochMilliseconds = epochMilliseconds
            configuration.cacheBudgetBytes = cache.mebibytes << 20
            configuration.splicing = encoderFeatures.splicing
            configuration.pageCopies = encoderFeatures.pageCopies
            configuration.cachedCaptureBytes = encoderFeatures.cachedCaptureBytes
            configuration.encrypt = encryption.encrypt
            configuration.seed = seed
            return configuration
        }

        func tools() throws -> [DeltaToolBaseline.Tool] {
            if baselines == "none" || baselineEpochs == 0 { return [] }
            return try CommaList.parse(baselines, option: "--baselines") { name in
                guard let tool = DeltaToolBaseline.Tool(rawValue: name) else {
                    throw FGBIError.invalidArgument("unknown tool '\(name)'; choose zstd, rsync, xdelta3 or none")
                }
                return tool
            }
        }

        struct Report: Encodable {
            var runs: [ReplicateBenchmark.ModeRun]
            var baselines: [DeltaToolBaseline.ToolRun]
        }

        func run() throws {
            // The backups and primaries log a line per run at info; warnings and errors still show.
            let metricsEndpoint = try observability.bootstrap(defaultLevel: .warning)
            defer { metricsEndpoint?.stop() }
            let configuration = try makeConfiguration()
            var baseline = DeltaToolBaseline(
                tools: try tools(), epochs: baselineEpochs, pagesPerEpoch: pagesPerEpoch,
                regionBytes: regionMiB << 20, seed: seed)
            baseline.tools = baseline.tools.filter { tool in
                guard baseline.missingTools.contains(tool) else { return true }
                Progress.note(
                    "\(tool.rawValue) is not installed (Debian package \(tool.package)); its baseline is skipped")
                return false
            }
            let runs = try ReplicateBenchmark(configuration).run(progress: Progress.note)
            var tools: [DeltaToolBaseline.ToolRun] = []
            if !baseline.tools.isEmpty {
                for source in configuration.sources {
                    Progress.note(
                        """
                        baselines: \(source.name), \(baseline.tools.map(\.rawValue).joined(separator: ", ")) on \
                        \(baselineEpochs) image pairs
                        """
                    )
                    tools += try baseline.run(source: source, progress: Progress.note)
                }
            }
            if let svg, let first = configuration.sources.first {
                try writePlots(prefix: svg, runs: runs.filter { $0.workload == first.name })
            }
            if json {
                print(try JSONOutput.encode(Report(runs: runs, baselines: tools)))
            } else {
                printTables(configuration, runs, tools)
            }
            if runs.contains(where: { !$0.verified }) { throw ExitCode(2) }
        }

        private func printTables(
            _ configuration: ReplicateBenchmark.Configuration, _ runs: [ReplicateBenchmark.ModeRun],
            _ tools: [DeltaToolBaseline.ToolRun]
        ) {
            let shape =
                trace != nil ? "the trace's images" : "\(pagesPerEpoch) page writes per epoch, \(regionMiB) MiB region"
            let frames = encryption.encrypt ? "frames encrypted (ChaCha20-Poly1305)" : "frames in clear"
            print(
                """
                whole pipeline over loopback, \(epochs) epochs with writes, \(shape), \(epochMilliseconds) ms \
                epoch timer, \(cache.mebibytes) MiB cache, \(frames)
                """
            )
            var table = TextTable([
                "workload", "mode", "block", "compr", "wire B/epoch", "x page", "sync MB", "pause p50 ms", "p99",
                "primary CPU ms", "backup CPU ms", "dirty GB/s", "meta B/GiB", "shared", "diff", "literal", "zero",
                "verified",
            ])
            for run in runs {
                table.add([
                    run.workload, run.mode, String(run.blockSize), run.compression, String(run.wireBytesPerEpoch),
                    formatted(run.ratioToPage, 4), formatted(Double(run.synchronisationBytes) / 1e6, 1),
                    formatted(run.pauseMsP50), formatted(run.pauseMsP99), formatted(run.primaryCpuMsPerEpoch),
                    formatted(run.backupCpuMsPerEpoch), formatted(run.dirtyGbps), String(run.metadataBytesPerGib),
                    String(run.sharedHits), String(run.diffBlocks), String(run.literalBlocks), String(run.zeroBlocks),
                    run.verified ? "yes" : "NO",
                ])
            }
            print(table.rendered)
            guard !tools.isEmpty else { return }
            print("")
            print(
                """
                the same history's first image pairs through general-purpose delta tools, beside each mode's \
                bytes for those epochs
                """
            )
            var comparison = TextTable([
                "workload", "sender", "epochs", "bytes/epoch", "x zstd", "CPU ms/epoch", "CPU x zstd", "wall ms/epoch",
            ])
            for source in Set(tools.map(\.workload)).sorted() {
                let zstd = tools.first { $0.workload == source && $0.tool == DeltaToolBaseline.Tool.zstd.rawValue }
                for run in runs where run.workload == source {
                    let pairs = tools.first { $0.workload == source }?.pairs ?? 0
                    let epochs = run.perEpoch.prefix(pairs)
                    let bytes = epochs.isEmpty ? 0 : epochs.reduce(0) { $0 + $1.wireBytes } / epochs.count
                    let name = run.mode == ReplicationMode.fgbi.rawValue ? "fgbi/\(run.blockSize)" : run.mode
                    comparison.add([
                        source, name, String(epochs.count), String(bytes),
                        formatted(zstd.map { Double(bytes) / Double(max($0.bytesPerEpoch, 1)) }, 3),
                        formatted(run.primaryCpuMsPerEpoch),
                        formatted(zstd.map { run.primaryCpuMsPerEpoch / max($0.cpuMsPerEpoch, 1e-9) }, 4), "-",
                    ])
                }
                for tool in tools where tool.workload == source {
                    comparison.add([
                        source, tool.tool, String(tool.pairs), String(tool.bytesPerEpoch),
                        formatted(zstd.map { Double(tool.bytesPerEpoch) / Double(max($0.bytesPerEpoch, 1)) }, 3),
                        formatted(tool.cpuMsPerEpoch),
                        formatted(zstd.map { tool.cpuMsPerEpoch / max($0.cpuMsPerEpoch, 1e-9) }, 4),
                        formatted(tool.wallMsPerEpoch),
                    ])
                }
            }
            print(comparison.rendered)
            print(
                "fgbi and the modes: primary CPU per epoch over the whole run; tools: "
                    + tools.map(\.command).uniqued().joined(separator: "; "))
        }

        private func writePlots(prefix: String, runs: [ReplicateBenchmark.ModeRun]) throws {
            func name(_ run: ReplicateBenchmark.ModeRun) -> String {
                run.mode == ReplicationMode.fgbi.rawValue && runs.filter({ $0.mode == run.mode }).count > 1
                    ? "fgbi/\(run.blockSize)" : run.mode
            }
            let source = runs.first?.workload ?? ""
            let bytes = LineChartSVG(
                title: "Wire bytes per epoch: \(source)", xLabel: "epoch", yLabel: "bytes",
                series: runs.map { .init(name: name($0), values: $0.perEpoch.map { Double($0.wireBytes) }) })
            let pause = LineChartSVG(
                title: "Guest pause per epoch (collect + capture): \(source)", xLabel: "epoch", yLabel: "ms",
                series: runs.map { .init(name: name($0), values: $0.perEpoch.map(\.pauseMs)) })
            for (suffix, chart) in [("bytes", bytes), ("pause", pause)] {
                let file = try OutputFile(path: "\(prefix)-\(suffix).svg")
                try file.write(chart.rendered)
                try file.close()
                Progress.note("wrote \(prefix)-\(suffix).svg")
            }
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
