import Foundation
import Testing

@testable import FGBI

/// The hot-page policy: pages written every epoch stop being scanned, and no write is ever lost for it.
@Suite("Hot pages")
struct HotPageTests {
    /// The kernel's side as PAGEMAP_SCAN sees it: a page written since it was last scanned is "written"; a
    /// scan reports and re-protects the written pages of its run. Counts first writes (the faults a guest pays).
    struct ProtectionModel {
        var written: [Bool]
        var firstWrites = 0
        var scanCalls = 0

        init(pages: Int) { written = Array(repeating: false, count: pages) }

        mutating func write(_ page: Int) {
            if !written[page] { firstWrites += 1 }
            written[page] = true
        }

        mutating func scan(_ run: PageRun, into set: inout DirtyPageSet) {
            scanCalls += 1
            for page in run.start..<run.end where written[page] {
                written[page] = false
                set.insert(start: page, count: 1)
            }
        }
    }

    /// A hot-page set over the model, collecting into `set`.
    struct Harness {
        var model: ProtectionModel
        var hot: HotPageSet
        var set = DirtyPageSet()

        init(_ policy: HotPagePolicy, pages: Int) {
            model = ProtectionModel(pages: pages)
            hot = HotPageSet(policy: policy, pageCount: pages)
        }

        mutating func collect() {
            var model = self.model
            hot.collect(into: &set) { run, written in model.scan(run, into: &written) }
            self.model = model
        }
    }

    static let policy = HotPagePolicy(promoteAfter: 2, leaseCollections: 8, maximumPages: 64, maximumGap: 2)

    /// Runs `collections` epochs of `writes(epoch)` against a model and a hot-page set; checks that every page
    /// written in an epoch is reported at its end. Returns the model and the unscanned counts per epoch.
    func run(_ policy: HotPagePolicy, pages: Int, collections: Int, writes: (Int) -> [Int]) -> (
        ProtectionModel, [Int], HotPageSet
    ) {
        var harness = Harness(policy, pages: pages)
        var unscanned: [Int] = []
        for epoch in 0..<collections {
            let pagesWritten = writes(epoch)
            for page in pagesWritten { harness.model.write(page) }
            harness.collect()
            let missing = Set(pagesWritten).filter { !harness.set.contains($0) }
            #expect(missing.isEmpty, "epoch \(epoch): written pages \(missing.sorted().prefix(8)) not reported")
            unscanned.append(harness.hot.reportedUnscanned)
        }
        return (harness.model, unscanned, harness.hot)
    }

    @Test("pages written every epoch stop paying first writes")
    func everyEpochPages() {
        let steady = Array(100..<140)
        let (model, unscanned, _) = run(Self.policy, pages: 1024, collections: 40) { _ in steady }
        let (exact, _, _) = run(.off, pages: 1024, collections: 40) { _ in steady }
        #expect(exact.firstWrites == 40 * 40, "without hot pages every epoch pays every first write")
        // Two epochs to earn the place, one more write to clear the protection the promoting scan set, then
        // free until the lease ends (8 to 12 collections) and the page must earn it again.
        #expect(model.firstWrites < exact.firstWrites / 3, "first writes \(model.firstWrites) of \(exact.firstWrites)")
        #expect(unscanned.max() == steady.count, "the 40 pages became hot: \(unscanned)")
    }

    @Test("a page that stops being written is scanned again once its lease ends")
    func leaseEnds() {
        let (_, unscanned, hot) = run(Self.policy, pages: 256, collections: 30) { epoch in epoch < 5 ? [7, 9, 200] : []
        }
        #expect(unscanned[4] == 4, "7, 8 (a gap page) and 9, and 200, reported unscanned: \(unscanned)")
        // Promoted at collection 2 (index 1); leases of 8 plus up to 4 more end by index 13.
        let afterLeases = unscanned[15...]
        #expect(afterLeases.allSatisfy { $0 == 0 }, "leases ended: \(unscanned)")
        #expect(hot.hotCount == 0)
    }

