import FGBI
import Foundation
import Testing

@testable import FGBIBench

/// The general-purpose delta tools run as processes on a trace's image pairs, with their failures reported.
@Suite("delta tool baselines")
struct DeltaToolBaselineTests {
    @Test func childProcessesReportTheirExitStatusAndCPU() throws {
        #expect(ChildProcess.isAvailable("sh"))
        #expect(!ChildProcess.isAvailable("fgbi-no-such-program"))
        #expect(try ChildProcess.run(["sh", "-c", "exit 3"]).status == 3)
        let busy = try ChildProcess.run(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
        #expect(busy.status == 0)
        #expect(busy.cpuNanoseconds > 0 && busy.wallNanoseconds >= busy.cpuNanoseconds / 2)
        #expect(throws: SystemError.self) { try ChildProcess.run(["fgbi-no-such-program"]) }
    }

    @Test(.enabled(if: ChildProcess.isAvailable("zstd"), "zstd is not installed (Debian package zstd)"))
    func zstdDeltasOfATracesImagePairsAreMeasured() throws {
        let directory = try TraceFixtures.temporaryDirectory("baseline")
        defer { TraceFixtures.remove(directory) }
        try TraceFixtures.writeTrace(TraceFixtures.images(pages: 64, count: 4, seed: 5), to: directory)
        let trace = try TraceDirectory.open(directory)
        let baseline = DeltaToolBaseline(tools: [.zstd], epochs: 10, pagesPerEpoch: 0, regionBytes: 0, seed: 0)
        var lines: [String] = []
        let runs = try baseline.run(source: .trace(trace)) { lines.append($0) }
        let zstd = try #require(runs.first)
        #expect(runs.count == 1 && zstd.tool == "zstd")
        #expect(zstd.pairs == 3, "a trace of four images has three pairs, fewer than the ten asked for")
        #expect(
            zstd.bytes > 0 && zstd.bytes < 3 * trace.imageSize,
            "a delta of a few changed pages is far smaller than the images")
        #expect(zstd.bytesPerEpoch == zstd.bytes / 3)
        #expect(lines.count == 3)
    }

    @Test(.enabled(if: ChildProcess.isAvailable("zstd"), "zstd is not installed (Debian package zstd)"))
    func aWorkloadsImagesAreRegeneratedFromItsSeed() throws {
        let baseline = DeltaToolBaseline(tools: [.zstd], epochs: 2, pagesPerEpoch: 16, regionBytes: 1 << 20, seed: 9)
        let first = try baseline.run(source: .workload(.sparse)) { _ in }
        let second = try baseline.run(source: .workload(.sparse)) { _ in }
        #expect(first.first?.pairs == 2)
        #expect(first.first?.bytes == second.first?.bytes, "the same seed gives the same images, so the same deltas")
    }
}
