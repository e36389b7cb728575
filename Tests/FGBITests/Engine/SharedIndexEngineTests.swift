import Dispatch
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Several engines (guests), each with its own replica (backup), sharing one content index: every replica
/// stays equal to its own guest's memory, whatever the other guests hold, with forced collisions and
/// evictions, and encoded concurrently.
@Suite("Engines sharing a content index")
struct SharedIndexEngineTests {
    static func guests(_ count: Int, configuration: EngineConfiguration) throws -> [EngineHarness] {
        try (0..<count).map { _ in try EngineHarness(configuration: configuration, regions: 2, pagesPerRegion: 96) }
    }

    /// Writes the same initial content into every guest (as if booted from one image), then returns
    /// mutators that diverge.
    static func bootAlike(_ guests: [EngineHarness], blockSize: Int) -> [Mutator] {
        for guest in guests {
            var same = Mutator(regions: guest.primary, blockSize: blockSize, seed: 99)
            for _ in 0..<250 { same.act() }
        }
        return guests.enumerated().map { Mutator(regions: $1.primary, blockSize: blockSize, seed: 1000 + UInt64($0)) }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var blockSize: Int
        var keying: IndexKeying
        var budgetBlocks: Int
        var testDescription: String {
            "\(blockSize)B \(keying == .fullHash ? "full hash" : "forced collisions") budget \(budgetBlocks) blocks"
        }
    }

