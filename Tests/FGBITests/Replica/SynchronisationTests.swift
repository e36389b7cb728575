import CSupport
import FGBIBench
import Foundation
import Testing

@testable import FGBI

#if canImport(Glibc)
    import Glibc
#endif

/// Pre-copy deltas, resynchronisation against a backup's page hashes, and taking back a synchronisation that
/// never reached its epoch: engine and replica driven directly, no network.
@Suite("Synchronisation")
struct SynchronisationTests {
    static let pages = 256

    /// A primary region of random pages, a zero-filled backup region, and a replica over it.
    struct Pair {
        let primary: GuestMemory
        let backup: GuestMemory
        let replica: Replica
        let geometry: BlockGeometry

        init(mode: ReplicationMode = .fgbi, seed: UInt64 = 1) throws {
            primary = try GuestMemory.anonymous(length: SynchronisationTests.pages * GuestMemory.pageSize)
            backup = try GuestMemory.anonymous(length: primary.length)
            geometry = try BlockGeometry(blockSize: 64)
            replica = Replica(regions: [backup], geometry: geometry)
            var random = SeededRandom(seed: seed)
            for i in 0..<(primary.length / 8) where i % 3 != 0 {
                primary.base.storeBytes(of: random.next(), toByteOffset: i * 8, as: UInt64.self)
            }
        }

        var identical: Bool { memcmp(primary.base, backup.base, primary.length) == 0 }

        var summary: ReplicaSummary {
            var hashes: [UInt64] = []
            replica.pageHashes(region: 0, into: &hashes)
            return ReplicaSummary(pageHashes: [hashes])
        }

        /// Pre-copy of every page (first pass), then one paused epoch of `dirty`; returns the pre-copy bytes.
        @discardableResult
        func synchronise(_ engine: PrimaryEngine, dirty: DirtyPageSet = DirtyPageSet()) throws -> Int {
            let capture = EpochCapture()
            try engine.capturePrecopy(
                [.init(region: 0, start: 0, count: SynchronisationTests.pages)], firstPass: true, into: capture)
            #expect(capture.isPrecopy)
            let (precopy, _) = try engine.encode(capture)
            replica.beginSession()
            try replica.apply(precopy, precopy: true)
            engine.completeFirstPass()
            try engine.capture([dirty], into: capture)
            #expect(!capture.isPrecopy)
            let (epoch, _) = try engine.encode(capture)
            try replica.apply(epoch)
            return precopy.count
        }
    }

    @Test(
        "a session synchronised by pre-copy ends bit-identical",
        arguments: [ReplicationMode.fgbi, .page, .pageLZ4, .xbzrle])
    func precopyThenEpoch(mode: ReplicationMode) throws {
        let pair = try Pair(mode: mode)
        let engine = try PrimaryEngine(regions: [pair.primary], configuration: EngineConfiguration(mode: mode))
        try pair.synchronise(engine)
        #expect(pair.identical)
        #expect(pair.replica.lastEpoch == 1, "epoch 0 was the pre-copy step, epoch 1 the committed one")
        #expect(!pair.replica.holdsUncommittedChanges)
    }

    @Test("resynchronising sends only the pages that differ", arguments: [ReplicationMode.fgbi, .page, .xbzrle])
    func resynchroniseSendsTheDifference(mode: ReplicationMode) throws {
        let pair = try Pair(mode: mode)
        let full = try pair.synchronise(
            try PrimaryEngine(regions: [pair.primary], configuration: EngineConfiguration(mode: mode)))
        // The backup misses what the primary writes next (a lost session), then a new session starts.
        var random = SeededRandom(seed: 5)
        for page in stride(from: 0, to: Self.pages, by: 16) {
            pair.primary.page(page).storeBytes(
                of: random.next(), toByteOffset: 8 * Int(random.next() % 512), as: UInt64.self)
        }
        let engine = try PrimaryEngine(
            regions: [pair.primary], configuration: EngineConfiguration(mode: mode),
            firstEpoch: 40, backupHolds: pair.summary)
        let resync = try pair.synchronise(engine)
        #expect(pair.identical)
        #expect(pair.replica.lastEpoch == 41, "the backup numbers on from the primary's epochs")
        #expect(resync * 8 < full, "resync sent \(resync) bytes, the full synchronisation \(full)")
    }