    @Test("a hot page captured unchanged loses its lease early, and a write after is still reported")
    func demotion() {
        var harness = Harness(
            HotPagePolicy(promoteAfter: 2, leaseCollections: 16, maximumPages: 64, maximumGap: 0), pages: 64)
        // Pages 10 and 20 written twice: hot.
        for _ in 0..<2 {
            harness.model.write(10)
            harness.model.write(20)
            harness.collect()
        }
        harness.collect()
        #expect(harness.hot.hotCount == 2 && harness.set.contains(10) && harness.set.contains(20))
        // Page 10 keeps being captured unchanged: after a quarter of the lease (4 times) it loses it.
        for _ in 0..<3 { harness.hot.noteUnchanged([10]) }
        harness.collect()
        #expect(harness.hot.hotCount == 2 && harness.hot.demotions == 0, "3 unchanged captures are not enough")
        harness.hot.noteUnchanged([10, 30]) // 30 is not hot: ignored
        #expect(harness.hot.demotions == 1)
        harness.model.write(10) // written after the demotion was decided: the next collection's scan reports it
        harness.collect()
        #expect(harness.hot.hotCount == 1, "page 10 is scanned again")
        #expect(harness.set.contains(10) && harness.set.contains(20))
        harness.collect()
        #expect(!harness.set.contains(10) && harness.set.contains(20), "page 10 protected again; 20 still hot")
    }

    @Test("pages written in two epochs and then never again leave the hot set early with feedback")
    func burstThenQuiet() {
        var harness = Harness(
            HotPagePolicy(promoteAfter: 2, leaseCollections: 16, maximumPages: 1024, maximumGap: 2), pages: 1024)
        var unscanned: [Int] = []
        for epoch in 0..<20 {
            if epoch < 2 { for page in 200..<300 { harness.model.write(page) } }
            harness.collect()
            unscanned.append(harness.hot.reportedUnscanned)
            // What the engine would find: every captured page of the burst is unchanged from epoch 2 on.
            if epoch >= 2 { harness.hot.noteUnchanged(harness.set.pages.filter { (200..<300).contains($0) }) }
        }
        #expect(unscanned[2] == 100, "the burst's pages became hot: \(unscanned)")
        #expect(
            unscanned[7...].allSatisfy { $0 == 0 },
            "demoted after 4 unchanged captures, not 16-24 epochs later: \(unscanned)")
    }

    @Test("the hot set stays within its bound")
    func bounded() {
        let policy = HotPagePolicy(promoteAfter: 2, leaseCollections: 100, maximumPages: 10, maximumGap: 0)
        let pages: [Int] = stride(from: 0, to: 500, by: 5).map { $0 }
        let (_, unscanned, hot) = run(policy, pages: 512, collections: 12) { _ in pages }
        #expect(hot.hotCount == 10)
        #expect(unscanned.max() == 10)
    }

    @Test("random writes with a hot core: nothing lost, first writes saved", arguments: [UInt64(1), 2, 3])
    func randomWithHotCore(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let draws = (0..<60).map { _ in (0..<80).map { _ in Int(random.next() % 4096) } }
        let core = Array(stride(from: 3000, to: 3300, by: 3))
        let writes: (Int) -> [Int] = { epoch in draws[epoch] + (epoch % 7 == 6 ? [] : core) }
        let (model, _, _) = run(
            HotPagePolicy(promoteAfter: 2, leaseCollections: 16, maximumPages: 4096, maximumGap: 2),
            pages: 4096, collections: 60, writes: writes)
        let (exact, _, _) = run(.off, pages: 4096, collections: 60, writes: writes)
        #expect(
            model.firstWrites < exact.firstWrites * 2 / 3, "first writes \(model.firstWrites) of \(exact.firstWrites)")
    }

    @Test("policy parsing and checks")
    func parsing() throws {
        #expect(try HotPagePolicy.parse("off") == .off)
        #expect(try HotPagePolicy.parse("on") == .replicationDefault)
        let custom = try HotPagePolicy.parse("3:20:512")
        #expect(
            custom.promoteAfter == 3 && custom.leaseCollections == 20 && custom.maximumPages == 512
                && custom.demotesUnchanged)
        #expect(try HotPagePolicy.parse("2:16:64:full").demotesUnchanged == false)
        for bad in [
            "", "2:16", "1:16:100", "2:0:100", "2:16:0", "a:b:c", "2:70000:10", "2:16:64:half", "2:16:64:full:full",
        ] {
            #expect(throws: FGBIError.self, "'\(bad)'") { _ = try HotPagePolicy.parse(bad) }
        }
        #expect(throws: FGBIError.self) {
            _ = try AsyncWriteProtectTracker(
                memory: try GuestMemory.anonymous(length: 4096),
                hotPages: HotPagePolicy(promoteAfter: 1, leaseCollections: 4, maximumPages: 4, maximumGap: 0))
        }
    }
}
