import Testing

@testable import FGBI

/// The uffd-async tracker as a witness of writes since its last collection: what the encoder's page copies
/// rest on (``PageCopyFinder``).
@Suite("Written-page witness")
struct WrittenPageWitnessTests {
    private func writtenPages(_ tracker: AsyncWriteProtectTracker, since collection: Int, in pages: Range<Int>)
        throws -> [Int]?
    {
        var written: [Int] = []
        let answered = try tracker.writtenRuns(in: pages, sinceCollection: collection) { start, count in
            written += start..<(start + count)
        }
        return answered ? written : nil
    }

    @Test(
        "pages written since the last collection, and no answer once another is made",
        .requiring(.uffdAsync, because: "the witness is the uffd-async tracker"))
    func writesSinceTheLastCollection() throws {
        let memory = try GuestMemory.anonymous(length: 16 * GuestMemory.pageSize)
        let tracker = try AsyncWriteProtectTracker(memory: memory)
        try tracker.start()
        memory.page(1).storeBytes(of: 1, as: UInt8.self)
        memory.page(5).storeBytes(of: 1, as: UInt8.self)
        var dirty = DirtyPageSet()
        try tracker.collect(into: &dirty)
        #expect(Array(dirty.pages) == [1, 5])
        let first = tracker.collectionCount
        #expect(try writtenPages(tracker, since: first, in: 0..<16) == [])
        memory.page(3).storeBytes(of: 2, as: UInt8.self)
        memory.page(9).storeBytes(of: 2, as: UInt8.self)
        #expect(try writtenPages(tracker, since: first, in: 0..<16) == [3, 9])
        #expect(try writtenPages(tracker, since: first, in: 4..<100) == [9], "clamped to the region")
        // Asking does not re-arm: the next collection still reports the writes.
        try tracker.collect(into: &dirty)
        #expect(Array(dirty.pages) == [3, 9])
        #expect(try writtenPages(tracker, since: first, in: 0..<16) == nil, "a later collection was made")
        #expect(try writtenPages(tracker, since: tracker.collectionCount, in: 0..<16) == [])
        try tracker.stop()
        #expect(try writtenPages(tracker, since: tracker.collectionCount, in: 0..<16) == nil, "a stopped tracker")
    }

    @Test(
        "hot pages, never protected, always count as written",
        .requiring(.uffdAsync, because: "hot pages are the uffd-async tracker's"))
    func hotPagesCountAsWritten() throws {
        let memory = try GuestMemory.anonymous(length: 8 * GuestMemory.pageSize)
        let tracker = try AsyncWriteProtectTracker(
            memory: memory,
            hotPages: HotPagePolicy(promoteAfter: 2, leaseCollections: 8, maximumPages: 8, maximumGap: 0))
        try tracker.start()
        var dirty = DirtyPageSet()
        for value in 1...3 {
            memory.page(2).storeBytes(of: UInt8(value), as: UInt8.self)
            try tracker.collect(into: &dirty)
        }
        #expect(tracker.pagesReportedUnscanned > 0, "page 2 became hot")
        #expect(try writtenPages(tracker, since: tracker.collectionCount, in: 0..<8) == [2])
    }
}
