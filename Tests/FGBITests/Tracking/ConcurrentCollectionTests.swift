import FGBI
import Foundation
import Synchronization
import Testing

/// Writers keep writing while the tracker collects: every write is reported by the first collection that
/// starts after it, or a later one, and (hot pages off) nothing that was never written is reported.
@Suite("Collections racing writers", .serialized)
struct ConcurrentCollectionTests {
    /// A write as a writer logged it: the page, and the number of the first collection that may report it.
    struct LoggedWrite: Sendable {
        var page: Int
        var earliestCollection: Int
    }

    @Test("no write is lost while uffd-async collects", .requiring(.uffdAsync, because: "the tracker under test"))
    func noLostWritesWithAsyncWriteProtect() throws {
        try noLostWrites(tracker: .uffdAsync, hotPages: .off)
    }

    /// Short leases, so pages also leave the hot set.
    @Test(
        "no write is lost while uffd-async collects with hot pages",
        .requiring(.uffdAsync, because: "hot pages are the uffd-async tracker's"))
    func noLostWritesWithHotPages() throws {
        try noLostWrites(
            tracker: .uffdAsync,
            hotPages: HotPagePolicy(promoteAfter: 2, leaseCollections: 6, maximumPages: 512, maximumGap: 2))
    }

    @Test("no write is lost while uffd-sync collects", .requiring(.uffdSync, because: "the tracker under test"))
    func noLostWritesWithSyncWriteProtect() throws {
        try noLostWrites(tracker: .uffdSync, hotPages: .off)
    }

    func noLostWrites(tracker kind: TrackerKind, hotPages: HotPagePolicy) throws {
        let memory = try GuestMemory.anonymous(length: 8 << 20)
        try memory.prefault()
        let tracker = try kind.makeTracker(for: memory, hotPages: hotPages)
        try tracker.start()
        defer { try? tracker.stop() }

        let nextCollection = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let logs = Mutex<[LoggedWrite]>([])
        let pageCount = memory.pageCount
        let base = UInt(bitPattern: memory.base)
        let finished = DispatchGroup()
        // At least this many collections, and on until the writers have logged enough writes to judge by (a
        // loaded machine gives them less time per collection), within a bound.
        let minimumCollections = 40
        let wantedWrites = 2000
        let writesLogged = Atomic<Int>(0)

        // Writers run on threads of their own: blocked in a uffd-sync fault they must not starve the collector.
        for writer in 0..<2 {
            finished.enter()
            Thread.detachNewThread {
                var random = SeededRandom(seed: UInt64(writer + 11))
                var log: [LoggedWrite] = []
                var serial: UInt64 = 0
                let words = UnsafeMutablePointer<UInt64>(bitPattern: base)!
                while !stop.load(ordering: .acquiring) && log.count < 200_000 {
                    // Collection k starts after the collector publishes k, so a write that reads k here
                    // happened after collection k-1 returned: collection k or a later one must report it.
                    let earliest = nextCollection.load(ordering: .acquiring)
                    let page = Int(random.next() % UInt64(pageCount))
                    serial += 1
                    words[page * (GuestMemory.pageSize / 8) + Int(serial % 512)] = (serial << 8) | UInt64(writer + 1)
                    log.append(LoggedWrite(page: page, earliestCollection: earliest))
                    if log.count & 63 == 0 { writesLogged.add(64, ordering: .relaxed) }
                }
                logs.withLock { $0 += log }
                finished.leave()
            }
        }

        var reportedBy: [[Int]] = Array(repeating: [], count: pageCount)
        var set = DirtyPageSet()
        var unscanned = 0
        var collections = 0
        while collections < minimumCollections
            || (writesLogged.load(ordering: .relaxed) < wantedWrites && collections < 100 * minimumCollections)
        {
            nextCollection.store(collections, ordering: .releasing)
            try tracker.collect(into: &set)
            unscanned = max(unscanned, tracker.pagesReportedUnscanned)
            for page in set.pages { reportedBy[page].append(collections) }
            usleep(2000)
            collections += 1
        }
        stop.store(true, ordering: .releasing)
        finished.wait()
        nextCollection.store(collections, ordering: .releasing)
        try tracker.collect(into: &set)
        for page in set.pages { reportedBy[page].append(collections) }

        let writes = logs.withLock { $0 }
        var written = Set<Int>()
        var lost = 0
        for write in writes {
            written.insert(write.page)
            if !reportedBy[write.page].contains(where: { $0 >= write.earliestCollection }) { lost += 1 }
        }
        let phantom = (0..<pageCount).filter { !reportedBy[$0].isEmpty && !written.contains($0) }
        #expect(writes.count > 1000, "the writers ran (\(writes.count) writes in \(collections) collections)")
        #expect(lost == 0, "\(lost) of \(writes.count) writes were never reported after they happened")
        if hotPages.isEnabled {
            #expect(unscanned > 0, "pages became hot") // and hot pages are reported written or not
        } else {
            #expect(phantom.isEmpty, "pages reported but never written: \(phantom.prefix(10))")
        }
    }
}
