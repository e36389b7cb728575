import FGBI
import FGBIBench
import Foundation
import Testing

/// Replaying a trace writes exactly the pages that differ between consecutive images, the trackers report
/// exactly those, and the trace's counts match an independent byte-by-byte comparison of the images.
@Suite("Trace replay and analysis", .serialized)
struct TraceReplayTests {
    @Test(
        "uffd-async reports exactly the pages that differ between images",
        .requiring(.uffdAsync, because: "the tracker under test"))
    func asyncWriteProtectSeesTheDifferingPages() throws {
        try trackerSeesTheDifferingPages(tracker: .uffdAsync)
    }

    @Test(
        "uffd-sync reports exactly the pages that differ between images",
        .requiring(.uffdSync, because: "the tracker under test"))
    func syncWriteProtectSeesTheDifferingPages() throws {
        try trackerSeesTheDifferingPages(tracker: .uffdSync)
    }

    @Test("scan reports exactly the pages that differ between images")
    func scanSeesTheDifferingPages() throws {
        try trackerSeesTheDifferingPages(tracker: .scan)
    }

    func trackerSeesTheDifferingPages(tracker kind: TrackerKind) throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let images = TraceFixtures.images(pages: 96, count: 8, seed: 11)
        try TraceFixtures.writeTrace(images, to: directory)
        let trace = try TraceDirectory.open(directory)
        let memory = try GuestMemory.anonymous(length: trace.imageSize)
        try memory.prefault()
        let replayer = try TraceReplayer(memory: memory, trace: trace)
        try replayer.prepare()
        #expect(memcmp(memory.base, images[0], trace.imageSize) == 0)

