import FGBI
import FGBIBench
import Testing

/// Every backend reports exactly the pages written, and nothing else, epoch after epoch; and agrees with the
/// `scan` backend watching the same memory. One nested suite per backend runs the checks; where this kernel
/// lacks a backend, its suite is skipped with the reason (and a memfd test where it lacks that).
@Suite("Tracker exactness", .serialized)
struct TrackerExactnessTests {
    enum RegionKind: String, CaseIterable, CustomTestStringConvertible {
        case anonymous, memfd
        var testDescription: String { rawValue }

        func make(length: Int) throws -> GuestMemory {
            switch self {
            case .anonymous: return try GuestMemory.anonymous(length: length)
            case .memfd: return try GuestMemory.memfd(length: length, name: "fgbi-test")
            }
        }
    }

    /// Region sizes from one page to 64 MiB; the 1 GiB case has a test of its own.
    static let sizes = [4096, 64 << 10, (8 << 20) + 4096, 64 << 20]

    /// Runs `epochs` random epochs on a region and checks each collection against the writes and `scan`.
    /// Half the cases never pre-fault, so first writes land on never-touched pages.
    static func checkEpochs(
        tracker kind: TrackerKind, region: RegionKind, length: Int, epochs: Int, budget: Int, seed: UInt64
    ) throws {
        let memory = try region.make(length: length)
        let prefault = seed % 2 == 0
        if prefault { try memory.prefault() }
        let tracker = try kind.makeTracker(for: memory)
        let reference = ScanTracker(memory: memory)
        try reference.start()
        try tracker.start()
        defer { try? tracker.stop() }
        var log = WriteLog(memory: memory, seed: seed)
        var reported = DirtyPageSet()
        var scanned = DirtyPageSet()
        for epoch in 0..<epochs {
            log.reset()
            _ = log.randomEpoch(budget: epoch == 1 ? 0 : budget)
            try tracker.collect(into: &reported)
            try reference.collect(into: &scanned)
            let truth = DirtyPageSet(pages: log.pages)
            #expect(
                reported == truth,
                """
                epoch \(epoch) of \(kind) on \(region) \(length) bytes (prefault: \(prefault)): reported \
                \(reported.pageCount), wrote \(truth.pageCount)
                """
            )
            #expect(scanned == truth, "epoch \(epoch): scan reference disagrees with the writes")
        }
    }

    /// Random epochs on every region size, from one page to 64 MiB.
    static func randomPatterns(tracker: TrackerKind, region: RegionKind) throws {
        for (index, length) in sizes.enumerated() {
            let pages = length / GuestMemory.pageSize
            try checkEpochs(
                tracker: tracker, region: region, length: length, epochs: 6,
                budget: min(pages * 2, 3000), seed: UInt64(index + 1))
        }
    }

    static func oneGiB(tracker: TrackerKind, region: RegionKind) throws {
        try checkEpochs(tracker: tracker, region: region, length: 1 << 30, epochs: 3, budget: 4000, seed: 7)
    }

    /// Writes from several threads.
    static func severalThreads(tracker kind: TrackerKind) throws {
        let memory = try GuestMemory.anonymous(length: 32 << 20)
        let tracker = try kind.makeTracker(for: memory)
        try tracker.start()
        defer { try? tracker.stop() }
        var reported = DirtyPageSet()
        for epoch in 0..<5 {
            let written = TrackingDemo.writeConcurrently(
                memory, threads: 4, writesPerThread: 1500, seed: UInt64(epoch + 100), hotPages: 512)
            try tracker.collect(into: &reported)
            #expect(reported == DirtyPageSet(pages: written), "epoch \(epoch)")
        }
    }

    /// An epoch without writes reports nothing.
    static func quietEpochs(tracker kind: TrackerKind) throws {
        let memory = try GuestMemory.anonymous(length: 4 << 20)
        try memory.prefault()
        let tracker = try kind.makeTracker(for: memory)
        try tracker.start()
        defer { try? tracker.stop() }
        var reported = DirtyPageSet()
        var log = WriteLog(memory: memory, seed: 3)
        var sink: UInt8 = 0
        for page in 0..<memory.pageCount { sink ^= log.read(page: page) }
        for _ in 0..<3 {
            try tracker.collect(into: &reported)
            #expect(reported.isEmpty, "reads alone must not count as writes (\(sink))")
        }
    }

    /// Stopped trackers refuse to collect.
    static func lifecycle(tracker kind: TrackerKind) throws {
        let memory = try GuestMemory.anonymous(length: 1 << 20)
        let tracker = try kind.makeTracker(for: memory)
        var set = DirtyPageSet()
        #expect(throws: FGBIError.self) { try tracker.collect(into: &set) }
        try tracker.start()
        #expect(throws: FGBIError.self) { try tracker.start() }
        try tracker.stop()
        try tracker.stop()
        #expect(throws: FGBIError.self) { try tracker.collect(into: &set) }
        // After stop the memory is writable without tracking.
        memory.base.storeBytes(of: 1, as: UInt64.self)
    }
}

