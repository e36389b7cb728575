import FGBI
import Testing

@Suite("DirtyPageSet")
struct DirtyPageSetTests {
    @Test func mergesAdjacentAndOverlappingRuns() {
        var set = DirtyPageSet()
        set.append(start: 2, count: 3)
        set.append(start: 5, count: 1)
        set.append(start: 5, count: 4)
        set.append(20)
        #expect(set.runs == [PageRun(start: 2, count: 7), PageRun(start: 20, count: 1)])
        #expect(set.pageCount == 8)
        #expect(Array(set.pages) == [2, 3, 4, 5, 6, 7, 8, 20])
    }

    @Test func buildsFromUnorderedPagesWithDuplicates() {
        let set = DirtyPageSet(pages: [9, 1, 2, 9, 3, 7])
        #expect(set.runs == [PageRun(start: 1, count: 3), PageRun(start: 7, count: 1), PageRun(start: 9, count: 1)])
        #expect(set.pageCount == 5)
    }

    @Test func containsMatchesMembership() {
        var random = SeededRandom(seed: 5)
        let pages = Set((0..<300).map { _ in Int(random.next() % 1000) })
        let set = DirtyPageSet(pages: pages)
        for page in 0..<1000 { #expect(set.contains(page) == pages.contains(page)) }
        #expect(set.pageCount == pages.count)
    }

    @Test func removeAllEmptiesTheSet() {
        var set = DirtyPageSet(pages: [1, 2, 3])
        set.removeAll()
        #expect(set.isEmpty && set.runs.isEmpty && set == DirtyPageSet())
    }
}
