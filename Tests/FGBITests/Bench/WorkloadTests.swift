import FGBI
import FGBIBench
import Foundation
import Testing

/// The benchmark workloads write what their documentation says, reproducibly from a seed.
@Suite("benchmark workloads")
struct WorkloadTests {
    /// Pages of `memory` that differ from `before`.
    private func changedPages(_ memory: GuestMemory, from before: [UInt8]) -> [Int] {
        (0..<memory.pageCount).filter { page in
            before.withUnsafeBytes {
                memcmp(memory.page(page), $0.baseAddress! + page * GuestMemory.pageSize, GuestMemory.pageSize) != 0
            }
        }
    }

    private func snapshot(_ memory: GuestMemory) -> [UInt8] { Array(UnsafeRawBufferPointer(memory.bytes)) }

    @Test func streamingRewritesOneContiguousRunOfWholePages() throws {
        let memory = try GuestMemory.anonymous(length: 4 << 20)
        SyntheticWorkload.fillInitial(memory, seed: 3)
        let before = snapshot(memory)
        var random = SeededRandom(seed: 5)
        SyntheticWorkload.streaming.writeEpoch(memory, pages: 100, random: &random)
        let changed = changedPages(memory, from: before)
        #expect(changed.count == 100)
        // One run, possibly wrapping around the region's end.
        let gaps = zip(changed, changed.dropFirst()).filter { $1 != $0 + 1 }.count
        #expect(
            gaps == 0 || (gaps == 1 && changed.first == 0 && changed.last == memory.pageCount - 1), "runs: \(changed)")
    }

    @Test func zipfConcentratesWritesOnAFewPages() throws {
        let memory = try GuestMemory.anonymous(length: 16 << 20) // 4,096 zeroed pages
        var random = SeededRandom(seed: 9)
        SyntheticWorkload.zipf.writeEpoch(memory, pages: 2000, random: &random)
        // Each write stores one to four nonzero words; count them per page.
        let wordsPerPage = GuestMemory.pageSize / 8
        let stored = (0..<memory.pageCount).map { page in
            let words = memory.page(page).assumingMemoryBound(to: UInt64.self)
            return (0..<wordsPerPage).reduce(0) { $0 + (words[$1] != 0 ? 1 : 0) }
        }
        let total = stored.reduce(0, +)
        // Density 1/rank over 4,096 ranks: the top 41 pages (1%) take about ln(41)/ln(4096), ~45%, of the writes.
        let top = stored.sorted(by: >).prefix(memory.pageCount / 100).reduce(0, +)
        #expect(total > 3000, "2,000 writes of one to four words")
        #expect(Double(top) / Double(total) > 0.3, "top 1% of pages hold \(top) of \(total) stored words")
        #expect(stored.filter { $0 > 0 }.count > 200, "the tail is written too")
    }

    @Test func lockstepGuestsFromOneSeedWriteTheSameHistory() throws {
        let first = try GuestMemory.anonymous(length: 2 << 20)
        let second = try GuestMemory.anonymous(length: 2 << 20)
        let a = try LockstepGuest(memory: first, source: .workload(.guest, pagesPerEpoch: 50, seed: 77))
        let b = try LockstepGuest(memory: second, source: .workload(.guest, pagesPerEpoch: 50, seed: 77))
        #expect(memcmp(first.base, second.base, first.length) == 0)
        for _ in 0..<5 {
            let before = snapshot(first)
            #expect(try a.writeNext())
            #expect(try b.writeNext())
            #expect(memcmp(first.base, second.base, first.length) == 0)
            #expect(!changedPages(first, from: before).isEmpty)
        }
    }

    @Test func chartsUseALogarithmicAxisWhenValuesSpanDecades() {
        let wide = LineChartSVG(
            title: "bytes", xLabel: "epoch", yLabel: "bytes",
            series: [
                .init(name: "fgbi", values: [1_000, 2_000]), .init(name: "page", values: [4_000_000, 3_000_000]),
            ]
        ).rendered
        #expect(wide.hasPrefix("<svg") && wide.hasSuffix("</svg>\n"))
        #expect(wide.contains(">1k<") && wide.contains(">10M<"), "decade ticks from 1k to 10M")
        #expect(wide.components(separatedBy: "<polyline").count == 3)
        let narrow = LineChartSVG(
            title: "pause <ms>", xLabel: "epoch", yLabel: "ms", series: [.init(name: "a", values: [1, 2, 3])]
        ).rendered
        #expect(!narrow.contains(">1k<") && narrow.contains("pause &lt;ms&gt;"))
    }
}
