import FGBI
import FGBIBench
import FGBIDiagnostics
import Foundation
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// `fgbi trace` and `fgbi trace record` as a user runs them.
@Suite(
    "fgbi trace command line", .serialized,
    .enabled(if: CommandRunner.executable != nil, "the fgbi executable was not built beside the tests"))
struct TraceCommandTests {
    /// The tracker the workload runs use: uffd-async where the kernel has it, else the scan fallback.
    let tracker = Kernel.preferredTracker.rawValue

    /// Records a trace of the guest workload, 8 epochs of a 4 MiB region, in `directory`; returns its path.
    func recordGuestTrace(in directory: String) throws -> String {
        let trace = "\(directory)/trace"
        let recorded = try CommandRunner.run([
            "trace", "record", "--output", trace, "--from-workload", "guest", "--region-mib", "4",
            "--epochs", "8", "--epoch-ms", "20",
        ])
        #expect(recorded.status == 0, "\(recorded.stderr)")
        return trace
    }

    @Test func summaryPrintsTheHeadlineFacts() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let outcome = try CommandRunner.run([
            "trace", "--region-mib", "4", "--epochs", "4", "--epoch-ms", "10", "--tracker", tracker,
            "--summary", "--svg", "\(directory)/h.svg", "--output", "\(directory)/r.csv",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let text = outcome.stdout
        for fact in [
            "working set:", "pages written at least once", "MiB", "write spread:", "most-written tenth", "write rate:",
            "written pages/s",
            "really changed:", "blocks per written page", "% of each written page", "shared content:",
            "bytes per block size", "cheapest block size:",
        ] {
            #expect(text.contains(fact), "missing '\(fact)' in:\n\(text)")
        }
        for size in BlockSizeSweep.candidateSizes { #expect(text.contains("\n\(size) ")) }
        #expect(outcome.stderr.contains("epoch 4/4"))
        // --output .csv picks CSV, and the SVG parses
        let csv = try String(contentsOfFile: "\(directory)/r.csv", encoding: .utf8)
        #expect(csv.hasPrefix(TraceRecordWriter.csvColumns.joined(separator: ",") + "\n"))
        #expect(csv.split(separator: "\n").filter { $0.hasPrefix("epoch,") }.count == 4)
        let svg = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/h.svg"))
        #expect(XMLParser(data: svg).parse())
    }

    @Test func summaryAsJSON() throws {
        let outcome = try CommandRunner.run([
            "trace", "--workload", "sparse", "--region-mib", "2", "--epochs", "3", "--epoch-ms", "5",
            "--tracker", tracker, "--summary", "--json",
        ])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any])
        #expect(object["epochs"] as? Int == 3)
        #expect(object["region_bytes"] as? Int == 2 << 20)
        #expect((object["block_sizes"] as? [[String: Any]])?.count == BlockSizeSweep.candidateSizes.count)
        #expect(object["cheapest_block_size"] is Int)
    }

    @Test func demoReplaysATrace() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let trace = try recordGuestTrace(in: directory)
        let demo = try CommandRunner.run(["demo", "--trace", trace, "--seconds", "30", "--tracker", tracker])
        #expect(demo.status == 0, "\(demo.stderr)")
        #expect(demo.stdout.contains("replicating the trace \(trace)"), "\(demo.stdout)")
        #expect(demo.stdout.contains("verified: the backup equals the primary"), "\(demo.stdout)")
        let missing = try CommandRunner.run(["demo", "--trace", "\(directory)/none"])
        #expect(missing.status != 0 && missing.stderr.contains("--trace"), "\(missing.stderr)")
    }

    @Test(.requiring(.uffdAsync, because: "`fgbi bench engine` tracks with uffd-async (it has no --tracker)"))
    func engineBenchmarkReplaysATrace() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let trace = try recordGuestTrace(in: directory)
        let bench = try CommandRunner.run([
            "bench", "engine", "--trace", trace, "--modes", "fgbi,page", "--no-floor", "--json",
        ])
        #expect(bench.status == 0, "\(bench.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any])
        let runs = try #require(report["runs"] as? [[String: Any]])
        #expect(runs.count == 2)
        for run in runs {
            #expect(run["verified"] as? Bool == true, "\(run)")
            #expect(run["epochs"] as? Int == 8, "one epoch per image after the first")
            #expect(run["workload"] as? String == "trace:trace")
        }
    }

    @Test func recordsAndReplaysATraceDirectory() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let trace = "\(directory)/trace"
        let recorded = try CommandRunner.run([
            "trace", "record", "--output", trace, "--from-workload", "guest", "--region-mib", "1",
            "--epochs", "3", "--epoch-ms", "10",
        ])
        #expect(recorded.status == 0, "\(recorded.stderr)")
        #expect(recorded.stdout.contains("recorded 4 images of 1 MiB"))
        let opened = try TraceDirectory.open(trace)
        #expect(opened.images.count == 4)

        let replayed = try CommandRunner.run([
            "trace", "--trace", trace, "--tracker", "scan", "--output", "\(directory)/r.jsonl",
        ])
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(replayed.stdout.contains("traced directory:\(trace), 1 MiB region, scan tracker"))
        let lines = try String(contentsOfFile: "\(directory)/r.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains(#""record":"epoch""#) }.count == 3)

        let again = try CommandRunner.run(["trace", "record", "--output", trace, "--epochs", "1", "--region-mib", "1"])
        #expect(again.status != 0)
        #expect(again.stderr.contains("already holds *.img images"))

        let tooMany = try CommandRunner.run(["trace", "--trace", trace, "--epochs", "9", "--tracker", "scan"])
        #expect(tooMany.status != 0)
        #expect(tooMany.stderr.contains("holds 4 images, enough for 3 epochs, not 9"), "\(tooMany.stderr)")
    }

    @Test(arguments: [
        (["trace", "--tracker", "soft-dirty"], "unknown tracker 'soft-dirty'"),
        (["trace", "--workload", "idle"], "unknown workload 'idle'"),
        (["trace", "--epochs", "0"], "--epochs must be between"),
        (["trace", "--epoch-ms", "0"], "--epoch-ms must be between"),
        (["trace", "--region-mib", "0"], "--region-mib must be between"),
        (["trace", "--block-size", "96"], "block size 96 is not one of"),
        (["trace", "--format", "xml", "--output", "/tmp/x"], "unknown format 'xml'"),
        (["trace", "--format", "csv"], "--format needs --output"),
        (["trace", "--json"], "--json prints the summary"),
        (["trace", "--trace", "/nonexistent/fgbi-trace"], "trace directory /nonexistent/fgbi-trace does not exist"),
        (["trace", "--trace", "/tmp", "--workload", "guest"], "--workload does not apply to --trace"),
        (
            ["trace", "--region-mib", "1", "--epochs", "1", "--output", "/nonexistent/dir/out.jsonl"],
            "open(/nonexistent/dir/out.jsonl): ENOENT"
        ),
        (["trace", "record"], "Missing expected argument '--output <output>'"),
        (["trace", "record", "--output", "/tmp/x", "--epochs", "0"], "--epochs must be between"),
        (["trace", "record", "--output", "/tmp/x", "--from-workload", "idle"], "unknown workload 'idle'"),
    ])
    func badArgumentsFailWithAClearMessage(arguments: [String], message: String) throws {
        let outcome = try CommandRunner.run(arguments)
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains(message), "stderr was: \(outcome.stderr)")
    }

    @Test func emptyTraceDirectoryIsRefused() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let outcome = try CommandRunner.run(["trace", "--trace", directory])
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("holds no *.img images"))
    }
}