    @Test(
        "identical guests diverge exactly",
        arguments: [
            Case(blockSize: 64, keying: .fullHash, budgetBlocks: 1 << 14),
            Case(blockSize: 64, keying: .fullHash, budgetBlocks: 512), // evictions across guests
            Case(blockSize: 64, keying: .lowBits(3), budgetBlocks: 1 << 12),
            Case(blockSize: 256, keying: .lowBits(1), budgetBlocks: 256),
            Case(blockSize: 1024, keying: .fullHash, budgetBlocks: 64),
        ])
    func identicalGuestsDivergeExactly(_ testCase: Case) throws {
        let shared = try SharedContentIndex(
            blockSize: testCase.blockSize, budgetBytes: testCase.budgetBlocks * testCase.blockSize,
            keying: testCase.keying)
        var configuration = EngineConfiguration(blockSize: testCase.blockSize)
        configuration.sharedIndex = shared
        let guests = try Self.guests(3, configuration: configuration)
        var mutators = Self.bootAlike(guests, blockSize: testCase.blockSize)
        for guest in guests { try guest.step([]) }
        let holdsAGuest = testCase.budgetBlocks * testCase.blockSize >= guests[0].primary.reduce(0) { $0 + $1.length }
        if holdsAGuest && testCase.keying == .fullHash {
            #expect(shared.statistics.attachments > 0, "the second and third guest share the first one's copies")
        }
        for epoch in 1...15 {
            // Rotate the order so every guest's additions evict the others' copies at some point.
            for offset in 0..<guests.count {
                let g = (epoch + offset) % guests.count
                for _ in 0..<(epoch % 4 == 0 ? 0 : 50) { mutators[g].act() }
                try guests[g].step(mutators[g].takeDirty())
                #expect(
                    guests[g].identical, "guest \(g) epoch \(epoch): first difference at \(guests[g].firstDifference)")
            }
        }
        for (g, guest) in guests.enumerated() {
            for (o, other) in guests.enumerated() where o != g {
                #expect(
                    memcmp(guest.backup[0].base, other.primary[0].base, guest.backup[0].length) != 0,
                    "guest \(g)'s replica must not equal guest \(o)'s memory once they diverged")
            }
        }
        let totals = guests.reduce(into: EpochStatistics()) { $0.accumulate($1.totals) }
        if testCase.keying != .fullHash { #expect(totals.collisions > 0, "forced collisions are caught bitwise") }
        if !holdsAGuest && testCase.keying == .fullHash { #expect(shared.statistics.evictions > 0) }
    }

    @Test func anotherGuestsContentNeverBecomesAReference() throws {
        let shared = try SharedContentIndex()
        var configuration = EngineConfiguration()
        configuration.sharedIndex = shared
        let a = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 16)
        let b = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 16)
        try a.step([])
        try b.step([])
        // A writes a page of distinct blocks; a moment later B writes the very same bytes elsewhere.
        var random = SeededRandom(seed: 3)
        let page = (0..<GuestMemory.pageSize).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        page.withUnsafeBytes { a.primary[0].page(3).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        page.withUnsafeBytes { b.primary[0].page(7).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try a.step([DirtyPageSet(pages: [3])])
        let (_, statistics) = try b.step([DirtyPageSet(pages: [7])])
        #expect(b.identical && a.identical)
        #expect(statistics.sharedHits == 0, "B's backup holds none of it: every block goes as a literal")
        #expect(statistics.literalBlocks == GuestMemory.pageSize / 64)
        #expect(shared.statistics.attachments == GuestMemory.pageSize / 64, "but B's entries use A's stored copies")
        #expect(shared.statistics.storedCopies == GuestMemory.pageSize / 64)
        // Within B, the content is now a reference to B's own location.
        page.withUnsafeBytes { b.primary[0].page(9).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let (_, again) = try b.step([DirtyPageSet(pages: [9])])
        #expect(b.identical && again.sharedHits == GuestMemory.pageSize / 64)
    }

    @Test func identicalGuestsKeepOneCopyWhereSeparateIndexesKeepOneEach() throws {
        let count = 3
        var separate = EngineConfiguration()
        separate.contentBudgetBytes = 4 << 20
        var sharing = separate
        let shared = try SharedContentIndex(budgetBytes: 4 << 20)
        sharing.sharedIndex = shared
        let alone = try Self.guests(count, configuration: separate)
        let together = try Self.guests(count, configuration: sharing)
        _ = Self.bootAlike(alone, blockSize: 64)
        _ = Self.bootAlike(together, blockSize: 64)
        let separateCopies = try alone.reduce(0) { $0 + (try $1.step([]).statistics.indexEntries) }
        var sharedWire = 0
        for guest in together { sharedWire += try guest.step([]).delta.count }
        let separateWire = alone.reduce(0) { $0 + $1.totals.wireBytes }
        let statistics = shared.statistics
        // A guest's own index looks up only anchors in its table (it finds runs by location), so it may keep
        // a few more copies of the same content than the shared index, which looks up every block.
        #expect(statistics.storedCopies * count == statistics.entries, "one copy for three identical guests")
        #expect(
            statistics.entries <= separateCopies && statistics.entries * 100 >= separateCopies * 98,
            "each guest knows what its backup holds either way: \(statistics.entries) entries against \(separateCopies)"
        )
        #expect(statistics.bytesSavedBySharing == (count - 1) * statistics.storedCopies * 64)
        #expect(
            sharedWire <= separateWire, "sharing copies adds nothing on the wire: \(sharedWire) against \(separateWire)"
        )
        #expect(together.allSatisfy(\.identical) && alone.allSatisfy(\.identical))
    }

    @Test func guestsEncodingConcurrentlyStayExact() throws {
        let shared = try SharedContentIndex(budgetBytes: 1024 * 64, keying: .lowBits(6))
        var configuration = EngineConfiguration()
        configuration.sharedIndex = shared
        configuration.captureThreads = 1
        let harnesses = try Self.guests(3, configuration: configuration)
        let mutators = PthreadLock(Self.bootAlike(harnesses, blockSize: 64))
        // Each thread steps only its own guest.
        final class Guests: @unchecked Sendable {
            let all: [EngineHarness]
            init(_ all: [EngineHarness]) { self.all = all }
        }
        let guests = Guests(harnesses)
        let failures = PthreadLock<[String]>([])
        DispatchQueue.concurrentPerform(iterations: harnesses.count) { g in
            let guest = guests.all[g]
            do {
                try guest.step([])
                for epoch in 1...40 {
                    let dirty = mutators.withLock { mutators -> [DirtyPageSet] in
                        for _ in 0..<40 { mutators[g].act() }
                        return mutators[g].takeDirty()
                    }
                    try guest.step(dirty)
                    if !guest.identical {
                        failures.withLock { $0.append("guest \(g) epoch \(epoch): \(guest.firstDifference)") }
                    }
                }
            } catch {
                failures.withLock { $0.append("guest \(g): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(shared.statistics.members == 3)
    }

    @Test func anEngineLeavingFreesItsEntries() throws {
        let shared = try SharedContentIndex(budgetBytes: 1 << 20)
        var configuration = EngineConfiguration()
        configuration.sharedIndex = shared
        var first: EngineHarness? = try EngineHarness(configuration: configuration, regions: 1, pagesPerRegion: 32)
        var mutator = Mutator(regions: first!.primary, blockSize: 64, seed: 4)
        for _ in 0..<100 { mutator.act() }
        try first!.step([])
        #expect(shared.statistics.entries > 0 && shared.statistics.members == 1)
        first = nil
        #expect(shared.statistics == SharedContentIndex.Statistics(metadataBytes: shared.metadataBytes))
    }

    @Test func aSharedIndexNeedsTheFGBIModeAndItsBlockSize() throws {
        let shared = try SharedContentIndex(blockSize: 128)
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        var configuration = EngineConfiguration(mode: .page)
        configuration.sharedIndex = shared
        #expect(throws: FGBIError.self) { try PrimaryEngine(regions: [memory], configuration: configuration) }
        configuration.mode = .fgbi
        #expect(throws: FGBIError.self) { try PrimaryEngine(regions: [memory], configuration: configuration) }
        configuration.blockSize = 128
        _ = try PrimaryEngine(regions: [memory], configuration: configuration)
        #expect(shared.statistics.members == 0, "the engine left when it was released")
    }
}