    /// A page copied (copy-on-write, say) from one the backup still holds goes as copies of the held page's
    /// blocks in the first pass, in either direction of the region, and the backup ends bit-identical.
    @Test("resynchronising sends a copy of a page the backup holds as references to it", arguments: [1, 2])
    func resynchronisationCopiesFromHeldPages(encodeThreads: Int) throws {
        let pair = try Pair()
        var configuration = EngineConfiguration()
        configuration.encodeThreads = encodeThreads
        configuration.parallelEncodeMinimumBlocks = 0
        configuration.choosesEncodeThreadsByTime = false
        try pair.synchronise(try PrimaryEngine(regions: [pair.primary], configuration: EngineConfiguration()))
        // A lost session: eight pages take the content of pages the backup holds (four sources before them in
        // the region, four after), one word of each then changed; eight more get fresh words.
        var random = SeededRandom(seed: 9)
        let copies = [(200, 10), (201, 11), (150, 12), (151, 40), (20, 120), (21, 121), (60, 250), (61, 251)]
        for (destination, source) in copies {
            pair.primary.page(destination).copyMemory(from: pair.primary.page(source), byteCount: GuestMemory.pageSize)
            pair.primary.page(destination).storeBytes(of: random.next(), toByteOffset: 8 * 37, as: UInt64.self)
        }
        for page in 100..<108 {
            for word in 0..<(GuestMemory.pageSize / 8) {
                pair.primary.page(page).storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self)
            }
        }
        let engine = try PrimaryEngine(
            regions: [pair.primary], configuration: configuration, firstEpoch: 50, backupHolds: pair.summary)
        let capture = EpochCapture()
        try engine.capturePrecopy([.init(region: 0, start: 0, count: Self.pages)], firstPass: true, into: capture)
        #expect(capture.firstPassPagesAfter == nil, "a resynchronisation learns its whole first pass")
        let (precopy, statistics) = try engine.encode(capture)
        pair.replica.beginSession()
        try pair.replica.apply(precopy, precopy: true)
        engine.completeFirstPass()
        try engine.capture([DirtyPageSet()], into: capture)
        try pair.replica.apply(try engine.encode(capture).delta)
        #expect(pair.identical)
        #expect(statistics.pagesAlreadyHeld == Self.pages - 16)
        #expect(
            statistics.sharedHits == copies.count * 63,
            "\(statistics.sharedHits) blocks of the copied pages went as copies of held ones (all but the written one)")
        // The fresh pages' words are random: 8 pages of them, and little more for the copied pages.
        #expect(
            precopy.count < 8 * GuestMemory.pageSize + 8 * GuestMemory.pageSize / 4,
            "the first pass sent \(precopy.count) bytes")

        // A held page learnt as a source changes; an epoch later another page takes its old content: the
        // backup no longer holds that at the source, so it must not be named.
        let old = Array(UnsafeRawBufferPointer(start: pair.primary.page(12), count: GuestMemory.pageSize))
        for word in 0..<(GuestMemory.pageSize / 8) {
            pair.primary.page(12).storeBytes(of: random.next(), toByteOffset: word * 8, as: UInt64.self)
        }
        try engine.capture([DirtyPageSet(pages: [12])], into: capture)
        try pair.replica.apply(try engine.encode(capture).delta)
        pair.primary.page(90).copyMemory(from: old, byteCount: GuestMemory.pageSize)
        try engine.capture([DirtyPageSet(pages: [90])], into: capture)
        try pair.replica.apply(try engine.encode(capture).delta)
        #expect(pair.identical, "a page took the old content of a held page that has changed since")
    }

    @Test("a synchronisation that never reaches its epoch is taken back", arguments: [true, false])
    func unfinishedSynchronisationRollsBack(heldEpoch: Bool) throws {
        let pair = try Pair()
        var summary: ReplicaSummary?
        if heldEpoch {
            try pair.synchronise(try PrimaryEngine(regions: [pair.primary], configuration: EngineConfiguration()))
            summary = pair.summary
        }
        let committed = Array(UnsafeRawBufferPointer(start: pair.backup.base, count: pair.backup.length))
        let epochBefore = pair.replica.lastEpoch
        // The primary changes every page, then a new session's pre-copy reaches the backup but its epoch does not.
        for page in 0..<Self.pages { pair.primary.page(page).storeBytes(of: UInt64(page) &+ 0xABCD, as: UInt64.self) }
        let engine = try PrimaryEngine(
            regions: [pair.primary], configuration: EngineConfiguration(), firstEpoch: 10, backupHolds: summary)
        let capture = EpochCapture()
        try engine.capturePrecopy([.init(region: 0, start: 0, count: Self.pages)], firstPass: true, into: capture)
        pair.replica.beginSession()
        try pair.replica.apply(try engine.encode(capture).delta, precopy: true)
        #expect(pair.replica.holdsUncommittedChanges)
        #expect(pair.replica.lastEpoch == epochBefore, "a pre-copy commits nothing")
        #expect(!committed.withUnsafeBytes { memcmp($0.baseAddress!, pair.backup.base, pair.backup.length) == 0 })
        pair.replica.rollBack()
        #expect(
            committed.withUnsafeBytes { memcmp($0.baseAddress!, pair.backup.base, pair.backup.length) == 0 },
            "the replica is back at its committed epoch")
        #expect(!pair.replica.holdsUncommittedChanges)
        // A later session may start again from there.
        let next = try PrimaryEngine(
            regions: [pair.primary], configuration: EngineConfiguration(), firstEpoch: 20,
            backupHolds: heldEpoch ? pair.summary : nil)
        try pair.synchronise(next)
        #expect(pair.identical)
    }

    @Test func summaryFramesRoundTripAndRejectDisorder() throws {
        let summary = ReplicaSummary(pageHashes: [(0..<20_000).map { UInt64($0) &* 0x9E37 }, [1, 2, 3]])
        let payloads = summary.framePayloads()
        #expect(payloads.count == 4)
        #expect(payloads.allSatisfy { $0.count <= 64 << 10 })
        var assembler = ReplicaSummary.Assembler(pageCounts: [20_000, 3])
        for payload in payloads { try assembler.add(payload) }
        #expect(assembler.isComplete)
        #expect(assembler.summary == summary)

        var skipping = ReplicaSummary.Assembler(pageCounts: [20_000, 3])
        #expect(throws: WireError.self) { try skipping.add(payloads[1]) }
        var short = ReplicaSummary.Assembler(pageCounts: [20_000, 3])
        #expect(throws: WireError.self) { try short.add(Array(payloads[0].prefix(20))) }
        var tooMany = ReplicaSummary.Assembler(pageCounts: [10, 3])
        #expect(throws: WireError.self) { try tooMany.add(payloads[0]) }
    }
}