        let tracker = try kind.makeTracker(for: memory)
        try tracker.start()
        defer { try? tracker.stop() }
        var reported = DirtyPageSet()
        for epoch in 1..<images.count {
            #expect(try replayer.writeNext())
            try tracker.collect(into: &reported)
            let expected = TraceFixtures.differingPages(images[epoch - 1], images[epoch])
            #expect(!expected.isEmpty)
            #expect(Array(reported.pages) == expected, "epoch \(epoch)")
            #expect(Array(replayer.lastWritten.pages) == expected, "epoch \(epoch)")
            #expect(memcmp(memory.base, images[epoch], trace.imageSize) == 0, "epoch \(epoch)")
        }
        #expect(try !replayer.writeNext())
    }

    @Test("per-epoch counts equal a block-by-block comparison of the images", arguments: [64, 256, 4096])
    func countsMatchAnIndependentComparison(blockSize: Int) throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let images = TraceFixtures.images(pages: 80, count: 7, seed: 23)
        try TraceFixtures.writeTrace(images, to: directory, epochMs: 40)
        var run = TraceRun(source: .directory(try TraceDirectory.open(directory)))
        run.tracker = Kernel.preferredTracker
        run.blockSize = blockSize
        let result = try run.run()
        #expect(result.epochs.count == images.count - 1)
        let blocksPerPage = GuestMemory.pageSize / blockSize
        for epoch in result.epochs {
            let (old, new) = (images[epoch.epoch - 1], images[epoch.epoch])
            let pages = TraceFixtures.differingPages(old, new)
            let blocks = TraceFixtures.changedBlocks(old, new, blockSize: blockSize)
            #expect(epoch.writtenPages == pages.count, "epoch \(epoch.epoch)")
            #expect(epoch.dirtyBlocks == blocks.values.reduce(0, +), "epoch \(epoch.epoch)")
            #expect(epoch.changedPages == blocks.count, "epoch \(epoch.epoch)")
            var histogram = [Int](repeating: 0, count: blocksPerPage + 1)
            for page in pages { histogram[blocks[page] ?? 0] += 1 }
            #expect(epoch.dirtyBlockHistogram == histogram, "epoch \(epoch.epoch)")
            #expect(epoch.durationMs == 40 && epoch.endMs == 40 * Double(epoch.epoch))
            // zero pages and duplicate pages, by comparing the written pages' bytes
            let contents = pages.map { Array(new[$0 * GuestMemory.pageSize..<($0 + 1) * GuestMemory.pageSize]) }
            #expect(epoch.zeroPages == contents.filter { $0.allSatisfy { $0 == 0 } }.count)
            let groups = Dictionary(grouping: contents, by: { $0 }).values.filter { $0.count > 1 }
            #expect(epoch.duplicatePageGroups == groups.count)
            #expect(epoch.duplicatePages == groups.reduce(0) { $0 + $1.count })
        }
        // Per-page totals and the working set.
        var writtenIn: [Int: Int] = [:]
        for epoch in 1..<images.count {
            for page in TraceFixtures.differingPages(images[epoch - 1], images[epoch]) {
                writtenIn[page, default: 0] += 1
            }
        }
        #expect(result.pages.map(\.page) == writtenIn.keys.sorted())
        #expect(result.pages.allSatisfy { writtenIn[$0.page] == $0.epochsWritten })
        #expect(result.summary.workingSetPages == writtenIn.count)
        let counts = writtenIn.values.sorted(by: >)
        #expect(result.summary.maxEpochsWritten == counts.first)
        #expect(result.summary.medianEpochsWritten == counts[counts.count / 2])
        let busiest = counts.prefix(max(counts.count / 10, 1)).reduce(0, +)
        #expect(abs(result.summary.busiestTenthShare - Double(busiest) / Double(counts.reduce(0, +))) < 1e-12)
        #expect(result.summary.epochsWrittenHistogram.reduce(0, +) == images[0].count / GuestMemory.pageSize)
        #expect(result.summary.writtenPages == result.epochs.reduce(0) { $0 + $1.writtenPages })
        #expect(abs(result.summary.elapsedSeconds - 0.04 * Double(images.count - 1)) < 1e-9)
        #expect(
            abs(
                result.summary.writtenPagesPerSecond - Double(result.summary.writtenPages)
                    / result.summary.elapsedSeconds) < 1e-6)
        #expect(result.heatmap.sums.reduce(0, +) == result.epochs.reduce(0) { $0 + $1.dirtyBlocks })
    }

    @Test("the block-size table prices every size from the same changes")
    func blockSizeTableMatchesTheImages() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        let images = TraceFixtures.images(pages: 64, count: 5, seed: 5)
        try TraceFixtures.writeTrace(images, to: directory)
        var run = TraceRun(source: .directory(try TraceDirectory.open(directory)))
        run.tracker = .scan
        let summary = try run.run().summary
        #expect(summary.blockSizes.map(\.blockSize) == [64, 128, 256, 512, 1024, 2048, 4096])
        for cost in summary.blockSizes {
            let changed = (1..<images.count).reduce(0) {
                $0
                    + TraceFixtures.changedBlocks(images[$1 - 1], images[$1], blockSize: cost.blockSize).values.reduce(
                        0, +)
            }
            #expect(cost.changedBlocks == changed, "block size \(cost.blockSize)")
            #expect(cost.changedBytes == changed * cost.blockSize)
            #expect(cost.hashBytes == images[0].count / cost.blockSize * 8)
            #expect(cost.totalBytes == cost.changedBytes + cost.recordBytes + cost.hashBytes)
        }
        let cheapest = try #require(summary.cheapestBlockSize)
        let supported = summary.blockSizes.filter(\.supported)
        #expect(supported.allSatisfy { $0.totalBytes >= supported.first { $0.blockSize == cheapest }!.totalBytes })
    }

    @Test("a recorded workload trace replays to its own images")
    func recordedWorkloadReplays() throws {
        let directory = try TraceFixtures.temporaryDirectory()
        defer { TraceFixtures.remove(directory) }
        var recorder = WorkloadTraceRecorder()
        recorder.regionBytes = 1 << 20
        recorder.epochs = 4
        recorder.epochMs = 10
        let trace = try recorder.record(to: directory)
        #expect(trace.images.count == 5)
        #expect(trace.metadata.epochMs == 10)
        #expect(trace.metadata.source == "workload:guest")
        let images = try TraceFixtures.read(trace)
        var run = TraceRun(source: .directory(trace))
        run.tracker = Kernel.preferredTracker
        let result = try run.run()
        #expect(result.epochs.count == 4)
        for epoch in result.epochs {
            let (old, new) = (images[epoch.epoch - 1], images[epoch.epoch])
            #expect(epoch.writtenPages == TraceFixtures.differingPages(old, new).count)
            #expect(epoch.dirtyBlocks == TraceFixtures.changedBlocks(old, new, blockSize: 64).values.reduce(0, +))
        }
    }
}