extension TrackerExactnessTests {
    @Suite("Tracker exactness: uffd-async", .requiring(.uffdAsync, because: "the tracker under test"))
    struct UffdAsync {
        @Test("random write patterns") func randomPatterns() throws {
            try TrackerExactnessTests.randomPatterns(tracker: .uffdAsync, region: .anonymous)
        }
        @Test(
            "random write patterns on memfd",
            .requiring(.uffdAsync, .memfd(name: ""), because: "the tracker on a memfd region"))
        func randomPatternsOnMemfd() throws {
            try TrackerExactnessTests.randomPatterns(tracker: .uffdAsync, region: .memfd)
        }
        @Test("1 GiB region") func oneGiB() throws {
            try TrackerExactnessTests.oneGiB(tracker: .uffdAsync, region: .anonymous)
        }
        @Test("1 GiB memfd region", .requiring(.uffdAsync, .memfd(name: ""), because: "the tracker on a memfd region"))
        func oneGiBOnMemfd() throws { try TrackerExactnessTests.oneGiB(tracker: .uffdAsync, region: .memfd) }
        @Test("writes from several threads") func severalThreads() throws {
            try TrackerExactnessTests.severalThreads(tracker: .uffdAsync)
        }
        @Test("an epoch without writes reports nothing") func quietEpochs() throws {
            try TrackerExactnessTests.quietEpochs(tracker: .uffdAsync)
        }
        @Test("stopped trackers refuse to collect") func lifecycle() throws {
            try TrackerExactnessTests.lifecycle(tracker: .uffdAsync)
        }
    }
}

extension TrackerExactnessTests {
    @Suite("Tracker exactness: uffd-sync", .requiring(.uffdSync, because: "the tracker under test"))
    struct UffdSync {
        @Test("random write patterns") func randomPatterns() throws {
            try TrackerExactnessTests.randomPatterns(tracker: .uffdSync, region: .anonymous)
        }
        @Test(
            "random write patterns on memfd",
            .requiring(.uffdSync, .memfd(name: ""), because: "the tracker on a memfd region"))
        func randomPatternsOnMemfd() throws {
            try TrackerExactnessTests.randomPatterns(tracker: .uffdSync, region: .memfd)
        }
        @Test("1 GiB region") func oneGiB() throws {
            try TrackerExactnessTests.oneGiB(tracker: .uffdSync, region: .anonymous)
        }
        @Test("1 GiB memfd region", .requiring(.uffdSync, .memfd(name: ""), because: "the tracker on a memfd region"))
        func oneGiBOnMemfd() throws { try TrackerExactnessTests.oneGiB(tracker: .uffdSync, region: .memfd) }
        @Test("writes from several threads") func severalThreads() throws {
            try TrackerExactnessTests.severalThreads(tracker: .uffdSync)
        }
        @Test("an epoch without writes reports nothing") func quietEpochs() throws {
            try TrackerExactnessTests.quietEpochs(tracker: .uffdSync)
        }
        @Test("stopped trackers refuse to collect") func lifecycle() throws {
            try TrackerExactnessTests.lifecycle(tracker: .uffdSync)
        }
    }
}

extension TrackerExactnessTests {
    @Suite("Tracker exactness: scan")
    struct Scan {
        @Test("random write patterns") func randomPatterns() throws {
            try TrackerExactnessTests.randomPatterns(tracker: .scan, region: .anonymous)
        }
        @Test("random write patterns on memfd")
        func randomPatternsOnMemfd() throws { try TrackerExactnessTests.randomPatterns(tracker: .scan, region: .memfd) }
        @Test("1 GiB region") func oneGiB() throws {
            try TrackerExactnessTests.oneGiB(tracker: .scan, region: .anonymous)
        }
        @Test("1 GiB memfd region")
        func oneGiBOnMemfd() throws { try TrackerExactnessTests.oneGiB(tracker: .scan, region: .memfd) }
        @Test("writes from several threads") func severalThreads() throws {
            try TrackerExactnessTests.severalThreads(tracker: .scan)
        }
        @Test("an epoch without writes reports nothing") func quietEpochs() throws {
            try TrackerExactnessTests.quietEpochs(tracker: .scan)
        }
        @Test("stopped trackers refuse to collect") func lifecycle() throws {
            try TrackerExactnessTests.lifecycle(tracker: .scan)
        }
    }
}
