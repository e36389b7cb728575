import ArgumentParser
import FGBI
import FGBIBench
import FGBIExamples

extension FGBICommand {
    /// `fgbi bench lmdb`: the LMDB example's throughput with and without replication.
    struct BenchLMDB: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lmdb",
            abstract: "LMDB workload throughput unreplicated vs replicated (output commit on), side by side.",
            discussion: """
                Each round commits the same --transactions (the same history into a fresh MDB_WRITEMAP database
                on tmpfs) once unreplicated and once per --epoch-ms replicated to a backup in this process over
                loopback, alternating; throughput is transactions over the time to commit the last one. The
                writer runs on --writer-cpu and replication (the primary's threads and, here, the backup too) on
                the other CPUs, as a guest's vCPU runs beside its replicator; --writer-cpu none lets every thread
                share every CPU. Use a release build.
                By default the capture runs on the writer's CPU (idle while it is paused) at SCHED_FIFO 20;
                --capture-cpu and --capture-priority compare other placements and priorities side by side.
                Examples:
                  fgbi bench lmdb
                  fgbi bench lmdb --epoch-ms 25,50,100 --rounds 5 --json
                  fgbi bench lmdb --capture-cpu both --capture-priority normal,20
                  fgbi bench lmdb --hot-pages on,off,3:16:16384
                """)

        @Option(help: "Transactions per run.")
        var transactions = 100_000

        @Option(help: "Rounds (each runs every variant once).")
        var rounds = 3

        @Option(name: .customLong("epoch-ms"), help: "Comma-separated epoch intervals to replicate at.")
        var epochMilliseconds = "25"

        @Option(help: "Key space.")
        var keys = 50_000

        @Option(name: .customLong("writes-per-transaction"), help: "Puts and deletes per transaction.")
        var writesPerTransaction = 8

        @Option(name: .customLong("map-mib"), help: "LMDB map size in MiB (the replicated region).")
        var mapMiB = 256

        @OptionGroup var cache: CacheBudgetOption

        @Option(help: "Replication mode: fgbi, page, page-lz4, xbzrle.")
        var mode = "fgbi"

        @Option(help: "fgbi mode's capture in the pause: rehash, copy or auto.")
        var capture = "auto"

        @Option(help: "History seed.")
        var seed: UInt64 = 1

        @Option(
            name: .customLong("writer-cpu"),
            help: "The writer's CPU; replication (primary threads, backup) runs on the others. 'none': no pinning.")
        var writerCPU = "0"

        @Flag(
            name: .customLong("replication-on-all-cpus"),
            help: "Let the primary's threads use the writer's CPU too (the backup stays on the others, at nice 10).")
        var replicationOnAllCPUs = false

        @Option(
            name: .customLong("sender-nice"),
            help: "The primary's sender thread's nice increment, 0-19 (default: the library's, 5).")
        var senderNice: Int?

        @Option(
            name: .customLong("compression-minimum-saving"),
            help:
                """
                Compress an epoch's body only if a sample shrinks by this fraction (0 to 1; 0: always; default: \
                the mode's, 0.10 for fgbi).
                """
        )
        var compressionMinimumSaving: Double?

        @OptionGroup var encoderFeatures: EncoderFeatureOptions

        @OptionGroup var encryption: BenchEncryptionOption

        @Option(
            name: .customLong("capture-buffers"),
            help: "Captured epochs that may wait for the sender, 1-8 (default: the library's, 1).")
        var captureBuffers: Int?

        @Option(
            name: .customLong("capture-cpu"),
            help:
                """
                With a pinned writer, where the capture's helper thread runs in the pause: writer (its CPU, idle \
                then), replication (the other CPUs), or both (a variant each).
                """
        )
        var captureCPU = "writer"

        @Option(
            name: .customLong("capture-priority"),
            help:
                """
                Comma-separated SCHED_FIFO priorities (1-99) for the pause's threads, or 'normal'; a variant each \
                (FIFO needs root or CAP_SYS_NICE).
                """
        )
        var capturePriority = "20"

        @Option(
            name: .customLong("hot-pages"),
            help:
                """
                Comma-separated hot-page policies of the tracker: on, off, or PROMOTE:LEASE:MAXPAGES[:full] \
                (full: no early end of leases for pages captured unchanged); a variant each.
                """
        )
        var hotPages = "on"

        @Flag(help: "Print JSON: one object per variant.")
        var json = false

        func validate() throws { _ = try makeConfiguration() }

        func makeConfiguration() throws -> LMDBOverheadBenchmark.Configuration {
            let history: KeyValueHistory
            do {
                history = try KeyValueHistory(seed: seed, keyCount: keys, writesPerTransaction: writesPerTransaction)
            } catch {
                throw ValidationError("\(error)")
            }
            var configuration = LMDBOverheadBenchmark.Configuration(history: history)
            guard transactions > 0 else { throw ValidationError("--transactions must be positive") }
            guard (1...100).contains(rounds) else { throw ValidationError("--rounds must be between 1 and 100") }
            guard (1...65_536).contains(mapMiB) else { throw ValidationError("--map-mib must be between 1 and 65536") }
            configuration.transactions = transactions
            configuration.rounds = rounds
            configuration.mapBytes = mapMiB << 20
            configuration.epochMilliseconds = try CommaList.parse(epochMilliseconds, option: "--epoch-ms") {
                guard let value = Int($0), (1...10_000).contains(value) else {
                    throw ValidationError("--epoch-ms: '\($0)' is not a number of milliseconds between 1 and 10000")
                }
                return value
            }
            do { configuration.mode = try ReplicationMode.parse(mode) } catch {
                throw ValidationError("--mode: \(error)")
            }
            do { configuration.capture = try CaptureStrategy.parse(capture) } catch {
                throw ValidationError("--capture: \(error)")
            }
            configuration.writerCPU = try parsedWriterCPU()
            configuration.replicationOnAllCPUs = replicationOnAllCPUs
            configuration.captureRealtimePriorities = try CommaList.parse(capturePriority, option: "--capture-priority")
            { item -> Int? in
                if item == "normal" { return nil }
                guard let priority = Int(item), ThreadScheduling.realtimePriorities.contains(priority) else {
                    throw ValidationError(
                        "--capture-priority: '\(item)' is neither 'normal' nor a priority between 1 and 99")
                }
                return priority
            }
            switch captureCPU {
            case "both": configuration.capturePlacements = LMDBOverheadBenchmark.CapturePlacement.allCases
            default:
                guard let placement = LMDBOverheadBenchmark.CapturePlacement(rawValue: captureCPU) else {
                    throw ValidationError("--capture-cpu: '\(captureCPU)' is not writer, replication or both")
                }
                configuration.capturePlacements = [placement]
            }
            configuration.hotPagePolicies = try CommaList.parse(hotPages, option: "--hot-pages") { item in
                do { return try HotPagePolicy.parse(item) } catch { throw ValidationError("--hot-pages: \(error)") }
            }
            if let senderNice {
                guard (0...19).contains(senderNice) else {
                    throw ValidationError("--sender-nice must be between 0 and 19")
                }
                configuration.senderNiceIncrement = senderNice
            }
            if let compressionMinimumSaving {
                guard (0...1).contains(compressionMinimumSaving) else {
                    throw ValidationError("--compression-minimum-saving must be between 0 and 1")
                }
                configuration.compressionMinimumSaving = compressionMinimumSaving
            }
            configuration.splicing = encoderFeatures.splicing
            configuration.pageCopies = encoderFeatures.pageCopies
            configuration.cachedCaptureBytes = encoderFeatures.cachedCaptureBytes
            configuration.encrypt = encryption.encrypt
            configuration.cacheBudgetBytes = cache.budgetBytes
            if let captureBuffers {
                guard (1...8).contains(captureBuffers) else {
                    throw ValidationError("--capture-buffers must be between 1 and 8")
                }
                configuration.captureBuffers = captureBuffers
            }
            return configuration
        }

        /// `--writer-cpu`: an online CPU, or nil for `none`.
        func parsedWriterCPU() throws -> Int? {
            if writerCPU == "none" { return nil }
            guard let cpu = Int(writerCPU), (0..<ThreadScheduling.onlineCPUCount).contains(cpu) else {
                throw ValidationError(
                    """
                    --writer-cpu: '\(writerCPU)' is not an online CPU (0 to \
                    \(ThreadScheduling.onlineCPUCount - 1)) or 'none'
                    """
                )
            }
            return cpu
        }

        func run() throws {
            let configuration = try makeConfiguration()
            let variants = try LMDBOverheadBenchmark(configuration).run(progress: Progress.note)
            if json {
                print(try JSONOutput.encode(variants))
                return
            }
            var table = TextTable([
                "variant", "txn/s (median)", "runs", "vs none", "paired", "ack p50 ms", "ack p99 ms", "epochs",
                "epoch ms",
                "encode ms", "pause p50 ms", "pause p99 ms", "stop p50", "capture p50", "copied", "pages/epoch",
                "hot/epoch", "wire KB/epoch",
                "primary CPU ms/epoch", "backup CPU ms/epoch", "writing s", "user s", "sys s", "gate s", "preempted",
                "verified",
            ])
            for v in variants {
                table.add([
                    v.name, formatted(v.medianTransactionsPerSecond, 0),
                    v.transactionsPerSecond.map { formatted($0, 0) }.joined(separator: " "),
                    formatted(v.relativeThroughput, 3), formatted(v.pairedRelativeThroughput, 3),
                    formatted(v.acknowledgementMsP50, 1), formatted(v.acknowledgementMsP99, 1),
                    formatted(v.epochsPerRound, 0), formatted(v.meanEpochMs, 0), formatted(v.encodeMsMean, 1),
                    formatted(v.pauseMsP50, 2), formatted(v.pauseMsP99, 2),
                    formatted(v.stopMsP50, 2), formatted(v.captureMsP50, 2),
                    formatted(v.copiedEpochShare.map { $0 * 100 }, 0),
                    formatted(v.pagesWrittenPerEpoch, 0), formatted(v.pagesUnscannedPerEpoch, 0),
                    formatted(v.wireBytesPerEpoch.map { $0 / 1000 }, 1),
                    formatted(v.primaryCpuMsPerEpoch, 1), formatted(v.backupCpuMsPerEpoch, 1),
                    formatted(v.writingSeconds, 2), formatted(v.writer.userSeconds, 2),
                    formatted(v.writer.systemSeconds, 2),
                    formatted(v.writer.gateWaitSeconds, 2), "\(v.writer.involuntarySwitches)",
                    v.verified.map { $0 ? "yes" : "NO" } ?? "-",
                ])
            }
            print(
                """
                \(transactions) transactions of \(writesPerTransaction) writes over \(keys) keys per run, \
                \(rounds) rounds, \(mapMiB) MiB map,\u{20}
                """
                    + (configuration.writerCPU.map { "writer on CPU \($0), replication on the others" }
                        ?? "no CPU pinning")
                    + (configuration.encrypt ? ", frames encrypted (ChaCha20-Poly1305)" : "")
                    + "; vs none = median throughput / unreplicated median")
            print(table.rendered)
        }
    }
}
