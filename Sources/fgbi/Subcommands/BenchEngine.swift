import ArgumentParser
import FGBI
import FGBIBench

extension FGBICommand {
    /// `fgbi bench engine`: change detection vs the floor, and each mode's bytes and costs per workload.
    struct BenchEngine: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "engine",
            abstract:
                "Change-detection speed vs the machine's floor, and wire bytes and costs of each mode per workload.",
            discussion: """
                First times FGBI's change detection (rehash and compare every block of the region) beside
                the machine's XXH3 and memcpy floor from the same run (fgbi bench floor). Then, for each workload and \
                mode, runs the
                real pipeline: uffd-async tracker, capture, encode, replica apply, with a bitwise check of the
                replica after every epoch. The first (full) epoch is reported apart. Use a release build.
                Examples:
                  fgbi bench engine
                  fgbi bench engine --workloads sparse --modes fgbi,xbzrle --compression zstd:1 --json
                  fgbi bench engine --workloads dense --modes fgbi,xbzrle --encode-threads 1,2
                  fgbi bench engine --trace /tmp/guest-trace --epochs 100 --no-floor
                """)

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 1024

        @Option(help: "Comma-separated workloads: sparse, dense, duplicate, zero.")
        var workloads = "sparse,dense,duplicate"

        @Option(help: "Comma-separated modes: fgbi, page, page-lz4, xbzrle.")
        var modes = "fgbi,page,page-lz4,xbzrle"

        @Option(name: .customLong("block-size"), help: "Block size in bytes (64, 128, 256, 512, 1024, 4096).")
        var blockSize = 64

        @Option(help: "Compressor for every mode: none, lz4, zstd, zstd:LEVEL (default: each mode's own).")
        var compression: String?

        @OptionGroup var cache: CacheBudgetOption

        @Option(
            name: .customLong("compression-minimum-saving"),
            help:
                """
                Compress an epoch's body only if a sample shrinks by this fraction (0 to 1; 0: always; default: \
                the mode's, 0.10 for fgbi, 0 for the page modes).
                """
        )
        var compressionMinimumSaving: Double?

        @Option(
            name: .customLong("encode-threads"),
            help:
                """
                Comma-separated encode thread counts: the fgbi mode runs once per count (the page modes encode on \
                one).
                """
        )
        var encodeThreads = "1"

        @Flag(
            name: .customLong("always-split"),
            help:
                """
                With --encode-threads over 1: split every epoch that can be split, not only while splitting \
                measures faster than one thread (to time the split itself).
                """
        )
        var alwaysSplit = false

        @Option(help: "Measured epochs per run.")
        var epochs = 10

        @Option(name: .customLong("pages-per-epoch"), help: "Pages written per epoch.")
        var pagesPerEpoch = 16384

        @OptionGroup var floorOptions: FloorOptions

        @Option(help: "Replay this trace directory (Docs/TRACE.md) instead of the workloads; the region is one image.")
        var trace: String?

        @OptionGroup var encoderFeatures: EncoderFeatureOptions

        @Flag(help: "Print JSON: {change_detection, runs: [one object per (workload, mode)]}.")
        var json = false

        func validate() throws {
            guard regionMiB > 0, regionMiB <= 1 << 20 else {
                throw ValidationError("--region-mib must be between 1 and 1048576")
            }
            guard epochs > 0 else { throw ValidationError("--epochs must be at least 1") }
            guard pagesPerEpoch > 0 else { throw ValidationError("--pages-per-epoch must be at least 1") }
            if let saving = compressionMinimumSaving, !(0...1).contains(saving) {
                throw ValidationError("--compression-minimum-saving must be between 0 and 1")
            }
            _ = try makeConfiguration()
        }

        func makeConfiguration() throws -> EngineBenchmark.Configuration {
            var configuration = EngineBenchmark.Configuration()
            configuration.workloads = try CommaList.parse(workloads, option: "--workloads") {
                try SyntheticWorkload.parse($0)
            }
            configuration.modes = try CommaList.parse(modes, option: "--modes") { try ReplicationMode.parse($0) }
            configuration.encodeThreads = try CommaList.parse(encodeThreads, option: "--encode-threads") { text in
                guard let threads = Int(text), (1...EngineConfiguration.maximumEncodeThreads).contains(threads) else {
                    throw ValidationError(
                        """
                        --encode-threads: '\(text)' is not a thread count from 1 to \
                        \(EngineConfiguration.maximumEncodeThreads)
                        """
                    )
                }
                return threads
            }
            do {
                configuration.compression = try compression.map { try Compression.parse($0) }
                _ = try BlockGeometry(blockSize: blockSize)
            } catch {
                throw ValidationError("\(error)")
            }
            configuration.regionMiB = regionMiB
            configuration.alwaysSplit = alwaysSplit
            configuration.blockSize = blockSize
            configuration.epochs = epochs
            configuration.pagesPerEpoch = pagesPerEpoch
            configuration.cacheBudgetBytes = cache.mebibytes << 20
            configuration.splicing = encoderFeatures.splicing
            configuration.pageCopies = encoderFeatures.pageCopies
            configuration.cachedCaptureBytes = encoderFeatures.cachedCaptureBytes
            configuration.compressionMinimumSaving = compressionMinimumSaving
            if let trace {
                do {
                    configuration.trace = try TraceDirectory.open(trace)
                } catch {
                    throw ValidationError("--trace: \(error)")
                }
            }
            return configuration
        }

        struct Report: Encodable {
            var changeDetection: EngineBenchmark.ChangeDetection
            var runs: [EngineBenchmark.ModeRun]
        }

        func run() throws {
            let benchmark = EngineBenchmark(try makeConfiguration())
            let baseline = try floorOptions.measure(regionMiB: regionMiB)
            Progress.note("engine: change detection over \(regionMiB) MiB")
            let detection = try benchmark.measureChangeDetection(floor: baseline)
            let runs = try benchmark.run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(Report(changeDetection: detection, runs: runs)))
                return
            }
            print(
                "change detection, \(blockSize)-byte blocks over \(regionMiB) MiB: \(formatted(detection.gbps)) GB/s"
                    + (detection.floorXxh3Gbps.map {
                        "; floor XXH3 64 B \(formatted($0)) GB/s (\(formatted(detection.ratioToFloorXxh3)) x)"
                    } ?? "")
                    + (detection.floorMemcpyGbps.map { "; floor memcpy \(formatted($0)) GB/s" } ?? "")
                    + (detection.floorMemcpyGbpsTwoThreads.map { " (\(formatted($0)) GB/s on 2 threads)" } ?? ""))
            print("")
            var table = TextTable([
                "workload", "mode", "threads", "compr", "wire B/epoch", "x page", "shared", "diff", "literal", "zero",
                "page copies", "pause p50 ms", "p99", "encode ms", "mean", "p99", "compress ms", "raw", "ns/block",
                "enc GB/s",
                "apply ms", "dirty GB/s", "meta B/GiB", "initial MB", "verified",
            ])
            for run in runs {
                table.add([
                    run.workload, run.mode,
                    run.encodeThreads > 1 ? "\(run.encodeThreads)(\(run.epochsEncodedSplit)/\(run.epochs))" : "1",
                    run.compression, String(run.wireBytesPerEpoch),
                    formatted(run.ratioToPage, 4),
                    String(run.sharedHits), String(run.diffBlocks), String(run.literalBlocks), String(run.zeroBlocks),
                    String(run.pagesCopied), formatted(run.pauseMsP50), formatted(run.pauseMsP99),
                    formatted(run.encodeMsP50),
                    formatted(run.encodeMsMean), formatted(run.encodeMsP99),
                    formatted(run.compressMsP50), String(run.epochsStoredRaw),
                    formatted(run.encodeNsPerBlock, 1), formatted(run.encodeGbps), formatted(run.applyMsP50),
                    formatted(run.dirtyGbps), String(run.metadataBytesPerGib),
                    formatted(Double(run.initialSyncBytes) / 1e6, 1),
                    run.verified ? "yes" : "NO",
                ])
            }
            print(
                """
                \(epochs) epochs of \(pagesPerEpoch) written pages, \(regionMiB) MiB region, \(blockSize)-byte \
                blocks, \(cache.mebibytes) MiB cache
                """
            )
            print(table.rendered)
            if runs.contains(where: { !$0.verified }) { throw ExitCode(2) }
        }
    }
}
