import FGBI
import FGBIBench
import Testing

/// Every backend reports exactly the pages written, and nothing else, epoch after epoch; and agrees with the
/// `scan` backend watching the same memory.
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
    func checkEpochs(tracker kind: TrackerKind, region: RegionKind, length: Int, epochs: Int, budget: Int, seed: UInt64) throws {
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
            #expect(reported == truth, "epoch \(epoch) of \(kind) on \(region) \(length) bytes (prefault: \(prefault)): reported \(reported.pageCount), wrote \(truth.pageCount)")
            #expect(scanned == truth, "epoch \(epoch): scan reference disagrees with the writes")
        }
    }

    @Test("random write patterns", arguments: Kernel.availableTrackers, RegionKind.allCases)
    func randomPatterns(tracker: TrackerKind, region: RegionKind) throws {
        for (index, length) in Self.sizes.enumerated() {
            let pages = length / GuestMemory.pageSize
            try checkEpochs(tracker: tracker, region: region, length: length, epochs: 6,
                            budget: min(pages * 2, 3000), seed: UInt64(index + 1))
        }
    }

    @Test("1 GiB region", arguments: Kernel.availableTrackers, RegionKind.allCases)
    func oneGiB(tracker: TrackerKind, region: RegionKind) throws {
        try checkEpochs(tracker: tracker, region: region, length: 1 << 30, epochs: 3, budget: 4000, seed: 7)
    }

    @Test("writes from several threads", arguments: Kernel.availableTrackers)
    func severalThreads(tracker kind: TrackerKind) throws {
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

    @Test("an epoch without writes reports nothing", arguments: Kernel.availableTrackers)
    func quietEpochs(tracker kind: TrackerKind) throws {
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

    @Test("stopped trackers refuse to collect", arguments: TrackerKind.allCases.filter { Kernel.supports($0) })
    func lifecycle(tracker kind: TrackerKind) throws {
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
