import ArgumentParser
import FGBI
import FGBIBench
import Foundation

extension FGBICommand {
    /// `fgbi trace capture`: snapshot a running process's writable memory into a trace directory.
    struct TraceCapture: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "capture",
            abstract: "Capture a running program's writable memory as a trace directory: one image per interval.",
            discussion: """
                The first snapshot reads /proc/PID/maps and fixes the layout: the writable private mappings
                (heap, anonymous memory, stacks, the data and bss of the binary and its libraries) in address
                order, up to --max-mib. Every snapshot stops the process (SIGSTOP), copies the layout with
                process_vm_readv, continues it (SIGCONT) and then writes the next epoch-NNNNNN.img. trace.json
                records the interval, the layout, what was skipped and each snapshot's pause. Reading another
                process's memory needs ptrace access to it (root, or kernel.yama.ptrace_scope=0 for your own
                processes). Replay it with `fgbi trace --trace DIR`; see Docs/TRACE.md.
                Examples:
                  fgbi trace capture --pid $(pidof redis-server) --output /tmp/redis-trace
                  fgbi trace capture --pid 1234 --output /tmp/t --interval-ms 50 --snapshots 21 --max-mib 256
                  fgbi trace capture --pid $(pidof my-lmdb-writer) --output /tmp/lmdb-trace --shared
                """)

        @Option(help: "The process to capture.")
        var pid: Int32

        @Option(help: "The trace directory to write (created if missing; it must not hold images).")
        var output: String

        @Option(name: .customLong("interval-ms"), help: "Milliseconds from one snapshot's start to the next.")
        var intervalMs = 100.0

        @Option(help: "Images to write (the trace replays one epoch fewer).")
        var snapshots = 51

        @Option(
            name: .customLong("max-mib"),
            help: "The most MiB per image; mappings past it are skipped (listed in trace.json).")
        var maxMiB = 1024

        @Option(
            name: .customLong("buffer-mib"),
            help:
                """
                MiB of memory for images not yet written (default: half of MemAvailable); when full, snapshots \
                wait for the disk.
                """
        )
        var bufferMiB: Int?

        @Flag(
            name: .customLong("no-stop"),
            help: "Copy the process while it runs instead of stopping it: no pause, but an image can mix moments.")
        var noStop = false

        @Flag(
            name: .customLong("shared"),
            help:
                """
                Capture writable shared mappings too (rw-s: a database's writable map, such as LMDB's with \
                MDB_WRITEMAP, or shared memory); by default only private memory is captured.
                """)
        var shared = false

        func validate() throws {
            guard pid > 0 else { throw ValidationError("--pid must be a positive process id") }
            guard !output.isEmpty else { throw ValidationError("--output needs a directory path") }
            guard intervalMs >= 1, intervalMs <= 60_000 else {
                throw ValidationError("--interval-ms must be between 1 and 60000")
            }
            guard (2...100_000).contains(snapshots) else {
                throw ValidationError("--snapshots must be between 2 and 100000")
            }
            guard (1...65_536).contains(maxMiB) else { throw ValidationError("--max-mib must be between 1 and 65536") }
            if let bufferMiB, bufferMiB < 1 { throw ValidationError("--buffer-mib must be positive") }
            guard pid != getpid() else {
                throw ValidationError("--pid is fgbi itself; it cannot stop itself to read its memory")
            }
        }

        func run() throws {
            var capture = ProcessTraceCapture(pid: pid)
            capture.intervalMs = intervalMs
            capture.snapshots = snapshots
            capture.maxBytes = maxMiB << 20
            capture.stopsProcess = !noStop
            capture.includesShared = shared
            capture.bufferBytes = bufferMiB.map { $0 << 20 }
            if !noStop { InterruptContinuation.install(pid: pid) }
            Progress.note(
                "capturing pid \(pid): \(snapshots) snapshots every \(formatted(intervalMs, 0)) ms into \(output)")
            let outcome = try capture.capture(to: output, progress: Progress.note)
            print(Self.summary(outcome, snapshots: snapshots))
        }

        /// The closing lines: what was written and how long the process was stopped.
        static func summary(_ outcome: ProcessTraceCapture.Outcome, snapshots: Int) -> String {
            let trace = outcome.trace
            var lines = [
                """
                captured \(trace.images.count) images of \(byteText(trace.imageSize)) \
                (\(outcome.layout.regions.count) regions)\u{20}
                """
                    + "in \(formatted(outcome.elapsedSeconds, 1)) s into \(trace.path)"
            ]
            if outcome.pausesMs.isEmpty {
                lines.append(
                    """
                    not stopped (--no-stop); copy p50 \(formatted(outcome.pauseMedianMs, 2)) ms, max \
                    \(formatted(outcome.pauseMaxMs, 2)) ms
                    """
                )
            } else {
                lines.append(
                    "pause p50 \(formatted(outcome.pauseMedianMs, 2)) ms, max \(formatted(outcome.pauseMaxMs, 2)) ms, "
                        + "total \(formatted(outcome.pausesMs.reduce(0, +), 1)) ms")
            }
            lines.append(
                """
                images written in p50 \(formatted(outcome.writeMedianMs, 1)) ms, max \
                \(formatted(outcome.writesMs.max() ?? 0, 1)) ms, on a thread of their own
                """
            )
            if !outcome.layout.skipped.isEmpty {
                let bytes = outcome.layout.skipped.reduce(0) { $0 + $1.length }
                lines.append(
                    """
                    skipped \(outcome.layout.skipped.count) writable regions (\(byteText(bytes))), listed in \
                    trace.json
                    """
                )
            }
            if outcome.unreadBytes > 0 {
                lines.append("\(byteText(outcome.unreadBytes)) could not be read and were written as zeros")
            }
            if outcome.notFullyStopped > 0 {
                lines.append("\(outcome.notFullyStopped) snapshots were read before every thread had stopped")
            }
            if outcome.lateSnapshots > 0 {
                lines.append(
                    """
                    \(outcome.lateSnapshots) snapshots started late (the disk or the copy could not keep up); \
                    epoch_ms in trace.json is the measured interval, \(formatted(trace.metadata.epochMs ?? 0, 1)) ms
                    """
                )
            }
            if outcome.exitedEarly {
                lines.append("the process exited: \(trace.images.count) of \(snapshots) snapshots taken")
            }
            lines.append("replay with: fgbi trace --trace \(trace.path) --summary")
            return lines.joined(separator: "\n")
        }
    }
}
