import ArgumentParser
import FGBI
import FGBIBench
import Foundation

extension FGBICommand {
    /// `fgbi trace record`: snapshot a built-in workload's region every epoch into a trace directory.
    struct TraceRecord: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "record",
            abstract:
                """
                Record a built-in workload as a trace directory: a raw image of the region before and after each \
                epoch.
                """,
            discussion: """
                Writes epoch-000000.img (the region before the first epoch), then one image per epoch taken with the
                writers paused, then trace.json with the epoch interval. The directory is created if missing and
                must not hold images already. It takes (epochs + 1) x region bytes of disk. Replay it with
                `fgbi trace --trace DIR`.
                Examples:
                  fgbi trace record --output /tmp/guest-trace --workload guest --region-mib 16 --epochs 20
                """)

        @Option(help: "The trace directory to write.")
        var output: String

        @Option(
            name: [.customLong("workload"), .customLong("from-workload")],
            help: "Built-in workload: guest, sparse, dense, duplicate or zero.")
        var workload = SyntheticWorkload.guest.rawValue

        @Option(help: "Epochs recorded (the directory gets one more image).")
        var epochs = 10

        @Option(name: .customLong("epoch-ms"), help: "Milliseconds the writers run between snapshots.")
        var epochMs = 50.0

        @Option(name: .customLong("region-mib"), help: "Region size in MiB.")
        var regionMiB = 16

        @Option(help: "Writer threads.")
        var threads = 2

        @Option(name: .customLong("pages-per-second"), help: "Page writes per second, all threads together.")
        var pagesPerSecond = 20_000

        @Option(help: "Seed of the writers and the initial content.")
        var seed: UInt64 = 42

        func validate() throws {
            guard !output.isEmpty else { throw ValidationError("--output needs a directory path") }
            do { _ = try SyntheticWorkload.parse(workload) } catch { throw ValidationError("--workload: \(error)") }
            guard (1...100_000).contains(epochs) else { throw ValidationError("--epochs must be between 1 and 100000") }
            guard epochMs >= 1, epochMs <= 60_000 else {
                throw ValidationError("--epoch-ms must be between 1 and 60000")
            }
            guard (1...65_536).contains(regionMiB) else {
                throw ValidationError("--region-mib must be between 1 and 65536")
            }
            guard (1...64).contains(threads) else { throw ValidationError("--threads must be between 1 and 64") }
            guard pagesPerSecond > 0 else { throw ValidationError("--pages-per-second must be positive") }
        }

        func run() throws {
            var recorder = WorkloadTraceRecorder()
            recorder.workload = try SyntheticWorkload.parse(workload)
            recorder.regionBytes = regionMiB << 20
            recorder.epochs = epochs
            recorder.epochMs = epochMs
            recorder.threads = threads
            recorder.pagesPerSecond = pagesPerSecond
            recorder.seed = seed
            let needed = (epochs + 1) * (regionMiB << 20)
            if let free = freeBytes(near: output), free < needed {
                throw ValidationError(
                    """
                    recording needs \(needed >> 20) MiB ((epochs + 1) x region) but \(output) has \(free >> 20) \
                    MiB free
                    """
                )
            }
            Progress.note(
                """
                recording \(workload) for \(epochs) epochs of \(formatted(epochMs, 0)) ms into \(output) \
                (\(needed >> 20) MiB)
                """
            )
            let trace = try recorder.record(to: output, progress: Progress.note)
            print(
                """
                recorded \(trace.images.count) images of \(byteText(trace.imageSize)) in \(trace.path); replay \
                with: fgbi trace --trace \(trace.path)
                """
            )
        }

        /// Free bytes on the file system that will hold `path` (its nearest existing ancestor), if known.
        private func freeBytes(near path: String) -> Int? {
            var directory = URL(fileURLWithPath: path)
            while !FileManager.default.fileExists(atPath: directory.path) && directory.path != "/" {
                directory.deleteLastPathComponent()
            }
            var info = statvfs()
            guard statvfs(directory.path, &info) == 0 else { return nil }
            return Int(info.f_bavail) * Int(info.f_frsize)
        }
    }
}