/// Replication stopped in the middle of a session's first pass: the final (full) epoch must still leave the
/// backup exactly at the primary's memory, even where pre-copy already overwrote what the summary describes.
@Suite("Synchronisation cut short")
struct SynchronisationCutShortTests {
    @Test("a full epoch after part of a first pass is exact", arguments: [ReplicationMode.fgbi, .page, .xbzrle])
    func fullEpochAfterPartialFirstPass(mode: ReplicationMode) throws {
        let pair = try SynchronisationTests.Pair(mode: mode)
        try pair.synchronise(try PrimaryEngine(regions: [pair.primary], configuration: EngineConfiguration(mode: mode)))
        let held = Array(UnsafeRawBufferPointer(start: pair.primary.page(3), count: GuestMemory.pageSize))
        // New session against a backup that holds content: half the first pass goes out as pre-copy...
        for page in 0..<SynchronisationTests.pages {
            pair.primary.page(page).storeBytes(of: UInt64(page) &* 77 &+ 1, as: UInt64.self)
        }
        let engine = try PrimaryEngine(
            regions: [pair.primary], configuration: EngineConfiguration(mode: mode), firstEpoch: 30,
            backupHolds: pair.summary)
        let capture = EpochCapture()
        try engine.capturePrecopy(
            [.init(region: 0, start: 0, count: SynchronisationTests.pages / 2)], firstPass: true, into: capture)
        pair.replica.beginSession()
        try pair.replica.apply(try engine.encode(capture).delta, precopy: true)
        // ...then the guest puts page 3 back to what the backup's summary said, and zeroes a block of page 5
        // that pre-copy sent non-zero; replication stops: the final epoch is a full one.
        pair.primary.page(3).copyMemory(from: held, byteCount: GuestMemory.pageSize)
        pair.primary.page(5).initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        try engine.capture([DirtyPageSet()], into: capture)
        try pair.replica.apply(try engine.encode(capture).delta)
        #expect(pair.identical, "the backup differs from the primary after the final epoch")
    }

    @Test func aDeltaAtTheLastEpochNumberIsRefusedNotATrap() throws {
        let pair = try SynchronisationTests.Pair()
        let engine = try PrimaryEngine(regions: [pair.primary])
        let capture = EpochCapture()
        try engine.capture([], into: capture)
        var delta = try engine.encode(capture).delta
        // Epoch field at offset 16, checksum (XXH3-64 of everything before it) in the last 8 bytes.
        withUnsafeBytes(of: UInt64.max.littleEndian) { delta.replaceSubrange(16..<24, with: $0) }
        DeltaBodies.recomputeChecksum(&delta)
        pair.replica.beginSession()
        #expect(throws: DeltaError.self) { try pair.replica.apply(delta) }
        #expect(pair.replica.lastEpoch == nil)
    }
}
